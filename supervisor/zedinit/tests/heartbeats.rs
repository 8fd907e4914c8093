//! [heartbeat]: zedinit makes /run/<svc>.touch for the service (owned by its uid,
//! reachable inside its own root), watches it, restarts a stale service, and health
//! stays healthy through such a restart until a critical service exhausts its restarts.

mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn a_service_that_stops_touching_is_restarted_and_health_turns_only_when_it_fails() {
    if !require_root(
        "a_service_that_stops_touching_is_restarted_and_health_turns_only_when_it_fails",
    ) {
        return;
    }
    let mut lab = Lab::new();
    // Confined, unprivileged: it touches /run/beat.touch inside its own root for ~0.6 s,
    // then hangs. Every run is recorded (through a bind) to count restarts.
    let script = "echo run >> /run/out/runs; for i in 1 2 3; do touch /run/beat.touch; sleep 0.2; done; exec sleep 1000";
    let out = lab.path("out");
    std::fs::create_dir(&out).expect("out");
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    lab.write_service(
        "beat",
        &format!(
            "command = {}\ncritical = true\n[heartbeat]\nmax-age = \"1s\"\n[restart]\nintensity = 2\nintensity-window = \"5m\"\n[run]\nuid = 65534\ngid = 65534\nbinds = [\"{}:/run/out\"]",
            sh(script),
            out.display()
        ),
    );
    lab.start();
    lab.wait_state("beat", "running");
    let touch = lab.dir.path().join("heartbeat/beat.touch");
    let meta = std::fs::metadata(&touch).expect("zedinit made the heartbeat file");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        65534,
        "owned by the service's uid"
    );
    // Until it fails, health stays healthy: zedinit is restarting it.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let status = lab.status();
        let beat = status.service("beat").expect("beat");
        if beat.state == "failed" {
            break;
        }
        let (code, out, _) = lab.supctl(&["health"]);
        // A check racing the final failure may see it failed; anything else is healthy.
        if code != 0 {
            assert_eq!(
                lab.state("beat"),
                "failed",
                "unhealthy before it failed: {out}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "beat never failed; log: {}",
            lab.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = lab.status();
    let beat = status.service("beat").expect("beat");
    assert_eq!(beat.restarts, 2);
    assert!(
        beat.note
            .as_deref()
            .unwrap_or("")
            .starts_with("heartbeat stale (none for 1s)"),
        "{beat:?}"
    );
    assert_eq!(lab.read("out/runs").lines().count(), 3, "ran three times");
    let (code, out, _) = lab.supctl(&["health"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("unhealthy") && out.contains("beat failed"),
        "{out}"
    );
}

#[test]
fn watchdog_messages_keep_a_service_alive_and_its_beat_age_shows() {
    if !require_root("watchdog_messages_keep_a_service_alive_and_its_beat_age_shows") {
        return;
    }
    let mut lab = Lab::new();
    let bin = bin_dir();
    let script = format!("exec '{TESTKIT}' notify-every 200 WATCHDOG=1");
    lab.write_service(
        "pinger",
        &format!("command = {}\n[heartbeat]\nmax-age = \"1s\"\n[run]\nuid = 65534\nbinds = [\"{bin}:{bin}:ro\"]", sh(&script)),
    );
    lab.start();
    lab.wait_state("pinger", "running");
    std::thread::sleep(Duration::from_millis(3500));
    let status = lab.status();
    let pinger = status.service("pinger").expect("pinger");
    assert_eq!(
        (pinger.state.as_str(), pinger.restarts),
        ("running", 0),
        "{pinger:?}; log: {}",
        lab.log_tail()
    );
    assert!(
        pinger.heartbeat_age_ms.is_some_and(|ms| ms < 1000),
        "{pinger:?}"
    );
    let (_, out, _) = lab.supctl(&["status"]);
    assert!(out.contains("BEAT"), "{out}");
}
