//! The real zedwatchdog against the real zedinit (PID 1 of its own pid namespace): it
//! feeds while zedinit is healthy, stops when a critical service fails and resumes when
//! it is back, stops while zedinit can't answer in time (SIGSTOPped), honours EVE's
//! touch-file and pid registrations as soon as they are made or removed (inotify, also
//! in directories made later), takes a registered pid that died as a reason in the
//! host's pid namespace and only notes it in another, records why it stopped feeding
//! and tells it as the next boot's reason, and disarms with the magic `V` on SIGTERM.
//!
//! The device is a FIFO the test reads (tests/common): this machine has no watchdog
//! driver (no /dev/watchdog; softdog can't be loaded here). The FIFO answers no ioctl,
//! so the boot status is "unknown" here; decoding a driver's answer is unit-tested
//! (src/boot.rs, src/record.rs). Needs root (zedinit in a new pid namespace).

mod common;

use common::{Watched, require_root, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, SystemTime};
use zedctr_proto::client::Client;
use zedctr_proto::protocol::{Request, Verb};

struct Lab {
    zedinit: lab::zedinit::Lab,
    watchdog: Option<Child>,
    watch: Watched,
}

/// How a test runs zedwatchdog.
struct Options<'a> {
    interval: &'a str,
    /// Added to the command line.
    args: &'a [&'a str],
    /// In a pid namespace of its own (`unshare --pid --fork --mount-proc`).
    private_pid_namespace: bool,
}

const DEFAULT: Options<'static> = Options {
    interval: "200ms",
    args: &["--pid-namespace", "host"],
    private_pid_namespace: false,
};

impl Lab {
    /// zedinit with a critical service (`victim`) that fails for good when killed. The
    /// registration directories are left to the test (EVE makes them when it first
    /// registers).
    fn new() -> Lab {
        let mut zedinit = lab::zedinit::Lab::new();
        zedinit.write_service(
            "victim",
            "command = [\"/bin/sleep\", \"100000\"]\ncritical = true\n[restart]\npolicy = \"never\"\n",
        );
        zedinit.start();
        std::fs::create_dir_all(zedinit.path("run")).expect("run");
        let fed = common::fifo_device(&zedinit.path("watchdog"));
        let lab = Lab {
            zedinit,
            watchdog: None,
            watch: Watched {
                fed,
                ..Watched::default()
            },
        };
        wait_until("victim running", || lab.state("victim") == "running");
        lab
    }

    fn path(&self, name: &str) -> PathBuf {
        self.zedinit.path(name)
    }

    fn call(&self, request: Request) -> Option<zedctr_proto::protocol::Response> {
        let mut client = Client::connect(&self.path("control.sock")).ok()?;
        client.call(&request, Duration::from_secs(5)).ok()
    }

    fn state(&self, service: &str) -> String {
        let Some(data) = self.call(Request::new(Verb::Status)).and_then(|r| r.data) else {
            return "no answer".into();
        };
        let report: zedctr_proto::status::StatusReport =
            serde_json::from_value(data).expect("status");
        report
            .service(service)
            .map_or("absent".into(), |s| s.state.clone())
    }

    fn zedinit_pid(&self) -> Pid {
        Pid::from_raw(self.zedinit.zedinit_host_pid())
    }

    /// Kills the critical service (it fails for good) and waits for zedinit to say so.
    fn fail_victim(&self) {
        // zedinit's pid namespace: the victim's pid there is not ours; find it by its parent.
        let victim =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.zedinit_pid()))
                .expect("children")
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<i32>().ok())
                .expect("victim's pid here");
        kill(Pid::from_raw(victim), Signal::SIGKILL).expect("kill victim");
        wait_until("victim failed", || self.state("victim") == "failed");
    }

    fn start_victim(&self) {
        let started = self
            .call(Request::for_service(Verb::Start, "victim"))
            .expect("start");
        assert!(started.ok, "{started:?}");
    }

    /// Starts zedwatchdog on the FIFO; what it says is recorded.
    fn start_watchdog(&mut self, options: &Options) {
        let mut command = if options.private_pid_namespace {
            let mut c = lab::zedinit::in_new_pid_namespace(None);
            c.arg(env!("CARGO_BIN_EXE_zedwatchdog"));
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_zedwatchdog"))
        };
        common::in_dir(&mut command, self.zedinit.dir.path())
            .args([
                "--interval",
                options.interval,
                "--health-deadline",
                "500ms",
                "--touch-budget",
                "30s",
            ])
            .args(options.args);
        self.watchdog = Some(self.watch.spawn(&mut command));
    }

    /// SIGKILL, as a reset would end it: no `V`, nothing tidied.
    fn kill_watchdog(&mut self) {
        if let Some(mut child) = self.watchdog.take() {
            child.kill().expect("kill");
            child.wait().expect("wait");
        }
    }

    fn register(&self, kind: &str, name: &str) {
        std::fs::create_dir_all(self.path(&format!("registry/{kind}"))).expect("registry");
        std::fs::write(self.path(&format!("registry/{kind}/{name}")), "").expect("register");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.kill_watchdog();
        // A test may leave zedinit stopped; the harness kills it when `zedinit` drops.
        let _ = kill(self.zedinit_pid(), Signal::SIGCONT);
    }
}

