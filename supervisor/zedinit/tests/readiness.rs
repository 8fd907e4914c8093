//! [ready]: each kind gates its dependents (shown by the order of what the services
//! write, not by timing); a timeout fails the start; strangers can't declare readiness.

mod common;
use common::*;

/// The dependent that records when it started, after `dep`.
fn dependent(lab: &Lab, dep: &str, events: &str) {
    lab.write_service(
        "app",
        &format!(
            "command = {}\nrequires = [\"{dep}\"]",
            sh(&format!("echo app-start >> {events}; exec sleep 1000"))
        ),
    );
}

fn events(lab: &Lab) -> Vec<String> {
    lab.read("events").lines().map(String::from).collect()
}

#[test]
fn notify_readiness_gates_the_dependent_and_shows_status_text() {
    if !require_root("notify_readiness_gates_the_dependent_and_shows_status_text") {
        return;
    }
    let mut lab = Lab::new();
    let ev = lab.path("events").display().to_string();
    // testkit turns the literal backslash-n into a newline: one datagram, two lines.
    let notify = format!("'{TESTKIT}' notify 'STATUS=loading\\nREADY=1' sleep");
    lab.write_service(
        "db",
        &format!(
            "command = {}\n[ready]\nnotify = true\ntimeout = \"20s\"",
            sh(&format!("sleep 0.5; echo db-ready >> {ev}; exec {notify}"))
        ),
    );
    dependent(&lab, "db", &ev);
    lab.start();
    lab.wait_state("app", "running");
    assert_eq!(events(&lab), vec!["db-ready", "app-start"]);
    let status = lab.status();
    let db = status.service("db").expect("db");
    assert_eq!(db.state, "ready");
    assert_eq!(db.status_text.as_deref(), Some("loading"));
    let (_, out, _) = lab.supctl(&["status", "db"]);
    assert!(out.contains("ready") && out.contains("loading"), "{out}");
}

#[test]
fn file_readiness_gates_the_dependent() {
    if !require_root("file_readiness_gates_the_dependent") {
        return;
    }
    let mut lab = Lab::new();
    let ev = lab.path("events").display().to_string();
    let flag = lab.path("svc.up").display().to_string();
    // Ready only once the test says so: the look at `starting` below can't come late.
    let go = lab.path("go").display().to_string();
    lab.write_service(
        "svc",
        &format!(
            "command = {}\n[ready]\nfile = \"{flag}\"\ninterval = \"50ms\"",
            sh(&format!(
                "while [ ! -e {go} ]; do sleep 0.05; done; echo svc-ready >> {ev}; touch {flag}; exec sleep 1000"
            ))
        ),
    );
    dependent(&lab, "svc", &ev);
    lab.start();
    assert_eq!(lab.state("svc"), "starting");
    assert_eq!(lab.state("app"), "stopped", "app waits for svc");
    std::fs::write(&go, "").expect("go");
    lab.wait_state("app", "running");
    assert_eq!(events(&lab), vec!["svc-ready", "app-start"]);
    assert_eq!(lab.state("svc"), "ready");
}

#[test]
fn exec_readiness_gates_the_dependent() {
    if !require_root("exec_readiness_gates_the_dependent") {
        return;
    }
    let mut lab = Lab::new();
    let ev = lab.path("events").display().to_string();
    let mark = lab.path("mark").display().to_string();
    lab.write_service(
        "svc",
        &format!(
            "command = {}\n[ready]\nexec = {}\ninterval = \"50ms\"",
            sh(&format!(
                "sleep 0.5; echo svc-ready >> {ev}; touch {mark}; exec sleep 1000"
            )),
            sh(&format!("test -e {mark}"))
        ),
    );
    dependent(&lab, "svc", &ev);
    lab.start();
    lab.wait_state("app", "running");
    assert_eq!(events(&lab), vec!["svc-ready", "app-start"]);
    assert_eq!(
        lab.status().supervisor.reaped_orphans,
        0,
        "probe exits are accounted to the service, not orphans"
    );
}

