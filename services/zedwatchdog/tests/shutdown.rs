//! zedwatchdog as the image runs it, a service of the real zedinit with `stop-last`:
//! through zedinit's ordered shutdown it keeps feeding until the last other service is
//! down (a critical one being stopped is not a reason to withhold), and only then gets
//! SIGTERM and disarms. Also: the shipped definition says so. Needs root (zedinit in a
//! new pid namespace); the device is a FIFO (tests/common).

mod common;

use common::{require_root, wait_until};
use nix::sys::signal::Signal;
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
    let mut zedinit = lab::zedinit::Lab::new();
    let d = zedinit.dir.path().to_path_buf();
    let d = d.as_path();
    std::fs::create_dir_all(d.join("run")).expect("run");
    zedinit.write_service("slow", &slow_service(d));
    zedinit.write_service("zedwatchdog", &watchdog_service(d));
    let fed = common::fifo_device(&d.join("watchdog"));
    zedinit.start();
    let feeds = || fed.get().len();
    wait_until("fed", || feeds() >= 3);

    zedinit.signal(Signal::SIGTERM);
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
    let status = zedinit.wait_exit();
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
    let definition = zedinit::parse::parse_definition("zedwatchdog", &file, &text)
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
