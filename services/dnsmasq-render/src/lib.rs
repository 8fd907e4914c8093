//! dnsmasq-render: each network instance (services/lib/netinst) becomes a dnsmasq
//! configuration in `/run/zedctr/dnsmasq/` and a generated zedinit definition
//! `dnsmasq@<bridge>` in `/run/zedctr/services/`, and every later change of the
//! instances is carried to the running dnsmasq with the least disruption (`changes`).
//! Without zedinit (`--supervise`), it runs those definitions itself (`children`
//! decides, `supervisor` does).

pub mod apply;
pub mod changes;
pub mod children;
pub mod fuzzing;
pub mod render;
pub mod supervisor;

use std::path::PathBuf;

/// One pass: load the instances, render, compare with what is on disk and what earlier
/// passes still owe, apply. True when everything was done; every problem goes to
/// `report` (a bad instance file too: it changes nothing, and is not retried).
pub fn run_once(
    instances_dir: &std::path::Path,
    layout: &render::Layout,
    control: &mut dyn apply::Control,
    report: &mut dyn FnMut(String),
) -> Pass {
    let loaded = netinst::load_dir(instances_dir);
    for error in &loaded.errors {
        report(error.to_string());
    }
    let rendered: Vec<render::Rendered> = loaded
        .instances
        .iter()
        .map(|i| render::render(i, layout))
        .collect();
    let rejected: Vec<PathBuf> = loaded
        .rejected
        .iter()
        .map(|(_, file)| file.clone())
        .collect();
    let previous = apply::read_on_disk(layout);
    let owed = apply::read_owed(layout);
    let read_leases = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
    let sequences = changes::decide(&changes::Inputs {
        previous: &previous,
        owed: &owed,
        now: &rendered,
        rejected: &rejected,
        layout,
        leases: &read_leases,
    });
    Pass {
        done: apply::apply(sequences, control, report),
        bad_instances: !loaded.errors.is_empty(),
    }
}

/// How a pass went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Every step was carried out (otherwise: try again later).
    pub done: bool,
    /// Some instance file was rejected (fix the file; retrying does not help).
    pub bad_instances: bool,
}
