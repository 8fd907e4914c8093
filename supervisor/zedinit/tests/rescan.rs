//! Rescan (supctl rescan, SIGHUP): added services start, removed ones stop, changed
//! ones restart with the new definition, unchanged ones are not touched.

mod common;
use common::*;

#[test]
fn rescan_adds_changes_and_removes_definitions() {
    if !require_root("rescan_adds_changes_and_removes_definitions") {
        return;
    }
    let mut lab = Lab::new();
    lab.write_service("keep", &format!("command = {}", sh("exec sleep 1000")));
    lab.write_service("change", &format!("command = {}", sh("exec sleep 1000")));
    lab.write_service("drop", &format!("command = {}", sh("exec sleep 1000")));
    lab.start();
    for name in ["keep", "change", "drop"] {
        lab.wait_state(name, "running");
    }
    let (keep, change) = (lab.pid_of("keep"), lab.pid_of("change"));

    lab.write_service("change", &format!("command = {}", sh("exec sleep 2000")));
    lab.remove_service("drop");
    lab.write_service("added", &format!("command = {}", sh("exec sleep 1000")));
    let (code, out, err) = lab.supctl(&["rescan"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("added: added")
            && out.contains("removed: drop")
            && out.contains("changed: change"),
        "{out}"
    );
    lab.wait_state("added", "running");
    wait_until("drop is gone", || lab.state("drop") == "absent");
    wait_until("change runs its new command", || {
        lab.pid_of("change").is_some_and(|pid| {
            pid != change.unwrap_or(0)
                && std::fs::read_to_string(format!("/proc/{}/cmdline", host_pid(&lab, pid)))
                    .unwrap_or_default()
                    .contains("2000")
        })
    });
    assert_eq!(lab.pid_of("keep"), keep);

    // SIGHUP does the same; a definition broken meanwhile keeps its running version.
    lab.write_service("keep", "command = \"not an array\"");
    lab.remove_service("added");
    lab.signal(nix::sys::signal::Signal::SIGHUP);
    wait_until("added removed after SIGHUP", || {
        lab.state("added") == "absent"
    });
    assert_eq!(
        lab.pid_of("keep"),
        keep,
        "a broken definition loses nothing"
    );
    assert!(
        lab.status()
            .supervisor
            .definition_errors
            .iter()
            .any(|e| e.contains("keep.toml:1: command"))
    );
}

/// Translates a pid inside zedinit's namespace to the host's, via NSpid.
fn host_pid(lab: &Lab, ns_pid: i32) -> i32 {
    let zedinit = lab.zedinit_host_pid();
    for pid in descendants(zedinit) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if let Some(line) = status.lines().find(|l| l.starts_with("NSpid:")) {
            if line
                .split_whitespace()
                .last()
                .and_then(|p| p.parse::<i32>().ok())
                == Some(ns_pid)
            {
                return pid;
            }
        }
    }
    -1
}

fn descendants(root: i32) -> Vec<i32> {
    let mut all = vec![];
    let mut queue = vec![root];
    while let Some(p) = queue.pop() {
        for c in zedinit::sys::proc::children_of(p) {
            all.push(c);
            queue.push(c);
        }
    }
    all
}
