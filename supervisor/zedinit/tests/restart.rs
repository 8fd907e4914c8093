//! Restart policy and per-service control, with real processes.

mod common;
use common::*;

#[test]
fn a_crash_loop_reaches_failed_while_the_others_keep_running() {
    if !require_root("a_crash_loop_reaches_failed_while_the_others_keep_running") {
        return;
    }
    let mut lab = Lab::new();
    lab.write_service(
        "crasher",
        &format!(
            "command = {}\n[restart]\nbackoff-base = \"50ms\"\nbackoff-max = \"200ms\"\nintensity = 4\nintensity-window = \"60s\"",
            sh("exit 3")
        ),
    );
    lab.write_service("steady", &format!("command = {}", sh("exec sleep 1000")));
    lab.start();
    let steady = lab.pid_of("steady").expect("steady runs");
    lab.wait_state("crasher", "failed");
    let status = lab.status();
    let crasher = status.service("crasher").expect("crasher");
    assert_eq!(crasher.restarts, 4);
    assert_eq!(crasher.last_exit.as_ref().and_then(|e| e.code), Some(3));
    assert!(
        crasher
            .note
            .as_deref()
            .unwrap_or("")
            .contains("more than 4 restarts"),
        "{crasher:?}"
    );
    assert_eq!(
        lab.pid_of("steady"),
        Some(steady),
        "the steady service was not touched"
    );
    // Not critical: still healthy.
    let (code, out, _) = lab.supctl(&["health"]);
    assert_eq!((code, out.trim()), (0, "healthy"));
    // A person can give it another go: start forgets the failed history, so it runs
    // (without [ready], "started" means its program ran) and fails again after 4 more
    // restarts. The answer names the state it is in when answered: `exit 3` may already
    // have put it in backoff, or restarted it.
    let (code, out, err) = lab.supctl(&["start", "crasher"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        ["crasher: running", "crasher: starting", "crasher: backoff"].contains(&out.trim()),
        "{out}"
    );
    wait_until("crasher fails again", || {
        lab.status()
            .service("crasher")
            .is_some_and(|s| s.state == "failed" && s.restarts == 8)
    });
    assert_eq!(lab.pid_of("steady"), Some(steady));
}

#[test]
fn supctl_restart_restarts_only_that_service() {
    if !require_root("supctl_restart_restarts_only_that_service") {
        return;
    }
    let mut lab = Lab::new();
    for name in ["a", "b", "c"] {
        lab.write_service(name, &format!("command = {}", sh("exec sleep 1000")));
    }
    lab.write_service(
        "d",
        &format!("command = {}\nrequires = [\"b\"]", sh("exec sleep 1000")),
    );
    lab.start();
    for name in ["a", "b", "c", "d"] {
        lab.wait_state(name, "running");
    }
    let before: Vec<_> = ["a", "b", "c", "d"].iter().map(|n| lab.pid_of(n)).collect();
    let (code, out, err) = lab.supctl(&["restart", "b"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "b: running");
    let after: Vec<_> = ["a", "b", "c", "d"].iter().map(|n| lab.pid_of(n)).collect();
    assert_ne!(after[1], before[1], "b has a new process");
    assert_eq!(
        (after[0], after[2], after[3]),
        (before[0], before[2], before[3]),
        "the others keep theirs"
    );
    let status = lab.status();
    assert_eq!(status.service("b").map(|s| s.restarts), Some(1));
    assert_eq!(
        status
            .service("b")
            .and_then(|s| s.last_exit.clone())
            .and_then(|e| e.signal)
            .as_deref(),
        Some("SIGTERM")
    );
}

#[test]
fn supctl_stop_and_start_wait_for_the_state_and_report_failure() {
    if !require_root("supctl_stop_and_start_wait_for_the_state_and_report_failure") {
        return;
    }
    let mut lab = Lab::new();
    lab.write_service("svc", &format!("command = {}", sh("exec sleep 1000")));
    lab.write_service(
        "stubborn",
        &format!(
            "command = {}\n[stop]\ntimeout = \"20s\"",
            testkit(&["ignore-term"])
        ),
    );
    lab.start();
    lab.wait_state("stubborn", "running");
    let (code, out, _) = lab.supctl(&["stop", "svc"]);
    assert_eq!((code, out.trim()), (0, "svc: stopped"));
    assert_eq!(lab.pid_of("svc"), None);
    let (code, out, _) = lab.supctl(&["start", "svc"]);
    assert_eq!((code, out.trim()), (0, "svc: running"));
    // A stop that can't complete within supctl's timeout exits non-zero.
    let (code, _, err) = lab.supctl(&["stop", "stubborn", "--timeout", "300ms"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("timeout") && err.contains("stopping"), "{err}");
}
