//! The image's tcp-offload definition (rootfs/etc/zedctr/services/tcp-offload.toml), run
//! by zedinit as PID 1 inside a network namespace standing for the device, with the real
//! ethtool against a veth there: the uplink named in the offload file ends with GRO and
//! scatter-gather off (init.sh's two settings), with only CAP_NET_ADMIN; without the file
//! the service is `skipped`; a name that is no interface name fails the service.
//!
//! Only the paths differ from the image: the test's file stands for
//! /config/zedctr/offload and the repository's rootfs/usr/lib/zedctr holds the script.

mod common;

use common::*;
use std::process::Command;

const SERVICES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../rootfs/etc/zedctr/services"
);
const LIB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rootfs/usr/lib/zedctr");

/// A network namespace of the test's own, removed when dropped (even on a panic).
struct Netns(String);

impl Netns {
    fn new(name: &str) -> Netns {
        // A namespace left by a killed run of this test (same pid, rare): remove it.
        if std::path::Path::new(&format!("/run/netns/{name}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
        ip(&["netns", "add", name]);
        Netns(name.into())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("ip (iproute2)");
    assert!(status.success(), "ip {args:?}");
}

/// `ethtool -k IF` in the namespace: the feature's state, `on` or `off`.
fn feature(ns: &str, interface: &str, name: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ethtool", "-k", interface])
        .output()
        .expect("ethtool (scripts/install-deps installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        .unwrap_or_else(|| panic!("{name} in ethtool -k {interface}:\n{text}"))
}

/// The directory of the offload file `config` (the service binds the directory).
fn config_dir(config: &str) -> String {
    std::path::Path::new(config)
        .parent()
        .expect("a directory")
        .display()
        .to_string()
}

/// The shipped definition with the test's paths: its offload file is `config`, named
/// `offload` in a directory of its own (bound at /config/zedctr).
fn definition(config: &str) -> String {
    let lib = std::fs::canonicalize(LIB).expect("rootfs/usr/lib/zedctr");
    let lib = lib.display().to_string();
    let text = std::fs::read_to_string(format!("{SERVICES}/tcp-offload.toml"))
        .expect("shipped tcp-offload.toml");
    let replaced = text
        .replace(
            "command = [\"/usr/lib/zedctr/tcp-offload\", \"/config/zedctr/offload\"]",
            &format!(
                "command = [{}, \"/config/zedctr/offload\"]",
                toml_string(&format!("{lib}/tcp-offload"))
            ),
        )
        .replace(
            "condition-path-exists = \"/config/zedctr/offload\"",
            &format!("condition-path-exists = {}", toml_string(config)),
        )
        .replace(
            "binds = [\"/config/zedctr:/config/zedctr:ro\"]",
            &format!(
                "binds = [{}, {}]",
                toml_string(&format!("{}:/config/zedctr:ro", config_dir(config))),
                toml_string(&format!("{lib}:{lib}:ro"))
            ),
        );
    assert!(
        replaced.contains(&format!("{lib}/tcp-offload"))
            && replaced.contains(&format!("{lib}:{lib}:ro")),
        "paths replaced:\n{replaced}"
    );
    replaced
}

#[test]
fn the_shipped_tcp_offload_turns_gro_and_sg_off_on_the_named_uplinks_only() {
    if !require_root("the_shipped_tcp_offload_turns_gro_and_sg_off_on_the_named_uplinks_only") {
        return;
    }
    let ns = Netns::new(&format!("zoff{}", std::process::id()));
    // Two veths in the device's namespace: the uplink named in the file, and another
    // that must keep its settings. GRO on first, so "off" is the service's doing.
    ip(&[
        "-n", &ns.0, "link", "add", "up0", "type", "veth", "peer", "name", "up0p",
    ]);
    ip(&[
        "-n", &ns.0, "link", "add", "other0", "type", "veth", "peer", "name", "other0p",
    ]);
    for interface in ["up0", "other0"] {
        let on = Command::new("ip")
            .args([
                "netns", "exec", &ns.0, "ethtool", "-K", interface, "gro", "on",
            ])
            .status()
            .expect("ethtool");
        assert!(on.success());
        assert_eq!(feature(&ns.0, interface, "generic-receive-offload"), "on");
        assert_eq!(feature(&ns.0, interface, "scatter-gather"), "on");
    }

    let mut lab = Lab::new();
    // Each file in a directory of its own, as /config/zedctr/offload.
    let offload = |dir: &str, text: Option<&str>| {
        let dir = lab.path(dir);
        std::fs::create_dir(&dir).expect("config dir");
        let file = dir.join("offload");
        if let Some(text) = text {
            std::fs::write(&file, text).expect("offload file");
        }
        file.display().to_string()
    };
    let config = offload(
        "good",
        Some("# the device's uplinks\nup0  # eth0 on a real device\n\n"),
    );
    let none = offload("none", None);
    let bad = offload("bad", Some("--help\n"));
    lab.write_service("tcp-offload", &definition(&config));
    lab.write_service("tcp-offload-none", &definition(&none));
    lab.write_service("tcp-offload-bad", &definition(&bad));
    // zedinit in the device's namespace (nsenter execs it: it stays PID 1).
    lab.start_after(&format!(
        "exec nsenter --net=/run/netns/{} -- \"$0\" --services-dir \"$1\" --control-socket \"$2\" --log-dir \"$3\" --heartbeat-dir \"$4\"",
        ns.0
    ));
    lab.wait_state("tcp-offload", "done");
    assert_eq!(feature(&ns.0, "up0", "generic-receive-offload"), "off");
    assert_eq!(feature(&ns.0, "up0", "scatter-gather"), "off");
    assert_eq!(
        feature(&ns.0, "up0", "generic-segmentation-offload"),
        "off",
        "segmentation offloads go with scatter-gather"
    );
    // The interface the file does not name is left as it was.
    assert_eq!(feature(&ns.0, "other0", "generic-receive-offload"), "on");
    assert_eq!(feature(&ns.0, "other0", "scatter-gather"), "on");
    let log = lab.read("zedinit.log");
    assert!(
        log.contains("tcp-offload: up0: gro off"),
        "said what it did: {log}"
    );

    lab.wait_state("tcp-offload-none", "skipped");
    // A name that would be an ethtool option is refused, and the service says why.
    lab.wait_state("tcp-offload-bad", "failed");
    assert!(
        lab.read("zedinit.log")
            .contains("not an interface name: '--help'"),
        "{}",
        lab.log_tail()
    );
}
