//! Core state machine tests: a recording executor and a hand-driven clock. They check
//! *what* the supervisor orders and in which order, without processes.

use super::*;
use crate::parse::{Definition, parse_definition};
use std::collections::HashSet;
use std::path::PathBuf;

#[derive(Default)]
struct Recorder {
    next_pid: i32,
    log: Vec<String>,
    existing: HashSet<PathBuf>,
    failing: HashSet<String>,
    pids: BTreeMap<i32, String>,
    probes: BTreeMap<i32, String>,
    /// pid → the main pid of the service it belongs to (children of services).
    family: BTreeMap<i32, i32>,
    leftovers_killed: Vec<i32>,
    /// Services whose children report their exec later (fork and go).
    exec_later: HashSet<String>,
    /// Exec reports by pid, as the pipe would give them.
    reports: BTreeMap<i32, Result<(), String>>,
}

impl Executor for Recorder {
    fn spawn(&mut self, spec: &ServiceSpec) -> Result<Spawned, String> {
        if self.failing.contains(&spec.name) {
            self.log.push(format!("spawn-failed {}", spec.name));
            return Err("No such file or directory".into());
        }
        self.next_pid += 1;
        let pid = 100 + self.next_pid;
        self.pids.insert(pid, spec.name.clone());
        self.log.push(format!("spawn {}", spec.name));
        Ok(Spawned {
            pid,
            exec_confirmed: !self.exec_later.contains(&spec.name),
        })
    }
    fn exec_report(&mut self, pid: i32) -> Option<Result<(), String>> {
        self.reports.remove(&pid)
    }
    fn signal_group(&mut self, pgid: i32, signal: Signal) {
        if signal != Signal::SIGCONT {
            let name = self.pids.get(&pgid).cloned().unwrap_or_default();
            self.log.push(format!("{} {name}", signal.as_str()));
        }
    }
    fn signal_process(&mut self, pid: i32, signal: Signal) -> Result<(), String> {
        let name = self.pids.get(&pid).cloned().unwrap_or_default();
        self.log.push(format!("signal {name} {}", signal.as_str()));
        Ok(())
    }
    fn path_exists(&self, path: &Path) -> bool {
        self.existing.contains(path)
    }
    fn spawn_probe(&mut self, spec: &ServiceSpec, _main_pid: i32) -> Result<i32, String> {
        self.next_pid += 1;
        let pid = 100 + self.next_pid;
        self.probes.insert(pid, spec.name.clone());
        self.log.push(format!("probe {}", spec.name));
        Ok(pid)
    }
    fn belongs_to(&self, pid: i32, main_pid: i32) -> bool {
        pid == main_pid || self.family.get(&pid) == Some(&main_pid)
    }
    fn log_tail(&self, _name: &str, _n: usize) -> Vec<String> {
        Vec::new()
    }
    fn kill_leftovers(&mut self, pgid: i32) {
        self.leftovers_killed.push(pgid);
    }
    fn release(&mut self, name: &str) {
        self.log.push(format!("release {name}"));
    }
}

fn def(name: &str, toml: &str) -> (String, Definition) {
    let file = PathBuf::from(format!("/defs/{name}.toml"));
    let d = parse_definition(name, &file, toml).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    (name.to_string(), d)
}

fn loaded(defs: &[(&str, &str)]) -> Loaded {
    let mut l = Loaded::default();
    for (name, toml) in defs {
        let (n, d) = def(name, toml);
        l.definitions.insert(n, d);
    }
    crate::graph::validate(&mut l);
    l
}

struct Harness {
    core: Core<Recorder>,
    now: Instant,
}

impl Harness {
    fn new(defs: &[(&str, &str)]) -> Self {
        Self::with(defs, Recorder::default())
    }

    fn with(defs: &[(&str, &str)], rec: Recorder) -> Self {
        let mut h = Harness {
            core: Core::new(rec, loaded(defs), 7),
            now: Instant::now(),
        };
        h.core.reconcile(h.now);
        h
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.core.on_tick(self.now);
        self.core.reconcile(self.now);
    }

    fn pid(&self, name: &str) -> i32 {
        self.core
            .service(name)
            .and_then(|s| s.pid)
            .unwrap_or_else(|| panic!("{name} has no pid"))
    }

    fn exit(&mut self, name: &str, exit: Exit) {
        let pid = self.pid(name);
        assert!(self.core.on_exit(pid, exit, self.now));
        self.core.reconcile(self.now);
    }

    fn state(&self, name: &str) -> &'static str {
        self.core
            .service(name)
            .map(|s| s.state.name())
            .unwrap_or("absent")
    }

    fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.core.exec.log)
    }
}

const LONGRUN: &str = r#"command = ["/bin/x"]"#;

#[test]
fn dependency_order_starts_dependencies_first() {
    let mut h = Harness::new(&[
        ("c", "command = [\"/c\"]\nafter = [\"b\"]"),
        ("b", "command = [\"/b\"]\nafter = [\"a\"]"),
        ("a", LONGRUN),
    ]);
    assert_eq!(h.take_log(), vec!["spawn a", "spawn b", "spawn c"]);
    assert_eq!(
        crate::graph::start_order(
            &loaded(&[("z", "command=[\"/z\"]\nafter=[\"y\"]"), ("y", LONGRUN)]).specs()
        ),
        vec!["y", "z"]
    );
    assert_eq!(h.state("c"), "running");
}

