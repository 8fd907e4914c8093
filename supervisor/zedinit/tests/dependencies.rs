//! Dependencies and conditions with real processes: order shown by the files the
//! services write, never by timing.

mod common;
use common::*;

#[test]
fn a_oneshots_dependent_starts_only_after_it_is_done() {
    if !require_root("a_oneshots_dependent_starts_only_after_it_is_done") {
        return;
    }
    let mut lab = Lab::new();
    let log = lab.path("events");
    let log = log.to_str().expect("utf-8");
    lab.write_service(
        "setup",
        &format!(
            "command = {}\ntype = \"oneshot\"",
            sh(&format!(
                "echo setup-begin >> {log}; sleep 1; echo setup-end >> {log}"
            ))
        ),
    );
    lab.write_service(
        "app",
        &format!(
            "command = {}\nafter = [\"setup\"]",
            sh(&format!("echo app-start >> {log}; exec sleep 1000"))
        ),
    );
    lab.start();
    lab.wait_state("app", "running");
    assert_eq!(lab.state("setup"), "done");
    assert_eq!(
        lab.read("events").lines().collect::<Vec<_>>(),
        vec!["setup-begin", "setup-end", "app-start"]
    );
}

#[test]
fn a_false_condition_skips_and_is_not_a_failure() {
    if !require_root("a_false_condition_skips_and_is_not_a_failure") {
        return;
    }
    let mut lab = Lab::new();
    lab.write_service(
        "xen",
        &format!(
            "command = {}\ncritical = true\ncondition-path-exists = \"/nonexistent/xen\"",
            sh("exit 1")
        ),
    );
    lab.write_service(
        "after-xen",
        &format!("command = {}\nrequires = [\"xen\"]", sh("exec sleep 1000")),
    );
    lab.start();
    lab.wait_state("after-xen", "running");
    let status = lab.status();
    let xen = status.service("xen").expect("xen");
    assert_eq!(xen.state, "skipped");
    assert_eq!(xen.last_exit, None, "never ran");
    assert!(
        xen.note
            .as_deref()
            .unwrap_or("")
            .contains("/nonexistent/xen does not exist")
    );
    let (code, out, _) = lab.supctl(&["health"]);
    assert_eq!((code, out.trim()), (0, "healthy"));
}

#[test]
fn a_bad_definition_is_reported_and_the_good_ones_run() {
    if !require_root("a_bad_definition_is_reported_and_the_good_ones_run") {
        return;
    }
    let mut lab = Lab::new();
    lab.write_service("good", &format!("command = {}", sh("exec sleep 1000")));
    lab.write_service("bad", "command = []\nflavour = \"x\"");
    lab.start();
    lab.wait_state("good", "running");
    let status = lab.status();
    assert!(status.service("bad").is_none());
    let errors = status.supervisor.definition_errors.join("\n");
    assert!(errors.contains("bad.toml:1: command: is empty"), "{errors}");
    assert!(
        errors.contains("bad.toml:2: flavour: unknown key"),
        "{errors}"
    );
    let (code, out, _) = lab.supctl(&["status"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("definition errors") && out.contains("flavour"),
        "{out}"
    );
}
