//! zedwatchdog as the image runs it, a service of the real zedinit with `stop-last`:
//! through zedinit's ordered shutdown it keeps feeding until the last other service is
//! down (a critical one being stopped is not a reason to withhold), and only then gets
//! SIGTERM and disarms. Also: the shipped definition says so. Needs root (zedinit in a
//! new pid namespace); the device is a FIFO (tests/common).

mod common;

use common::{require_root, wait_until};
use nix::sys::signal::{Signal, kill};
use std::path::Path;

/// Holds its stop until the test releases it: `stopping` when SIGTERM came, `stopped`
/// just before it exits.
fn slow_service(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"command = ["/bin/sh", "-c", "trap 'touch {d}/stopping; while [ ! -e {d}/release ]; do sleep 0.05; done; touch {d}/stopped; exit 0' TERM; while :; do sleep 0.05; done"]
critical = true
[stop]
timeout = "60s"
"#
    )
}

fn watchdog_service(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"command = ["{bin}", "--device", "{d}/watchdog", "--interval", "100ms",
           "--health-deadline", "500ms", "--control-socket", "{d}/control.sock",
           "--registry", "{d}/registry", "--run-dir", "{d}/run"]
stop-last = true
[stop]
signal = "SIGTERM"
timeout = "5s"
"#,
        bin = env!("CARGO_BIN_EXE_zedwatchdog")
    )
}

#[test]
fn feeding_goes_on_through_the_ordered_shutdown_until_the_last_service_is_down() {
    if !require_root("feeding_goes_on_through_the_ordered_shutdown_until_the_last_service_is_down")
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("services")).expect("services");
    std::fs::create_dir_all(d.join("run")).expect("run");
    std::fs::write(d.join("services/slow.toml"), slow_service(d)).expect("slow");
    std::fs::write(d.join("services/zedwatchdog.toml"), watchdog_service(d)).expect("wd");
    let fed = common::fifo_device(&d.join("watchdog"));
    let mut zedinit = common::spawn_zedinit(d);
    let feeds = || fed.get().len();
    wait_until("fed", || feeds() >= 3);

    let pid1 = common::zedinit_pid(&zedinit).expect("zedinit's pid");
    kill(pid1, Signal::SIGTERM).expect("SIGTERM zedinit");
    wait_until("slow is asked to stop", || d.join("stopping").exists());
    // Still fed while the critical service takes its time to stop.
    let before = feeds();
    wait_until("fed during the shutdown", || feeds() >= before + 5);
    assert!(!fed.get().contains(&b'V'), "disarmed too early");
    std::fs::write(d.join("release"), "").expect("release");
    wait_until("the V", || fed.get().last() == Some(&b'V'));
    assert!(
        d.join("stopped").exists(),
        "V only after the other service is down"
    );
    let status = zedinit.wait().expect("zedinit exits");
    assert!(status.success(), "zedinit's exit: {status:?}");
    let log = std::fs::read_to_string(d.join("logs/zedwatchdog.log")).expect("its log");
    assert!(!log.contains("NOT feeding"), "{log}");
    assert!(log.contains("stopping; the watchdog is disarmed"), "{log}");
}

#[test]
fn the_shipped_definition_stops_last_and_keeps_its_records_on_persist() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../rootfs/etc/zedctr/services/zedwatchdog.toml");
    let text = std::fs::read_to_string(&file).expect("shipped definition");
    let definition = zedctr::parse::parse_definition("zedwatchdog", &file, &text)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let spec = definition.spec;
    assert!(spec.stop_last, "zedwatchdog must stop last");
    let command = spec.command.join(" ");
    assert!(
        command.contains("--state-dir /persist/zedctr/watchdog"),
        "{command}"
    );
    let run = spec.run.expect("[run]");
    assert!(
        run.binds
            .iter()
            .any(|b| { b.dst == Path::new("/persist/zedctr/watchdog") && !b.readonly }),
        "{:?}",
        run.binds
    );
}