#[test]
fn oneshot_dependents_wait_for_done() {
    let mut h = Harness::new(&[
        ("setup", "command = [\"/setup\"]\ntype = \"oneshot\""),
        ("app", "command = [\"/app\"]\nafter = [\"setup\"]"),
    ]);
    assert_eq!(h.take_log(), vec!["spawn setup"]);
    assert_eq!(h.state("setup"), "starting");
    assert_eq!(h.state("app"), "stopped");
    assert_eq!(
        h.core
            .service("app")
            .and_then(|s| s.note.clone())
            .as_deref(),
        Some("waiting for setup")
    );
    h.exit("setup", Exit::Exited(0));
    assert_eq!(h.state("setup"), "done");
    assert_eq!(h.take_log(), vec!["spawn app"]);
}

#[test]
fn a_failed_required_oneshot_keeps_its_dependent_down_but_after_only_proceeds() {
    let mut h = Harness::new(&[
        (
            "setup",
            "command = [\"/setup\"]\ntype = \"oneshot\"\n[restart]\npolicy = \"never\"",
        ),
        ("strict", "command = [\"/s\"]\nrequires = [\"setup\"]"),
        ("lenient", "command = [\"/l\"]\nafter = [\"setup\"]"),
    ]);
    h.take_log();
    h.exit("setup", Exit::Exited(1));
    assert_eq!(h.state("setup"), "failed");
    assert_eq!(h.take_log(), vec!["spawn lenient"]);
    assert_eq!(h.state("strict"), "stopped");
}

#[test]
fn a_false_condition_skips_and_dependents_proceed() {
    let mut rec = Recorder::default();
    rec.existing.insert(PathBuf::from("/here"));
    let mut h = Harness::with(
        &[
            (
                "xen",
                "command = [\"/xen\"]\ncondition-path-exists = \"/proc/xen\"",
            ),
            (
                "nox",
                "command = [\"/nox\"]\ncondition-path-exists = \"!/here\"",
            ),
            (
                "here",
                "command = [\"/here\"]\ncondition-path-exists = \"/here\"",
            ),
            ("after-xen", "command = [\"/a\"]\nrequires = [\"xen\"]"),
            (
                "both",
                "command = [\"/both\"]\ncondition-path-exists = [\"/here\", \"/etc/ipsec.conf\"]",
            ),
            (
                "all-hold",
                "command = [\"/all\"]\ncondition-path-exists = [\"/here\", \"!/etc/ipsec.conf\"]",
            ),
        ],
        rec,
    );
    assert_eq!(h.state("both"), "skipped", "one of two conditions unmet");
    assert_eq!(
        h.core
            .service("both")
            .and_then(|s| s.note.clone())
            .as_deref(),
        Some("condition: /etc/ipsec.conf does not exist")
    );
    assert_eq!(h.state("all-hold"), "running");
    assert_eq!(h.state("xen"), "skipped");
    assert_eq!(h.state("nox"), "skipped");
    assert_eq!(h.state("here"), "running");
    assert_eq!(h.state("after-xen"), "running");
    assert!(!h.take_log().contains(&"spawn xen".to_string()));
}

#[test]
fn shutdown_stops_in_reverse_dependency_order_and_escalates_to_sigkill() {
    let mut h = Harness::new(&[
        ("db", "command = [\"/db\"]\n[stop]\ntimeout = \"2s\""),
        (
            "api",
            "command = [\"/api\"]\nafter = [\"db\"]\n[stop]\nsignal = \"SIGINT\"\ntimeout = \"3s\"",
        ),
        ("web", "command = [\"/web\"]\nrequires = [\"api\"]"),
    ]);
    h.take_log();
    h.core.begin_shutdown(h.now);
    // Only the leaf is asked first.
    assert_eq!(h.take_log(), vec!["SIGTERM web"]);
    h.exit("web", Exit::Signaled(Signal::SIGTERM));
    assert_eq!(h.take_log(), vec!["SIGINT api"]);
    // api ignores SIGINT: SIGKILL to its group at its timeout, not before.
    h.advance(Duration::from_millis(2999));
    assert_eq!(h.take_log(), Vec::<String>::new());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.take_log(), vec!["SIGKILL api"]);
    assert!(h.core.unclean);
    h.exit("api", Exit::Signaled(Signal::SIGKILL));
    assert_eq!(h.take_log(), vec!["SIGTERM db"]);
    h.exit("db", Exit::Exited(0));
    assert!(h.core.all_stopped());
    // Nothing restarts during a shutdown.
    h.advance(Duration::from_secs(60));
    assert_eq!(h.take_log(), Vec::<String>::new());
}

#[test]
fn restart_restarts_only_that_service() {
    let mut h = Harness::new(&[
        ("a", LONGRUN),
        ("b", "command = [\"/b\"]\nrequires = [\"a\"]"),
        ("c", LONGRUN),
    ]);
    h.take_log();
    let (pid_b, pid_c) = (h.pid("b"), h.pid("c"));
    h.core.request_restart("a", h.now).unwrap();
    h.core.reconcile(h.now);
    assert_eq!(h.take_log(), vec!["SIGTERM a"]);
    h.exit("a", Exit::Signaled(Signal::SIGTERM));
    assert_eq!(h.take_log(), vec!["spawn a"]);
    assert_eq!((h.pid("b"), h.pid("c")), (pid_b, pid_c));
    assert_eq!(
        h.core.service("a").map(|s| (s.restarts, s.generation)),
        Some((1, 2))
    );
}