#[test]
fn tcp_readiness_gates_the_dependent() {
    if !require_root("tcp_readiness_gates_the_dependent") {
        return;
    }
    let mut lab = Lab::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let ev = lab.path("events").display().to_string();
    let listen = format!("sleep 0.5; exec '{TESTKIT}' listen {addr}");
    lab.write_service(
        "web",
        &format!(
            "command = {}\n[ready]\ntcp = \"{addr}\"\ninterval = \"50ms\"",
            sh(&listen)
        ),
    );
    // The dependent connects once, at start: it must find the port open.
    lab.write_service(
        "app",
        &format!(
            "command = {}\nrequires = [\"web\"]",
            testkit(&["connect", &addr, &ev])
        ),
    );
    lab.start();
    lab.wait_state("app", "running");
    wait_until("app connected", || !lab.read("events").is_empty());
    assert_eq!(events(&lab), vec!["connected"]);
    assert_eq!(lab.state("web"), "ready");
}

#[test]
fn a_readiness_timeout_fails_the_start_and_triggers_the_restart_policy() {
    if !require_root("a_readiness_timeout_fails_the_start_and_triggers_the_restart_policy") {
        return;
    }
    let mut lab = Lab::new();
    let starts = lab.path("starts").display().to_string();
    lab.write_service(
        "mute",
        &format!(
            "command = {}\n[ready]\nnotify = true\ntimeout = \"300ms\"\n[restart]\nbackoff-base = \"10ms\"\nintensity = 2",
            sh(&format!("echo start >> {starts}; exec sleep 1000"))
        ),
    );
    lab.write_service(
        "app",
        &format!("command = {}\nrequires = [\"mute\"]", sh("exec sleep 1000")),
    );
    lab.start();
    lab.wait_state("mute", "failed");
    let status = lab.status();
    let mute = status.service("mute").expect("mute");
    assert_eq!(mute.restarts, 2);
    assert_eq!(
        lab.read("starts").lines().count(),
        3,
        "started, then restarted twice"
    );
    assert_eq!(
        mute.last_exit
            .as_ref()
            .and_then(|e| e.signal.clone())
            .as_deref(),
        Some("SIGKILL")
    );
    assert!(
        mute.note
            .as_deref()
            .unwrap_or("")
            .starts_with("not ready within 300ms"),
        "{mute:?}"
    );
    assert_eq!(
        status.service("app").map(|a| a.state.as_str()),
        Some("stopped"),
        "never started"
    );
}

#[test]
fn ready_from_a_process_that_is_not_the_service_is_refused() {
    if !require_root("ready_from_a_process_that_is_not_the_service_is_refused") {
        return;
    }
    let mut lab = Lab::new();
    let go = lab.path("go").display().to_string();
    let notify = format!("'{TESTKIT}' notify READY=1 sleep");
    lab.write_service(
        "svc",
        &format!(
            "command = {}\n[ready]\nnotify = true\ntimeout = \"60s\"",
            sh(&format!(
                "while [ ! -e {go} ]; do sleep 0.05; done; exec {notify}"
            ))
        ),
    );
    lab.start();
    assert_eq!(lab.state("svc"), "starting");
    // The test process (not in the service's session) claims readiness for it.
    let socket = lab.dir.path().join("notify/svc.sock");
    let out = std::process::Command::new(TESTKIT)
        .args(["notify-to", socket.to_str().expect("utf-8"), "READY=1"])
        .output()
        .expect("send");
    assert!(out.status.success(), "{out:?}");
    wait_until("the refusal is logged", || {
        lab.read("zedinit.log")
            .contains("svc: notify message from pid")
    });
    assert!(
        lab.read("zedinit.log")
            .contains("not one of its processes: refused")
    );
    assert_eq!(lab.state("svc"), "starting");
    // The service itself may.
    std::fs::write(&go, "").expect("go");
    lab.wait_state("svc", "ready");
}
