//! SIGTERM/SIGINT: ordered shutdown, stop timeouts, SIGKILL, and the exit code.

mod common;
use common::*;
use nix::sys::signal::Signal;

#[test]
fn sigterm_stops_services_in_reverse_dependency_order_and_exits_clean() {
    if !require_root("sigterm_stops_services_in_reverse_dependency_order_and_exits_clean") {
        return;
    }
    let mut lab = Lab::new();
    let order = lab.path("order");
    let order = order.to_str().expect("utf-8");
    lab.write_service(
        "base",
        &format!("command = {}", testkit(&["on-term", order, "base"])),
    );
    lab.write_service(
        "middle",
        &format!(
            "command = {}\nafter = [\"base\"]",
            testkit(&["on-term", order, "middle"])
        ),
    );
    lab.write_service(
        "top",
        &format!(
            "command = {}\nrequires = [\"middle\"]",
            testkit(&["on-term", order, "top"])
        ),
    );
    lab.write_service(
        "leaf",
        &format!(
            "command = {}\nafter = [\"base\"]",
            testkit(&["on-term", order, "leaf"])
        ),
    );
    lab.start();
    for name in ["base", "middle", "top", "leaf"] {
        lab.wait_state(name, "running");
    }
    lab.signal(Signal::SIGTERM);
    let status = lab.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "clean shutdown; log: {}",
        lab.log_tail()
    );
    let stopped: Vec<String> = lab.read("order").lines().map(String::from).collect();
    let pos = |n: &str| {
        stopped
            .iter()
            .position(|s| s == n)
            .unwrap_or_else(|| panic!("{n} not stopped: {stopped:?}"))
    };
    assert!(pos("top") < pos("middle"), "{stopped:?}");
    assert!(pos("middle") < pos("base"), "{stopped:?}");
    assert!(pos("leaf") < pos("base"), "{stopped:?}");
}

#[test]
fn a_service_that_ignores_sigterm_gets_sigkill_and_the_exit_code_says_so() {
    if !require_root("a_service_that_ignores_sigterm_gets_sigkill_and_the_exit_code_says_so") {
        return;
    }
    let mut lab = Lab::new();
    let order = lab.path("order");
    let order = order.to_str().expect("utf-8");
    lab.write_service(
        "stubborn",
        &format!(
            "command = {}\n[stop]\ntimeout = \"1s\"",
            testkit(&["ignore-term"])
        ),
    );
    lab.write_service(
        "polite",
        &format!(
            "command = {}\nafter = [\"stubborn\"]",
            testkit(&["on-term", order, "polite"])
        ),
    );
    // A stray: leaves its own session, so only the final sweep can find it.
    lab.write_service(
        "forker",
        &format!("command = {}", sh("setsid sleep 1000 & exec sleep 1000")),
    );
    lab.start();
    for name in ["stubborn", "polite", "forker"] {
        lab.wait_state(name, "running");
    }
    lab.signal(Signal::SIGINT);
    let status = lab.wait_exit();
    assert_eq!(
        status.code(),
        Some(2),
        "SIGKILL was needed; log: {}",
        lab.log_tail()
    );
    assert_eq!(
        lab.read("order").trim(),
        "polite",
        "the dependent stopped first, politely"
    );
    let log = std::fs::read_to_string(lab.path("zedinit.log")).unwrap_or_default();
    assert!(
        log.contains("stubborn: did not stop within 1s; SIGKILL to its process group"),
        "{log}"
    );
    assert!(log.contains("stubborn: stopped (SIGKILL)"), "{log}");
}

#[test]
fn supctl_shutdown_is_an_ordered_shutdown_too() {
    if !require_root("supctl_shutdown_is_an_ordered_shutdown_too") {
        return;
    }
    let mut lab = Lab::new();
    lab.write_service("svc", &format!("command = {}", sh("exec sleep 1000")));
    lab.start();
    lab.wait_state("svc", "running");
    let (code, _, err) = lab.supctl(&["shutdown"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lab.wait_exit().code(), Some(0));
}