#[test]
fn stop_takes_requiring_dependents_down_first_and_start_brings_them_back() {
    let mut h = Harness::new(&[
        ("a", LONGRUN),
        ("b", "command = [\"/b\"]\nrequires = [\"a\"]"),
    ]);
    h.take_log();
    h.core.request_stop("a", h.now).unwrap();
    h.core.reconcile(h.now);
    assert_eq!(h.take_log(), vec!["SIGTERM b"]);
    h.exit("b", Exit::Signaled(Signal::SIGTERM));
    assert_eq!(h.take_log(), vec!["SIGTERM a"]);
    h.exit("a", Exit::Signaled(Signal::SIGTERM));
    h.advance(Duration::from_secs(100));
    assert_eq!(
        h.take_log(),
        Vec::<String>::new(),
        "a stopped service stays down"
    );
    h.core.request_start("a").unwrap();
    h.core.reconcile(h.now);
    assert_eq!(h.take_log(), vec!["spawn a", "spawn b"]);
}

#[test]
fn crash_loop_backs_off_then_fails_while_others_keep_running() {
    let mut h = Harness::new(&[
        (
            "crash",
            "command = [\"/c\"]\n[restart]\nbackoff-base = \"1s\"\nbackoff-jitter = 0\nintensity = 3\nintensity-window = \"1m\"",
        ),
        ("steady", LONGRUN),
    ]);
    h.take_log();
    let steady = h.pid("steady");
    h.exit("crash", Exit::Exited(1));
    assert_eq!(h.take_log(), vec!["spawn crash"], "first restart at once");
    h.exit("crash", Exit::Exited(1));
    assert_eq!(h.state("crash"), "backoff");
    h.advance(Duration::from_millis(999));
    assert_eq!(h.take_log(), Vec::<String>::new());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.take_log(), vec!["spawn crash"]);
    h.exit("crash", Exit::Exited(1));
    h.advance(Duration::from_secs(2));
    assert_eq!(h.take_log(), vec!["spawn crash"]);
    h.exit("crash", Exit::Exited(1));
    assert_eq!(h.state("crash"), "failed");
    assert_eq!(h.pid("steady"), steady);
    assert!(h.core.health().healthy, "crash is not critical");
}

#[test]
fn a_failed_critical_service_makes_health_unhealthy() {
    let mut h = Harness::new(&[(
        "vital",
        "command = [\"/v\"]\ncritical = true\n[restart]\npolicy = \"never\"",
    )]);
    assert!(h.core.health().healthy);
    h.exit("vital", Exit::Signaled(Signal::SIGSEGV));
    let health = h.core.health();
    assert!(!health.healthy);
    assert!(
        health.reasons[0].contains("vital failed") && health.reasons[0].contains("SIGSEGV"),
        "{health:?}"
    );
}

#[test]
fn a_spawn_failure_follows_the_restart_policy() {
    let mut rec = Recorder::default();
    rec.failing.insert("missing".into());
    let mut h = Harness::with(
        &[("missing", "command = [\"/nope\"]\n[restart]\nintensity = 1")],
        rec,
    );
    assert_eq!(
        h.take_log(),
        vec!["spawn-failed missing", "spawn-failed missing"]
    );
    assert_eq!(h.state("missing"), "failed");
    let note = h
        .core
        .service("missing")
        .and_then(|s| s.note.clone())
        .unwrap_or_default();
    assert!(note.contains("cannot start: No such file"), "{note}");
}

#[test]
fn rescan_adds_changes_and_removes() {
    let mut h = Harness::new(&[("keep", LONGRUN), ("change", LONGRUN), ("drop", LONGRUN)]);
    h.take_log();
    let keep = h.pid("keep");
    let diff = h.core.apply_rescan(
        loaded(&[
            ("keep", LONGRUN),
            ("change", "command = [\"/new\"]"),
            ("new", LONGRUN),
        ]),
        h.now,
    );
    assert_eq!(
        diff,
        crate::rescan::Diff {
            added: vec!["new".into()],
            removed: vec!["drop".into()],
            changed: vec!["change".into()]
        }
    );
    h.core.reconcile(h.now);
    let mut log = h.take_log();
    log.sort();
    assert_eq!(log, vec!["SIGTERM change", "SIGTERM drop", "spawn new"]);
    h.exit("change", Exit::Signaled(Signal::SIGTERM));
    assert_eq!(h.take_log(), vec!["spawn change"]);
    assert_eq!(
        h.core.service("change").map(|s| s.spec.command.clone()),
        Some(vec!["/new".to_string()])
    );
    h.exit("drop", Exit::Signaled(Signal::SIGTERM));
    assert_eq!(h.state("drop"), "absent");
    assert_eq!(h.pid("keep"), keep);
}

#[test]
fn rescan_keeps_the_running_version_of_a_now_broken_definition() {
    let mut h = Harness::new(&[("svc", LONGRUN)]);
    h.take_log();
    let mut broken = Loaded::default();
    broken.errors.push(ConfigError {
        file: "/defs/svc.toml".into(),
        line: Some(1),
        key: Some("command".into()),
        message: "is empty".into(),
    });
    let diff = h.core.apply_rescan(broken, h.now);
    assert_eq!(diff, crate::rescan::Diff::default());
    h.core.reconcile(h.now);
    assert_eq!(h.take_log(), Vec::<String>::new());
    assert_eq!(h.state("svc"), "running");
    assert_eq!(h.core.definition_errors.len(), 1);
}

#[test]
fn a_stable_run_resets_backoff_in_the_core_too() {
    let mut h = Harness::new(&[(
        "s",
        "command = [\"/s\"]\n[restart]\nbackoff-base = \"1s\"\nstable-after = \"5s\"\nintensity = 100",
    )]);
    h.exit("s", Exit::Exited(1));
    h.exit("s", Exit::Exited(1));
    assert_eq!(h.state("s"), "backoff");
    h.advance(Duration::from_secs(2));
    h.advance(Duration::from_secs(10));
    h.take_log();
    h.exit("s", Exit::Exited(1));
    assert_eq!(
        h.state("s"),
        "running",
        "restarted at once after a stable run"
    );
}

