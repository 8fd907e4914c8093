//! Hostile input to PID 1 (security audit 2026-12-04): what a service or a definition
//! writer can put in zedinit's way must neither stall it nor grow it. A notify-socket
//! flood from an unprivileged service (finding 1) and a FIFO dropped into a definitions
//! directory (finding 4) both leave `health` answering and zedinit's memory small.

mod common;
use common::*;
use std::time::{Duration, Instant};
use zedctr_proto::client::Client;
use zedctr_proto::protocol::{Request, Verb};

/// zedwatchdog's default `--health-deadline`: a health answer later than this stops the
/// feeding and reboots the device, so it is the bound that matters, not a speed.
const HEALTH_DEADLINE: Duration = Duration::from_secs(2);
/// zedinit runs in a few MB; the old notify reader passed 100 MB within seconds.
const RSS_BOUND_KB: u64 = 32 * 1024;
/// Observations made while the flood runs (one every [`SAMPLE_EVERY`]).
const SAMPLES: usize = 40;
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

fn vm_rss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for zedinit (pid {pid}): it is gone"))
}

/// One `health` call held to zedwatchdog's deadline: Ok(healthy) or why not.
fn health_within_deadline(lab: &Lab) -> Result<bool, String> {
    let mut client = Client::connect(&lab.socket).map_err(|e| format!("connect: {e}"))?;
    let response = client
        .call(&Request::new(Verb::Health), HEALTH_DEADLINE)
        .map_err(|e| format!("no answer within {HEALTH_DEADLINE:?}: {e}"))?;
    Ok(response.ok
        && response
            .data
            .as_ref()
            .and_then(|d| d["healthy"].as_bool())
            .unwrap_or(false))
}

#[test]
fn a_notify_flood_from_an_unprivileged_service_neither_grows_zedinit_nor_silences_health() {
    if !require_root(
        "a_notify_flood_from_an_unprivileged_service_neither_grows_zedinit_nor_silences_health",
    ) {
        return;
    }
    let mut lab = Lab::new();
    let bin = bin_dir();
    // [heartbeat] gives it a notify socket; 8 processes send 4 KiB datagrams as fast as
    // the socket takes them, as nobody without capabilities.
    lab.write_service(
        "flood",
        &format!(
            "command = {}\n[heartbeat]\nmax-age = \"1h\"\n[run]\nuid = 65534\ngid = 65534\ncapabilities = []\nnoNewPrivileges = true\nbinds = [\"{bin}:{bin}:ro\"]",
            testkit(&["notify-flood", "8"])
        ),
    );
    lab.start();
    let zedinit = lab.zedinit_host_pid();
    // Its messages are read and handled (not just dropped): the status shows them.
    wait_until("the flood's STATUS= to be handled", || {
        lab.status()
            .service("flood")
            .and_then(|s| s.status_text.clone())
            .is_some_and(|t| t == "flooding")
    });
    let mut worst_rss = 0;
    for sample in 0..SAMPLES {
        let started = Instant::now();
        let rss = vm_rss_kb(zedinit);
        worst_rss = worst_rss.max(rss);
        assert!(
            rss < RSS_BOUND_KB,
            "sample {sample}: zedinit's VmRSS is {rss} kB (bound {RSS_BOUND_KB} kB); log: {}",
            lab.log_tail()
        );
        match health_within_deadline(&lab) {
            Ok(healthy) => assert!(healthy, "sample {sample}: unhealthy"),
            Err(e) => panic!("sample {sample}: health: {e}; log: {}", lab.log_tail()),
        }
        std::thread::sleep(SAMPLE_EVERY.saturating_sub(started.elapsed()));
    }
    assert_eq!(lab.state("flood"), "running");
    let log = std::fs::read_to_string(lab.path("zedinit.log")).unwrap_or_default();
    assert!(
        log.contains("flood: notify budget spent"),
        "the pause is logged, naming the service; log: {}",
        lab.log_tail()
    );
    eprintln!("worst zedinit VmRSS during the flood: {worst_rss} kB");
}

#[test]
fn a_fifo_dropped_into_the_services_dir_neither_wedges_rescan_nor_health() {
    if !require_root("a_fifo_dropped_into_the_services_dir_neither_wedges_rescan_nor_health") {
        return;
    }
    let mut lab = Lab::new();
    lab.write_service("svc", &format!("command = {}", sh("exec sleep 1000")));
    lab.start();
    lab.wait_state("svc", "running");
    let pid = lab.pid_of("svc");
    let fifo = lab.services.join("zz.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    // Nobody ever opens the FIFO's other end: a blocking open would wait forever.
    let (code, out, err) = lab.supctl(&["rescan"]);
    assert_eq!(
        code, 1,
        "rescan answers, with the refusal as an error: {out}{err}"
    );
    assert!(
        err.contains(&format!("{}: refused: a FIFO", fifo.display())),
        "names the file and why: {err}"
    );
    for _ in 0..3 {
        let (code, out, err) = lab.supctl(&["health"]);
        assert_eq!((code, out.trim()), (0, "healthy"), "{err}");
    }
    let status = lab.status();
    assert!(
        status
            .supervisor
            .definition_errors
            .iter()
            .any(|e| e.contains("zz.toml") && e.contains("FIFO")),
        "{:?}",
        status.supervisor.definition_errors
    );
    assert_eq!(lab.pid_of("svc"), pid, "the good service is untouched");
    assert_eq!(lab.state("zz"), "absent");
}