/// A process of ours whose pid a test registers; killed and reaped on drop.
struct Registrant(Child);

impl Registrant {
    fn start() -> Registrant {
        Registrant(
            Command::new("/bin/sleep")
                .arg("100000")
                .spawn()
                .expect("sleep"),
        )
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Dead and reaped: its pid names no process (until reused).
    fn end(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Registrant {
    fn drop(&mut self) {
        self.end();
    }
}

/// A pid that names no process: one of ours that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = Command::new("/bin/true").spawn().expect("true");
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

/// Whether this test runs in the kernel's initial pid namespace.
fn in_initial_pid_namespace() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").is_ok_and(|m| m.ino() == 0xEFFF_FFFC)
}

#[test]
fn it_feeds_only_while_zedinit_is_healthy_answers_in_time_and_registrations_are_fresh() {
    if !require_root(
        "it_feeds_only_while_zedinit_is_healthy_answers_in_time_and_registrations_are_fresh",
    ) {
        return;
    }
    let mut lab = Lab::new();
    lab.start_watchdog(&DEFAULT);
    lab.watch.wait_said("feeding the watchdog");
    lab.watch.wait_feeding();

    // A critical service fails: not fed, with the reason; back: fed again.
    let count = lab.watch.withheld_count();
    lab.fail_victim();
    let withheld = lab.watch.wait_withheld(count, "victim");
    lab.watch.assert_withholding(count, "victim");
    // Its stderr is a pipe here, as under zedinit: EVE's JSON lines, the reasons a field.
    let line: serde_json::Value = serde_json::from_str(&withheld).expect("a JSON line");
    assert_eq!(line["source"], "zedwatchdog", "{line}");
    assert_eq!(line["level"], "warning", "{line}");
    assert!(
        line["reasons"]
            .as_str()
            .is_some_and(|r| r.contains("victim")),
        "{line}"
    );
    assert!(
        line["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{line}"
    );
    lab.start_victim();
    lab.watch.wait_feeding();

    // zedinit can't answer (stopped): not fed; it answers again: fed.
    let count = lab.watch.withheld_count();
    kill(lab.zedinit_pid(), Signal::SIGSTOP).expect("SIGSTOP zedinit");
    lab.watch
        .assert_withholding(count, "zedinit did not answer");
    kill(lab.zedinit_pid(), Signal::SIGCONT).expect("SIGCONT zedinit");
    lab.watch.wait_feeding();

    // A registered touch file gone stale: not fed; touched again: fed.
    let count = lab.watch.withheld_count();
    let touch = lab.path("run/app.touch");
    std::fs::write(&touch, "").expect("touch file");
    std::fs::File::options()
        .write(true)
        .open(&touch)
        .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(3600)))
        .expect("age it");
    lab.register("file", "app.touch");
    lab.watch
        .assert_withholding(count, "app.touch: not touched for");
    std::fs::File::options()
        .write(true)
        .open(&touch)
        .and_then(|f| f.set_modified(SystemTime::now()))
        .expect("touch");
    lab.watch.wait_feeding();

    // SIGTERM: disarmed with the magic V, exit 0.
    let mut child = lab.watchdog.take().expect("watchdog");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    assert!(child.wait().expect("wait").success());
    wait_until("the V", || lab.watch.fed.get().last() == Some(&b'V'));
    assert!(
        lab.watch.fed.get()[..lab.watch.feeds() - 1]
            .iter()
            .all(|b| *b == 0),
        "feeds are NULs, only the last is V"
    );
}

#[test]
fn registrations_take_effect_at_once_without_a_rescan_even_in_directories_made_later() {
    if !require_root(
        "registrations_take_effect_at_once_without_a_rescan_even_in_directories_made_later",
    ) {
        return;
    }
    let mut lab = Lab::new();
    // One round an hour: anything sooner is the registrations' doing. The registry
    // directory does not exist yet.
    lab.start_watchdog(&Options {
        interval: "1h",
        ..DEFAULT
    });
    lab.watch.wait_said("feeding the watchdog");
    wait_until("the first feed", || lab.watch.feeds() == 1);

    // A touch file registered but missing (two directories made first): at once.
    let count = lab.watch.withheld_count();
    lab.register("file", "app.touch");
    lab.watch
        .wait_withheld(count, "app.touch: registered but missing");
    // Unregistered: fed at once.
    let feeding = lab.watch.said_count("feeding the watchdog");
    std::fs::remove_file(lab.path("registry/file/app.touch")).expect("unregister");
    wait_until("fed again", || {
        lab.watch.said_count("feeding the watchdog") > feeding && lab.watch.feeds() >= 2
    });

    // A pid registered whose process is dead (the pid directory made only now): at once.
    std::fs::write(lab.path("run/agent.pid"), format!("{}\n", dead_pid())).expect("pid file");
    let count = lab.watch.withheld_count();
    lab.register("pid", "agent.pid");
    lab.watch.wait_withheld(count, "agent.pid: pid");
    let feeding = lab.watch.said_count("feeding the watchdog");
    std::fs::remove_dir_all(lab.path("registry/pid")).expect("unregister all");
    wait_until("fed again", || {
        lab.watch.said_count("feeding the watchdog") > feeding && lab.watch.feeds() >= 3
    });
}

#[test]
fn a_registered_pid_that_dies_withholds_in_the_hosts_pid_namespace() {
    if !require_root("a_registered_pid_that_dies_withholds_in_the_hosts_pid_namespace") {
        return;
    }
    let mut lab = Lab::new();
    let mut agent = Registrant::start();
    std::fs::write(lab.path("run/agent.pid"), format!("{}\n", agent.pid())).expect("pid file");
    lab.register("pid", "agent.pid");
    lab.start_watchdog(&DEFAULT);
    lab.watch
        .wait_said("pid namespace: the host's (--pid-namespace host)");
    lab.watch.wait_said("feeding the watchdog");
    lab.watch.wait_feeding();

    let count = lab.watch.withheld_count();
    let pid = agent.pid();
    agent.end();
    lab.watch
        .assert_withholding(count, &format!("run/agent.pid: pid {pid} is gone"));
    // The agent started again and wrote its new pid: fed.
    let again = Registrant::start();
    std::fs::write(lab.path("run/agent.pid"), format!("{}\n", again.pid())).expect("pid file");
    lab.watch.wait_feeding();
}

#[test]
fn in_another_pid_namespace_a_pid_not_found_is_noted_and_feeding_goes_on() {
    if !require_root("in_another_pid_namespace_a_pid_not_found_is_noted_and_feeding_goes_on") {
        return;
    }
    let mut lab = Lab::new();
    let pid = dead_pid();
    std::fs::write(lab.path("run/outside.pid"), format!("{pid}\n")).expect("pid file");
    lab.register("pid", "outside.pid");
    // Found out, not told: zedwatchdog in a pid namespace of its own.
    lab.start_watchdog(&Options {
        args: &[],
        private_pid_namespace: true,
        ..DEFAULT
    });
    lab.watch.wait_said("pid namespace: not the host's");
    lab.watch.wait_said(&format!(
        "run/outside.pid: pid {pid} is not visible in this pid namespace: ignored"
    ));
    lab.watch.wait_feeding();
    assert_eq!(lab.watch.withheld_count(), 0, "{:#?}", lab.watch.said.get());
}

#[test]
fn by_itself_it_takes_the_hosts_pid_namespace_only_when_it_is_the_initial_one() {
    if !require_root("by_itself_it_takes_the_hosts_pid_namespace_only_when_it_is_the_initial_one") {
        return;
    }
    let mut lab = Lab::new();
    lab.start_watchdog(&Options {
        args: &[],
        ..DEFAULT
    });
    if in_initial_pid_namespace() {
        lab.watch
            .wait_said("pid namespace: the host's (the initial pid namespace)");
    } else {
        lab.watch.wait_said("pid namespace: not the host's");
    }
    lab.watch.wait_feeding();
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
}

#[test]
fn why_feeding_stopped_is_on_disk_at_once_and_becomes_the_next_boots_reason() {
    if !require_root("why_feeding_stopped_is_on_disk_at_once_and_becomes_the_next_boots_reason") {
        return;
    }
    let mut lab = Lab::new();
    let state = lab.path("persist/zedctr/watchdog");
    std::fs::create_dir_all(&state).expect("state dir");
    let state_arg = state.display().to_string();
    let options = Options {
        args: &["--pid-namespace", "host", "--state-dir", &state_arg],
        ..DEFAULT
    };
    lab.start_watchdog(&options);
    // The FIFO answers no ioctl: the boot status is unknown, and said so.
    lab.watch
        .wait_said("no boot status: Inappropriate ioctl for device");
    lab.watch
        .wait_said("previous boot: unknown (the driver does not say)");
    lab.watch.wait_feeding();
    let last_boot = read_json(&state.join("last-boot.json"));
    assert_eq!(last_boot["watchdog_reset"], serde_json::Value::Null);
    assert_eq!(last_boot["previous_withholding"], serde_json::Value::Null);
    assert!(last_boot["boot_status"]["error"].is_string(), "{last_boot}");
    assert!(!state.join("withholding.json").exists());

    // Withheld: the reason is on disk before the device could reset.
    let count = lab.watch.withheld_count();
    lab.fail_victim();
    lab.watch.wait_withheld(count, "victim");
    wait_until("withholding.json", || {
        state.join("withholding.json").exists()
    });
    let withholding = read_json(&state.join("withholding.json"));
    let reasons = withholding["reasons"].to_string();
    assert!(reasons.contains("victim failed"), "{withholding}");
    // Fed again: no withholding stands.
    lab.start_victim();
    lab.watch.wait_feeding();
    wait_until("withholding.json removed", || {
        !state.join("withholding.json").exists()
    });

    // Withheld again, and the device resets (zedwatchdog ends without a word).
    let count = lab.watch.withheld_count();
    lab.fail_victim();
    lab.watch.wait_withheld(count, "victim");
    wait_until("withholding.json", || {
        state.join("withholding.json").exists()
    });
    lab.kill_watchdog();
    // The next boot: the file was written in another one.
    let mut withholding = read_json(&state.join("withholding.json"));
    withholding["boot_id"] = "an-earlier-boot".into();
    std::fs::write(
        state.join("withholding.json"),
        serde_json::to_vec(&withholding).expect("json"),
    )
    .expect("rewrite");
    lab.start_victim();
    wait_until("victim running", || lab.state("victim") == "running");
    let said_before = lab.watch.said.get().len();
    lab.start_watchdog(&options);
    wait_until("a second previous-boot line", || {
        lab.watch.said.get()[said_before..]
            .iter()
            .any(|l| l.contains("previous boot:"))
    });
    let line = lab.watch.said.get()[said_before..]
        .iter()
        .find(|l| l.contains("previous boot:"))
        .cloned()
        .expect("line");
    assert!(
        line.contains("zedwatchdog had stopped feeding since") && line.contains("victim failed"),
        "{line}"
    );
    lab.watch.wait_feeding();
    wait_until("last-boot.json rewritten", || {
        read_json(&state.join("last-boot.json"))["previous_withholding"].is_object()
    });
    let last_boot = read_json(&state.join("last-boot.json"));
    assert!(
        last_boot["reason"]
            .as_str()
            .is_some_and(|r| r.contains("victim failed")),
        "{last_boot}"
    );
    assert_eq!(
        last_boot["previous_withholding"]["boot_id"],
        "an-earlier-boot"
    );
    // Told, then consumed.
    wait_until("the earlier withholding consumed", || {
        !state.join("withholding.json").exists()
    });
}

#[test]
fn a_device_that_cannot_be_opened_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-watchdog");
    let output = Command::new(env!("CARGO_BIN_EXE_zedwatchdog"))
        .arg("--device")
        .arg(&missing)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
}