#[test]
fn signal_and_reload_reach_the_main_process_and_fail_without_one() {
    let mut h = Harness::new(&[
        ("a", "command = [\"/a\"]\nreload-signal = \"USR2\""),
        ("b", "command=[\"/b\"]\ntype=\"oneshot\""),
    ]);
    h.exit("b", Exit::Exited(0));
    h.take_log();
    assert_eq!(h.core.send_signal("a", None), Ok(Signal::SIGUSR2));
    assert_eq!(
        h.core.send_signal("a", Some(Signal::SIGHUP)),
        Ok(Signal::SIGHUP)
    );
    assert_eq!(h.take_log(), vec!["signal a SIGUSR2", "signal a SIGHUP"]);
    assert!(matches!(
        h.core.send_signal("b", None),
        Err(RequestError::InvalidState(_))
    ));
    assert_eq!(
        h.core.send_signal("zz", None),
        Err(RequestError::UnknownService("zz".into()))
    );
}

#[test]
fn an_exit_of_an_unknown_pid_counts_as_an_orphan() {
    let mut h = Harness::new(&[("a", LONGRUN)]);
    assert!(!h.core.on_exit(99_999, Exit::Exited(0), h.now));
    assert_eq!(h.core.orphans_reaped, 1);
    assert_eq!(h.state("a"), "running");
}

fn probe_pid(h: &Harness, name: &str) -> i32 {
    *h.core
        .exec
        .probes
        .iter()
        .rev()
        .find(|(_, n)| n.as_str() == name)
        .expect("a probe")
        .0
}

#[test]
fn notify_readiness_gates_dependents_and_refuses_strangers() {
    let mut h = Harness::new(&[
        (
            "db",
            "command = [\"/db\"]\n[ready]\nnotify = true\ntimeout = \"10s\"",
        ),
        ("app", "command = [\"/app\"]\nrequires = [\"db\"]"),
    ]);
    assert_eq!(h.take_log(), vec!["spawn db"]);
    assert_eq!(h.state("db"), "starting");
    let db = h.pid("db");
    // A process that is not db's: refused, nothing starts.
    assert!(!h.core.on_notify("db", Some(4242), "READY=1", h.now));
    assert!(!h.core.on_notify("db", None, "READY=1", h.now));
    h.core.reconcile(h.now);
    assert_eq!((h.state("db"), h.take_log()), ("starting", vec![]));
    // A child of db's: accepted; STATUS is kept.
    h.core.exec.family.insert(777, db);
    assert!(
        h.core
            .on_notify("db", Some(777), "STATUS=warming up\n", h.now)
    );
    assert_eq!(
        h.core.status(h.now)[0].status_text.as_deref(),
        Some("warming up")
    );
    assert!(
        h.core
            .on_notify("db", Some(db), "READY=1\nSTATUS=serving", h.now)
    );
    h.core.reconcile(h.now);
    assert_eq!(h.state("db"), "ready");
    assert_eq!(h.take_log(), vec!["spawn app"]);
}

#[test]
fn a_readiness_timeout_kills_the_start_and_follows_the_restart_policy() {
    let mut h = Harness::new(&[(
        "slow",
        "command = [\"/slow\"]\n[ready]\nnotify = true\ntimeout = \"2s\"\n[restart]\nintensity = 1",
    )]);
    h.take_log();
    h.advance(Duration::from_millis(1999));
    assert_eq!(h.take_log(), Vec::<String>::new());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.take_log(), vec!["SIGKILL slow"]);
    // A late READY=1 no longer counts.
    let pid = h.pid("slow");
    h.core.on_notify("slow", Some(pid), "READY=1", h.now);
    assert_eq!(h.state("slow"), "starting");
    h.exit("slow", Exit::Signaled(Signal::SIGKILL));
    assert_eq!(h.take_log(), vec!["spawn slow"], "first restart at once");
    assert_eq!(
        h.core
            .service("slow")
            .and_then(|s| s.note.clone())
            .as_deref(),
        Some("not ready within 2s")
    );
    h.advance(Duration::from_secs(2));
    h.exit("slow", Exit::Signaled(Signal::SIGKILL));
    assert_eq!(h.state("slow"), "failed");
    let note = h
        .core
        .service("slow")
        .and_then(|s| s.note.clone())
        .unwrap_or_default();
    assert!(
        note.starts_with("not ready within 2s; SIGKILL: more than 1 restarts"),
        "{note}"
    );
}

#[test]
fn probe_readiness_retries_at_its_interval_until_a_probe_succeeds() {
    let mut h = Harness::new(&[
        (
            "web",
            "command = [\"/web\"]\n[ready]\ntcp = \"127.0.0.1:80\"\ninterval = \"500ms\"",
        ),
        ("client", "command = [\"/c\"]\nafter = [\"web\"]"),
    ]);
    h.advance(Duration::ZERO);
    assert_eq!(
        h.take_log(),
        vec!["spawn web", "probe web"],
        "first probe at once"
    );
    let probe = probe_pid(&h, "web");
    assert!(h.core.on_exit(probe, Exit::Exited(1), h.now));
    h.advance(Duration::from_millis(499));
    assert_eq!(h.take_log(), Vec::<String>::new());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.take_log(), vec!["probe web"]);
    let probe = probe_pid(&h, "web");
    assert!(h.core.on_exit(probe, Exit::Exited(0), h.now));
    h.core.reconcile(h.now);
    assert_eq!(h.state("web"), "ready");
    assert_eq!(h.take_log(), vec!["spawn client"]);
    assert_eq!(h.core.orphans_reaped, 0, "probe exits are not orphans");
}

