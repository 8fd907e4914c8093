//! dnsmasq-render: each network instance (services/netinst) becomes a dnsmasq
//! configuration in `/run/zedctr/dnsmasq/` and a generated zedinit definition
//! `dnsmasq@<bridge>` in `/run/zedctr/services/`, and every later change of the
//! instances is carried to the running dnsmasq with the least disruption (`changes`).

pub mod apply;
pub mod changes;
pub mod render;

use std::path::PathBuf;

/// One pass: load the instances, render, compare with what is on disk, apply. Returns
/// the control steps that failed (to retry) and reports every problem through `report`.
pub fn run_once(
    instances_dir: &std::path::Path,
    layout: &render::Layout,
    control: &mut dyn apply::Control,
    report: &mut dyn FnMut(String),
) -> Vec<changes::Step> {
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
    let steps = changes::decide(&previous, &rendered, &rejected, layout);
    apply::apply(steps, control, report)
}
