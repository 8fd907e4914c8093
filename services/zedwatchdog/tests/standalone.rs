//! The real zedwatchdog with no zedinit at all, as when each service is its own
//! container: with `--without-zedinit` it feeds while the services' heartbeat files are
//! fresh, withholds with the reason when one goes stale (its writer SIGSTOPped) or was
//! never made once the grace after start is over, and feeds again when they beat; and
//! without the flag, a control socket that is missing (zedinit gone) withholds rather
//! than being taken for that mode. The device is a FIFO (tests/common); the heartbeat
//! writers are real processes touching their files.

mod common;

use common::{Watched, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

struct Lab {
    dir: tempfile::TempDir,
    watchdog: Option<Child>,
    beaters: Vec<Child>,
    watch: Watched,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("heartbeats")).expect("heartbeats");
        std::fs::create_dir(dir.path().join("run")).expect("run");
        let fed = common::fifo_device(&dir.path().join("watchdog"));
        Lab {
            dir,
            watchdog: None,
            beaters: Vec::new(),
            watch: Watched {
                fed,
                ..Watched::default()
            },
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts zedwatchdog on the FIFO with `args`; what it says is recorded. The control
    /// socket it is given does not exist: no zedinit here.
    fn start_watchdog(&mut self, args: &[&str]) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_zedwatchdog"));
        common::in_dir(&mut command, self.dir.path())
            .args(["--interval", "200ms", "--health-deadline", "500ms"])
            .args(args);
        let child = self.watch.spawn(&mut command);
        self.watchdog = Some(child);
    }

    /// A service's heartbeat: a process touching `<heartbeats>/<name>.touch` every
    /// 100 ms (as `downloader serve` touches $ZEDCTR_HEARTBEAT_FILE). Returns its pid.
    fn beat(&mut self, name: &str) -> Pid {
        let file = self.path(&format!("heartbeats/{name}.touch"));
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"while :; do touch "$0"; sleep 0.1; done"#)
            .arg(&file)
            .spawn()
            .expect("sh");
        let pid = Pid::from_raw(child.id() as i32);
        self.beaters.push(child);
        wait_until(&format!("{name}.touch made"), || file.exists());
        pid
    }

    /// SIGTERM: the magic `V`, exit 0.
    fn stop(&mut self) {
        let mut child = self.watchdog.take().expect("watchdog");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
        assert!(child.wait().expect("wait").success());
        wait_until("the V", || self.watch.fed.get().last() == Some(&b'V'));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in self.watchdog.iter_mut().chain(self.beaters.iter_mut()) {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn dir_arg(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn without_zedinit_it_feeds_only_while_every_heartbeat_is_fresh() {
    let mut lab = Lab::new();
    let agent = lab.beat("agent");
    let heartbeats = dir_arg(&lab.path("heartbeats"));
    lab.start_watchdog(&[
        "--without-zedinit",
        "--heartbeat-dir",
        &heartbeats,
        "--heartbeat",
        "agent=1s",
        "--heartbeat",
        "late=1s",
        "--heartbeat-grace",
        "3s",
    ]);
    lab.watch.wait_said("without zedinit: heartbeats in");
    // `late` has not made its file yet: within the grace that is only noted.
    lab.watch.wait_said("late: no heartbeat file");
    lab.watch.wait_said("(within the grace after start)");
    lab.watch
        .wait_said("feeding the watchdog: heartbeats fresh");

    // The grace over and still no file: withheld, with the reason.
    let count = lab.watch.withheld_count();
    let line = lab
        .watch
        .assert_withholding(count, "late: no heartbeat file");
    assert!(!line.contains("zedinit"), "no zedinit is asked: {line}");
    // It starts beating: fed.
    lab.beat("late");
    lab.watch.wait_feeding();

    // A service stops beating (its loop wedged): withheld once its budget has passed.
    let count = lab.watch.withheld_count();
    kill(agent, Signal::SIGSTOP).expect("SIGSTOP");
    lab.watch.assert_withholding(count, "agent: heartbeat");
    let line = lab
        .watch
        .said
        .get()
        .into_iter()
        .rfind(|l| l.contains("NOT feeding"))
        .expect("line");
    assert!(line.contains("not touched for"), "{line}");
    // It beats again: fed again.
    kill(agent, Signal::SIGCONT).expect("SIGCONT");
    lab.watch.wait_feeding();
    lab.stop();
}

#[test]
fn without_the_flag_a_missing_control_socket_withholds() {
    // Fresh heartbeats are there, but they are not what this mode asks: zedinit is,
    // and its socket is gone (zedinit died). Not fed at all.
    let mut lab = Lab::new();
    lab.beat("agent");
    lab.start_watchdog(&[]);
    lab.watch.assert_withholding(0, "zedinit did not answer");
    assert_eq!(lab.watch.feeds(), 0, "never fed");
    // Heartbeats are zedinit's to check in this mode: the flag alone is refused (usage).
    let status = Command::new(env!("CARGO_BIN_EXE_zedwatchdog"))
        .args(["--heartbeat", "agent=1s"])
        .stderr(Stdio::null())
        .status()
        .expect("runs");
    assert_eq!(status.code(), Some(2));
    lab.stop();
}