#[test]
fn file_readiness_is_checked_without_a_process() {
    let mut h = Harness::new(&[(
        "f",
        "command = [\"/f\"]\n[ready]\nfile = \"/run/f.up\"\ninterval = \"100ms\"",
    )]);
    h.advance(Duration::from_millis(300));
    assert_eq!(h.state("f"), "starting");
    h.core.exec.existing.insert("/run/f.up".into());
    h.advance(Duration::from_millis(100));
    assert_eq!(h.state("f"), "ready");
    assert_eq!(h.take_log(), vec!["spawn f"]);
}

// Regressions found in review: verbs and rescans racing a stop.

fn y_broken() -> Loaded {
    let mut l = Loaded::default();
    l.errors.push(ConfigError {
        file: "/defs/y.toml".into(),
        line: Some(2),
        key: Some("requires".into()),
        message: "unknown service \"x\"".into(),
    });
    l
}

fn command_of(h: &Harness, name: &str) -> Vec<String> {
    h.core
        .service(name)
        .map(|s| s.spec.command.clone())
        .unwrap_or_default()
}

#[test]
fn start_or_restart_during_a_changed_stop_keeps_the_new_definition() {
    for verb in ["start", "restart"] {
        let mut h = Harness::new(&[("svc", "command = [\"/old\"]")]);
        h.core
            .apply_rescan(loaded(&[("svc", "command = [\"/new\"]")]), h.now);
        h.core.reconcile(h.now);
        match verb {
            "start" => h.core.request_start("svc").unwrap(),
            _ => h.core.request_restart("svc", h.now).unwrap(),
        }
        h.exit("svc", Exit::Signaled(Signal::SIGTERM));
        assert_eq!(command_of(&h, "svc"), vec!["/new"], "{verb}");
        assert_eq!(h.state("svc"), "running", "{verb}");
    }
}

#[test]
fn a_removed_service_cannot_be_started_back() {
    let mut h = Harness::new(&[
        ("x", LONGRUN),
        ("y", "command = [\"/y\"]\nrequires = [\"x\"]"),
    ]);
    h.core.apply_rescan(y_broken(), h.now); // x.toml deleted; y kept (broken)
    h.core.reconcile(h.now);
    assert!(matches!(
        h.core.request_start("x"),
        Err(RequestError::UnknownService(_))
    ));
    assert!(matches!(
        h.core.request_restart("x", h.now),
        Err(RequestError::UnknownService(_))
    ));
    h.exit("y", Exit::Signaled(Signal::SIGTERM));
    h.exit("x", Exit::Signaled(Signal::SIGTERM));
    assert_eq!(h.state("x"), "absent");
}

#[test]
fn a_service_readded_before_it_stopped_gets_its_new_definition() {
    let mut h = Harness::new(&[
        ("x", "command = [\"/x-old\"]"),
        ("y", "command = [\"/y\"]\nrequires = [\"x\"]"),
    ]);
    h.core.apply_rescan(y_broken(), h.now);
    h.core.reconcile(h.now);
    let both = [
        ("x", "command = [\"/x-new\"]"),
        ("y", "command = [\"/y\"]\nrequires = [\"x\"]"),
    ];
    h.core.apply_rescan(loaded(&both), h.now);
    h.core.reconcile(h.now);
    h.exit("y", Exit::Signaled(Signal::SIGTERM));
    h.exit("x", Exit::Signaled(Signal::SIGTERM));
    h.advance(Duration::from_secs(1));
    assert_eq!(command_of(&h, "x"), vec!["/x-new"]);
    assert_eq!((h.state("x"), h.state("y")), ("running", "running"));
}

#[test]
fn a_reverted_definition_undoes_the_pending_change() {
    let mut h = Harness::new(&[("svc", "command = [\"/old\"]")]);
    h.core
        .apply_rescan(loaded(&[("svc", "command = [\"/new\"]")]), h.now);
    h.core.reconcile(h.now);
    let diff = h
        .core
        .apply_rescan(loaded(&[("svc", "command = [\"/old\"]")]), h.now);
    assert_eq!(
        diff.changed,
        vec!["svc"],
        "compared with the pending definition"
    );
    h.core.reconcile(h.now);
    h.exit("svc", Exit::Signaled(Signal::SIGTERM));
    assert_eq!(command_of(&h, "svc"), vec!["/old"]);
    assert_eq!(h.state("svc"), "running");
}

#[test]
fn a_sigkill_before_the_shutdown_does_not_make_it_unclean() {
    let mut h = Harness::new(&[("a", "command = [\"/a\"]\n[stop]\ntimeout = \"1s\"")]);
    h.core.request_restart("a", h.now).unwrap();
    h.core.reconcile(h.now);
    h.advance(Duration::from_secs(1));
    h.exit("a", Exit::Signaled(Signal::SIGKILL));
    h.core.begin_shutdown(h.now);
    h.exit("a", Exit::Exited(0));
    assert!(!h.core.unclean);
}

#[test]
fn immediate_restarts_of_a_failing_spawn_do_not_recurse() {
    // With no backoff at all, each failed start is retried from the loop, not from
    // inside the previous attempt: 200,000 attempts must not grow the stack.
    let worker = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let mut rec = Recorder::default();
            rec.failing.insert("nope".into());
            let mut h = Harness::with(
                &[("nope", "command = [\"/nope\"]\n[restart]\nbackoff-base = \"0\"\nbackoff-max = \"0\"\nintensity = 200000\nintensity-window = \"1h\"")],
                rec,
            );
            while h.state("nope") != "failed" {
                h.advance(Duration::ZERO);
            }
            h.core.exec.log.len()
        })
        .unwrap();
    assert_eq!(worker.join().expect("no stack overflow"), 200_001);
}

#[test]
fn leftovers_of_a_process_group_are_killed_when_its_leader_exits() {
    let mut h = Harness::new(&[("svc", LONGRUN)]);
    let pid = h.pid("svc");
    h.exit("svc", Exit::Exited(1));
    assert_eq!(h.core.exec.leftovers_killed, vec![pid]);
}

// Heartbeats.

#[test]
fn a_stale_heartbeat_restarts_the_service_through_its_restart_policy() {
    let mut h = Harness::new(&[(
        "beat",
        "command = [\"/b\"]\ncritical = true\n[heartbeat]\nmax-age = \"10s\"\n[restart]\nintensity = 1",
    )]);
    h.take_log();
    h.advance(Duration::from_secs(6));
    h.core.on_beat("beat", h.now);
    h.advance(Duration::from_secs(9));
    assert_eq!(h.take_log(), Vec::<String>::new(), "beaten 9 s ago: fresh");
    assert_eq!(h.core.status(h.now)[0].heartbeat_age_ms, Some(9000));
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.take_log(),
        vec!["SIGTERM beat"],
        "stale at max-age: stopped"
    );
    assert!(h.core.health().healthy, "zedinit is restarting it");
    h.exit("beat", Exit::Signaled(Signal::SIGTERM));
    assert_eq!(h.take_log(), vec!["spawn beat"]);
    assert_eq!(h.state("beat"), "running");
    assert_eq!(
        h.core
            .service("beat")
            .and_then(|s| s.note.clone())
            .as_deref(),
        Some("heartbeat stale (none for 10s)")
    );
    assert!(h.core.health().healthy);
    // The next stale run exhausts the intensity: failed, and a critical failure.
    h.advance(Duration::from_secs(10));
    h.exit("beat", Exit::Signaled(Signal::SIGTERM));
    assert_eq!(h.state("beat"), "failed");
    let health = h.core.health();
    assert!(
        !health.healthy && health.reasons[0].starts_with("beat failed: heartbeat stale"),
        "{health:?}"
    );
}

#[test]
fn a_declared_heartbeat_signal_comes_first_and_a_beat_in_the_grace_saves_it() {
    let mut h = Harness::new(&[(
        "beat",
        "command = [\"/b\"]\ncritical = true\n[heartbeat]\nmax-age = \"10s\"\nsignal = \"SIGUSR1\"\ngrace = \"5s\"",
    )]);
    h.take_log();
    h.advance(Duration::from_secs(10));
    assert_eq!(h.take_log(), vec!["signal beat SIGUSR1"]);
    let health = h.core.health();
    assert!(
        !health.healthy && health.reasons == vec!["beat: heartbeat stale".to_string()],
        "{health:?}"
    );
    h.advance(Duration::from_secs(4));
    h.core.on_beat("beat", h.now);
    assert!(h.core.health().healthy);
    h.advance(Duration::from_secs(9));
    assert_eq!(h.take_log(), Vec::<String>::new());
    // Silent again: signal, then after the grace, the restart.
    h.advance(Duration::from_secs(1));
    assert_eq!(h.take_log(), vec!["signal beat SIGUSR1"]);
    h.advance(Duration::from_secs(5));
    assert_eq!(h.take_log(), vec!["SIGTERM beat"]);
}

#[test]
fn watchdog_messages_count_as_beats() {
    let mut h = Harness::new(&[("beat", "command = [\"/b\"]\n[heartbeat]\nmax-age = \"2s\"")]);
    h.take_log();
    let pid = h.pid("beat");
    for _ in 0..5 {
        h.advance(Duration::from_millis(1500));
        assert!(h.core.on_notify("beat", Some(pid), "WATCHDOG=1", h.now));
    }
    assert_eq!(h.take_log(), Vec::<String>::new());
    assert_eq!(h.state("beat"), "running");
}

fn exec_later(names: &[&str]) -> Recorder {
    Recorder {
        exec_later: names.iter().map(|n| n.to_string()).collect(),
        ..Recorder::default()
    }
}

#[test]
fn dependents_start_only_once_the_child_has_execd() {
    let mut h = Harness::with(
        &[
            ("db", LONGRUN),
            (
                "app",
                r#"command = ["/bin/x"]
requires = ["db"]"#,
            ),
        ],
        exec_later(&["db"]),
    );
    assert_eq!(h.take_log(), ["spawn db"]);
    assert_eq!(h.state("db"), "starting", "not up before exec");
    // The report pipe woke the loop but holds nothing yet.
    let pid = h.pid("db");
    h.core.on_exec_report(pid, h.now);
    h.core.reconcile(h.now);
    assert_eq!(h.state("db"), "starting");
    h.core.exec.reports.insert(pid, Ok(()));
    h.core.on_exec_report(pid, h.now);
    h.core.reconcile(h.now);
    assert_eq!(h.state("db"), "running");
    assert_eq!(h.take_log(), ["spawn app"]);
}

#[test]
fn a_failed_exec_is_a_failed_start_with_its_step_named() {
    let mut h = Harness::with(
        &[(
            "svc",
            r#"command = ["/bin/x"]
[restart]
policy = "never""#,
        )],
        exec_later(&["svc"]),
    );
    let pid = h.pid("svc");
    h.core.exec.reports.insert(
        pid,
        Err("step \"mkdir\": Too many levels of symbolic links".into()),
    );
    h.core.on_exec_report(pid, h.now);
    // The child exits 127 after reporting.
    h.exit("svc", Exit::Exited(127));
    assert_eq!(h.state("svc"), "failed");
    let note = h
        .core
        .service("svc")
        .and_then(|s| s.note.clone())
        .unwrap_or_default();
    assert!(note.starts_with("cannot start: step \"mkdir\""), "{note}");
}

#[test]
fn an_exit_read_before_the_report_still_finds_the_exec_error() {
    let mut h = Harness::with(&[("svc", LONGRUN)], exec_later(&["svc"]));
    let pid = h.pid("svc");
    // SIGCHLD came first: the exit is handled before the pipe's event.
    h.core
        .exec
        .reports
        .insert(pid, Err("/bin/x: No such file or directory".into()));
    h.exit("svc", Exit::Exited(127));
    let note = h
        .core
        .service("svc")
        .and_then(|s| s.note.clone())
        .unwrap_or_default();
    assert!(
        note.contains("cannot start: /bin/x: No such file"),
        "{note}"
    );
    // A failed start is retried by policy (the first retry at once).
    assert_eq!(h.take_log(), ["spawn svc", "spawn svc"]);
}

#[test]
fn a_child_that_never_reaches_exec_is_killed_at_its_deadline() {
    let mut h = Harness::with(&[("svc", LONGRUN)], exec_later(&["svc"]));
    h.take_log();
    assert!(
        h.core.next_deadline().is_some(),
        "the exec deadline is a timer"
    );
    h.advance(EXEC_DEADLINE - Duration::from_millis(1));
    assert!(h.take_log().is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.take_log(), ["SIGKILL svc"]);
    h.exit("svc", Exit::Signaled(Signal::SIGKILL));
    let note = h
        .core
        .service("svc")
        .and_then(|s| s.note.clone())
        .unwrap_or_default();
    assert!(note.contains("did not reach exec within 30s"), "{note}");
}

#[test]
fn a_failed_service_is_tried_again_after_its_cool_down_and_stays_unhealthy_until_up() {
    let mut h = Harness::new(&[(
        "dl",
        r#"command = ["/bin/x"]
critical = true
[restart]
backoff-base = "1s"
intensity = 1
intensity-window = "1m"
retry-failed-after = "2m""#,
    )]);
    h.exit("dl", Exit::Exited(1)); // restarted at once
    h.exit("dl", Exit::Exited(1)); // over the intensity
    assert_eq!(h.state("dl"), "failed");
    assert!(!h.core.health().healthy);
    let status = h.core.status(h.now);
    assert_eq!(
        status[0].next_retry_ms,
        Some(120_000),
        "NEXT-RETRY shows the cool-down"
    );
    h.take_log();
    h.advance(Duration::from_secs(119));
    assert_eq!(h.state("dl"), "failed");
    assert!(h.take_log().is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.take_log(),
        ["spawn dl"],
        "tried again with a fresh history"
    );
    // Running is up: the watchdog may be fed again.
    assert_eq!(h.state("dl"), "running");
    assert!(h.core.health().healthy, "{:?}", h.core.health());
}

#[test]
fn a_critical_service_tried_again_is_unhealthy_until_it_is_up() {
    let mut h = Harness::new(&[(
        "db",
        r#"command = ["/bin/x"]
critical = true
[restart]
intensity = 1
retry-failed-after = "1m"
[ready]
notify = true
timeout = "1h""#,
    )]);
    let pid = h.pid("db");
    h.core.on_notify("db", Some(pid), "READY=1", h.now);
    h.exit("db", Exit::Exited(1));
    h.exit("db", Exit::Exited(1));
    assert_eq!(h.state("db"), "failed");
    h.advance(Duration::from_secs(60));
    assert_eq!(h.state("db"), "starting");
    let health = h.core.health();
    assert!(!health.healthy, "not up yet: {health:?}");
    assert!(
        health.reasons[0].contains("being tried again"),
        "{health:?}"
    );
    let pid = h.pid("db");
    h.core.on_notify("db", Some(pid), "READY=1", h.now);
    h.core.reconcile(h.now);
    assert!(h.core.health().healthy);
}

#[test]
fn never_means_failed_stays_failed() {
    let mut h = Harness::new(&[
        (
            "a",
            r#"command = ["/bin/x"]
[restart]
intensity = 1
retry-failed-after = "never""#,
        ),
        (
            "b",
            r#"command = ["/bin/x"]
[restart]
policy = "never""#,
        ),
    ]);
    h.exit("a", Exit::Exited(1));
    h.exit("a", Exit::Exited(1));
    h.exit("b", Exit::Exited(1));
    assert_eq!((h.state("a"), h.state("b")), ("failed", "failed"));
    h.take_log();
    h.advance(Duration::from_secs(24 * 3600));
    assert!(h.take_log().is_empty());
    assert_eq!(h.core.status(h.now)[0].next_retry_ms, None);
}

#[test]
fn a_stop_last_service_stops_after_every_other_and_health_stays_healthy_meanwhile() {
    let mut h = Harness::new(&[
        ("db", "command = [\"/db\"]\ncritical = true"),
        (
            "api",
            "command = [\"/api\"]\ncritical = true\nafter = [\"db\"]",
        ),
        ("watchdog", "command = [\"/w\"]\nstop-last = true"),
    ]);
    h.take_log();
    h.core.begin_shutdown(h.now);
    // The watchdog is a leaf too, but waits for the last of the others.
    assert_eq!(h.take_log(), vec!["SIGTERM api"]);
    assert!(h.core.health().healthy, "{:?}", h.core.health());
    // A critical service that exits badly while being stopped is stopped, not failed.
    h.exit("api", Exit::Exited(1));
    assert_eq!(h.take_log(), vec!["SIGTERM db"]);
    assert!(h.core.health().healthy, "{:?}", h.core.health());
    h.advance(Duration::from_secs(60));
    assert_eq!(h.take_log(), vec!["SIGKILL db"]);
    assert_eq!(h.state("watchdog"), "running");
    h.exit("db", Exit::Signaled(Signal::SIGKILL));
    assert_eq!(h.take_log(), vec!["SIGTERM watchdog"]);
    assert!(h.core.health().healthy, "{:?}", h.core.health());
    h.exit("watchdog", Exit::Exited(0));
    assert!(h.core.all_stopped());
}

#[test]
fn a_stop_last_service_still_stops_before_what_it_depends_on() {
    let mut h = Harness::new(&[
        ("dirs", LONGRUN),
        ("socket", "command = [\"/s\"]\nafter = [\"dirs\"]"),
        (
            "watchdog",
            "command = [\"/w\"]\nstop-last = true\nrequires = [\"socket\"]",
        ),
        ("app", "command = [\"/a\"]\nafter = [\"dirs\"]"),
        ("ticker", "command = [\"/t\"]\nstop-last = true"),
    ]);
    h.take_log();
    h.core.begin_shutdown(h.now);
    // Only app is neither stop-last nor needed by a stop-last service.
    assert_eq!(h.take_log(), vec!["SIGTERM app"]);
    h.exit("app", Exit::Exited(0));
    // The watchdog doesn't wait for what it depends on (they wait for it); the ticker
    // (needing nothing) waits for them too, but not for the other stop-last service.
    assert_eq!(h.take_log(), vec!["SIGTERM watchdog"]);
    h.exit("watchdog", Exit::Exited(0));
    assert_eq!(h.take_log(), vec!["SIGTERM socket"]);
    h.exit("socket", Exit::Exited(0));
    assert_eq!(h.take_log(), vec!["SIGTERM dirs"]);
    h.exit("dirs", Exit::Exited(0));
    assert_eq!(h.take_log(), vec!["SIGTERM ticker"]);
    h.exit("ticker", Exit::Exited(0));
    assert!(h.core.all_stopped());
}

#[test]
fn stop_last_does_not_delay_a_stop_on_request() {
    let mut h = Harness::new(&[
        ("other", LONGRUN),
        ("watchdog", "command = [\"/w\"]\nstop-last = true"),
    ]);
    h.take_log();
    h.core.request_stop("watchdog", h.now).expect("stop");
    h.core.reconcile(h.now);
    assert_eq!(h.take_log(), vec!["SIGTERM watchdog"]);
}

/// A `supctl start` (or `restart`) waiting on a program that comes up and exits between
/// two looks at its state: the exec report and the exit are read together, so its state
/// goes from `starting` to `backoff` without ever showing `running`. It came up, so the
/// waiter is answered that it started, not kept until the crash loop fails.
#[test]
fn a_start_waiter_sees_a_program_that_ran_and_exited_at_once() {
    use crate::verbs::{Outcome, Supervisor};
    let crasher = r#"command = ["/bin/x"]
[restart]
backoff-base = "50ms"
intensity = 4"#;
    let h = Harness::with(&[("crasher", crasher)], exec_later(&["crasher"]));
    let now = h.now;
    let mut sup = Supervisor {
        core: h.core,
        dirs: Vec::new(),
        pid: 1,
        subreaper: false,
        rescans: 0,
        one_off_requests: 0,
    };
    // Exits at once, before its exec report was read (one event batch).
    let run_and_exit = |sup: &mut Supervisor<Recorder>| {
        let pid = sup
            .core
            .service("crasher")
            .and_then(|s| s.pid)
            .expect("pid");
        sup.core.exec.reports.insert(pid, Ok(()));
        assert!(sup.core.on_exit(pid, Exit::Exited(3), now));
        sup.core.reconcile(now);
    };
    let goal_of = |outcome: Outcome| match outcome {
        Outcome::Wait { goal, .. } => goal,
        other => panic!("expected a wait, got {other:?}"),
    };
    // The first process is there but has not exec'd: a start waits for it.
    let goal = goal_of(sup.handle_line(
        br#"{"version":1,"verb":"start","service":"crasher","wait_ms":5000}"#,
        now,
    ));
    assert_eq!(sup.check(&goal), None, "not up before its exec");
    run_and_exit(&mut sup);
    assert_ne!(
        sup.core.service("crasher").map(|s| s.state.name()),
        Some("running")
    );
    let answer = sup.check(&goal).expect("answered once its program ran");
    assert!(answer.ok, "{answer:?}");

    // A restart waits for a newer process than the one it asked about.
    let goal = goal_of(sup.handle_line(
        br#"{"version":1,"verb":"restart","service":"crasher","wait_ms":5000}"#,
        now,
    ));
    // The process it asked about stops; the new one has not run yet.
    run_and_exit(&mut sup);
    assert_eq!(sup.check(&goal), None, "the new process has not run yet");
    run_and_exit(&mut sup);
    let answer = sup.check(&goal).expect("answered once the new process ran");
    assert!(answer.ok, "{answer:?}");
}
