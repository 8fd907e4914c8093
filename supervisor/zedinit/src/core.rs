//! The supervisor's state machine: every service's state, and the decisions taken on
//! events (an exit, a timer, a request, a rescan). The OS work it orders goes through
//! the narrow [`Executor`] trait, so everything here is tested without processes.
//!
//! Invariant: a pid is recorded in the same call that spawned it, before control returns
//! to the event loop, the only place that reaps; so no exit can be reaped unrecorded.

use crate::exit::Exit;
use crate::graph;
use crate::log;
use crate::parse::{ConfigError, Loaded};
use crate::policy::{self, Jitter, RestartHistory, Verdict};
use crate::rescan;
use crate::spec::{ReadyCheck, ServiceSpec, ServiceType};
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use zedctr_proto::status::{Health, ServiceStatus};

/// How long a process group gets to disappear after SIGKILL before we stop waiting
/// (a process stuck in uninterruptible sleep can outlive SIGKILL).
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// How long a new child may take to reach exec (its confinement steps: mounts,
/// namespaces) before it is killed and the start counts as failed. A mount on a dead
/// disk can hang there; zedinit never waits on it.
pub const EXEC_DEADLINE: Duration = Duration::from_secs(30);

/// A child just started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spawned {
    pub pid: i32,
    /// Whether it is already known to have exec'd; otherwise [`Executor::exec_report`]
    /// tells later (fork and go).
    pub exec_confirmed: bool,
}

/// The OS operations the state machine orders.
pub trait Executor {
    /// Starts the service in a new session (its own process group); returns its pid at
    /// once, without waiting for its exec.
    fn spawn(&mut self, spec: &ServiceSpec) -> Result<Spawned, String>;
    /// What the child `pid` reported about its exec, if known by now: `Ok` once it
    /// exec'd, `Err` with the failed step (it then exits 127). Known at the latest once
    /// the child has exited.
    fn exec_report(&mut self, pid: i32) -> Option<Result<(), String>> {
        let _ = pid;
        Some(Ok(()))
    }
    /// Sends `signal` to the whole process group led by `pgid`.
    fn signal_group(&mut self, pgid: i32, signal: Signal);
    /// Sends `signal` to one process.
    fn signal_process(&mut self, pid: i32, signal: Signal) -> Result<(), String>;
    fn path_exists(&self, path: &Path) -> bool;
    /// Starts a readiness probe (`tcp`, `exec`) as a child, with the confinement of the
    /// service whose main process is `main_pid`; it exits 0 when ready.
    fn spawn_probe(&mut self, spec: &ServiceSpec, main_pid: i32) -> Result<i32, String>;
    /// Whether a `file` readiness check needs a probe process: a confined service's
    /// files are in its own root, which only a process that enters its mount namespace
    /// sees (with its credentials). Otherwise the path is checked in place.
    fn file_check_needs_probe(&self, spec: &ServiceSpec) -> bool {
        let _ = spec;
        false
    }
    /// Whether process `pid` belongs to the service whose main process is `main_pid`
    /// (it is that process, or in its session or process group).
    fn belongs_to(&self, pid: i32, main_pid: i32) -> bool;
    /// The service is gone for good (removed by a rescan): free what was made for it.
    fn release(&mut self, name: &str);
    /// A service's main process has exited: SIGKILL what is left of its process group,
    /// as when a container's init dies (no strays holding its ports into the restart).
    fn kill_leftovers(&mut self, pgid: i32);
    /// The last `n` lines of the service's captured output, oldest first.
    fn log_tail(&self, name: &str, n: usize) -> Vec<String>;
}

/// What is true of a service now: its state, as `supctl status` and the wire name it
/// (`ServiceStatus::state`).
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not running: never started, waiting for dependencies, or stopped on request.
    Stopped,
    /// A oneshot is running (its dependents wait for `Done`), or a longrun with
    /// `[ready]` has not said it is ready yet.
    Starting,
    /// A longrun with `[ready]` that passed its readiness check.
    Ready,
    Running,
    /// Crashed; starts again at `until`.
    Backoff {
        until: Instant,
    },
    /// Asked to stop; SIGKILL to its process group at `deadline` unless already `killed`.
    Stopping {
        deadline: Instant,
        killed: bool,
    },
    Done,
    Skipped,
    Failed,
}

impl State {
    /// The state name shown by `supctl status` (DESIGN.md, exactly).
    pub fn name(&self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Starting => "starting",
            State::Ready => "ready",
            State::Running => "running",
            State::Backoff { .. } => "backoff",
            State::Stopping { .. } => "stopping",
            State::Done => "done",
            State::Skipped => "skipped",
            State::Failed => "failed",
        }
    }

    /// Its process runs and was not asked to stop.
    pub fn is_running(&self) -> bool {
        matches!(self, State::Starting | State::Ready | State::Running)
    }

    /// A process of this service exists.
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            State::Starting | State::Ready | State::Running | State::Stopping { .. }
        )
    }

    /// Dependents that require this service may run.
    pub fn is_up(&self) -> bool {
        matches!(
            self,
            State::Ready | State::Running | State::Done | State::Skipped
        )
    }
}

/// What to do once a stopping service's process has exited.
#[derive(Debug, Clone, PartialEq)]
enum AfterStop {
    Rest,
    Restart,
    Replace(Box<ServiceSpec>),
    Remove,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub spec: ServiceSpec,
    pub state: State,
    pub pid: Option<i32>,
    pub started_at: Option<Instant>,
    /// False after a stop request: reconcile leaves it down until a start request.
    pub wanted: bool,
    pub restarts: u32,
    pub history: RestartHistory,
    pub last_exit: Option<Exit>,
    pub note: Option<String>,
    /// Increases with every spawn; lets `restart` waiters see a new process.
    pub generation: u64,
    /// `STATUS=` text from the service's notify socket.
    pub status_text: Option<String>,
    /// Readiness bookkeeping while `Starting` (longruns with `[ready]`).
    readiness: Readiness,
    /// Until the child has exec'd: the time by which it must.
    exec_deadline: Option<Instant>,
    /// `failed` with a cool-down: tried again then (`[restart] retry-failed-after`).
    pub retry_at: Option<Instant>,
    /// Tried again after `failed` and not up yet: a critical one is still unhealthy.
    recovering: bool,
    /// Why the last start failed before exec (a confinement step, exec itself, or the
    /// exec deadline); the coming exit is that failure, not the program's.
    exec_failed: Option<String>,
    /// The last heartbeat (touch of its file, or WATCHDOG=1); set at each start.
    pub last_beat: Option<Instant>,
    stale: Stale,
    then: AfterStop,
}

/// Where a service with `[heartbeat]` stands.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
enum Stale {
    #[default]
    Fresh,
    /// Its heartbeat signal was sent at this time; restart after the grace.
    Signaled(Instant),
    /// Being stopped for a stale heartbeat; the exit goes to the restart policy.
    Restarting,
}

#[derive(Debug, Clone, Default)]
struct Readiness {
    /// Not ready by then: the start failed.
    deadline: Option<Instant>,
    /// When to run the next `tcp`/`file`/`exec` probe.
    next_probe: Option<Instant>,
    /// A probe process still running (reaped like any child, kept until then).
    probe_pid: Option<i32>,
    /// The deadline passed and the group was killed: the coming exit is that failure.
    timed_out: bool,
}

impl Service {
    /// When its heartbeat goes (or, signalled, stays) stale; `None` without one to watch.
    fn heartbeat_deadline(&self) -> Option<Instant> {
        let hb = self.spec.heartbeat.as_ref()?;
        if !matches!(self.state, State::Running | State::Ready) {
            return None;
        }
        match self.stale {
            Stale::Fresh => Some(self.last_beat? + hb.max_age),
            Stale::Signaled(at) => Some(at + hb.grace),
            Stale::Restarting => None,
        }
    }

    /// The definition it will run next: a pending replacement, else the current one.
    fn intended_spec(&self) -> &ServiceSpec {
        match &self.then {
            AfterStop::Replace(spec) => spec,
            _ => &self.spec,
        }
    }

    fn new(spec: ServiceSpec) -> Self {
        Service {
            spec,
            state: State::Stopped,
            pid: None,
            started_at: None,
            wanted: true,
            restarts: 0,
            history: RestartHistory::default(),
            last_exit: None,
            note: None,
            generation: 0,
            status_text: None,
            readiness: Readiness::default(),
            exec_deadline: None,
            exec_failed: None,
            retry_at: None,
            recovering: false,
            last_beat: None,
            stale: Stale::Fresh,
            then: AfterStop::Rest,
        }
    }
}

/// Errors of requests from the control socket.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestError {
    UnknownService(String),
    InvalidState(String),
    ShuttingDown,
}

pub struct Core<E: Executor> {
    pub exec: E,
    services: BTreeMap<String, Service>,
    /// Start order of the current definitions (dependencies first).
    order: Vec<String>,
    jitter: Jitter,
    shutting_down: bool,
    /// Something had to be killed with SIGKILL during a stop: the shutdown was not clean.
    pub unclean: bool,
    pub orphans_reaped: u64,
    pub definition_errors: Vec<ConfigError>,
}

impl<E: Executor> Core<E> {
    pub fn new(exec: E, loaded: Loaded, seed: u64) -> Self {
        let mut core = Core {
            exec,
            services: BTreeMap::new(),
            order: Vec::new(),
            jitter: Jitter::new(seed),
            shutting_down: false,
            unclean: false,
            orphans_reaped: 0,
            definition_errors: Vec::new(),
        };
        for error in &loaded.errors {
            log::warn(format_args!("definition: {error}"));
        }
        core.definition_errors = loaded.errors.clone();
        for (name, spec) in loaded.specs() {
            core.services.insert(name, Service::new(spec));
        }
        core.reorder();
        core
    }

    fn reorder(&mut self) {
        let specs: BTreeMap<String, ServiceSpec> = self
            .services
            .iter()
            .map(|(n, s)| (n.clone(), s.spec.clone()))
            .collect();
        self.order = graph::start_order(&specs);
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// No service process is left.
    pub fn all_stopped(&self) -> bool {
        self.services.values().all(|s| s.pid.is_none())
    }

    /// Starts what may start and stops what must stop, until nothing changes.
    pub fn reconcile(&mut self, now: Instant) {
        // Each pass can only settle more services, so this ends; the bound is a guard.
        for _ in 0..=self.order.len() + 1 {
            if !self.reconcile_pass(now) {
                break;
            }
        }
        for svc in self.services.values_mut() {
            if svc.recovering && (svc.state.is_up() || !svc.wanted) {
                svc.recovering = false;
                if svc.state.is_up() {
                    log::info(format_args!("{}: recovered", svc.spec.name));
                }
            }
        }
    }

    fn reconcile_pass(&mut self, now: Instant) -> bool {
        let mut changed = false;
        let order = self.order.clone();
        // Stops, dependents first: walk the start order backwards.
        for name in order.iter().rev() {
            let Some(svc) = self.services.get(name) else {
                continue;
            };
            if !svc.state.is_running() {
                continue;
            }
            let reason = if self.shutting_down || !svc.wanted {
                // Wait for dependents to be gone first: all of them at shutdown, the
                // ones that require it otherwise.
                let waiting = self.active_dependents(name, !self.shutting_down);
                if !waiting.is_empty() || (self.shutting_down && self.must_stay_up(svc)) {
                    continue;
                }
                None
            } else if let Some(down) = self.required_down(svc) {
                Some(format!("stopped: requires {down}, which is down"))
            } else {
                continue;
            };
            self.begin_stop(name, now);
            if let (Some(reason), Some(svc)) = (reason, self.services.get_mut(name)) {
                svc.note = Some(reason);
            }
            changed = true;
        }
        if self.shutting_down {
            return changed;
        }
        // Starts, dependencies first.
        for name in &order {
            let Some(svc) = self.services.get(name) else {
                continue;
            };
            let due = match svc.state {
                State::Stopped => true,
                State::Backoff { until } => until <= now,
                _ => false,
            };
            if !(svc.wanted && due) {
                continue;
            }
            let waiting = self.unmet_dependencies(svc);
            if waiting.is_empty() {
                self.start(name, now);
                changed = true;
            } else {
                let note = format!("waiting for {}", waiting.join(", "));
                if let Some(svc) = self.services.get_mut(name) {
                    if svc.note.as_deref() != Some(note.as_str()) {
                        svc.note = Some(note);
                    }
                }
            }
        }
        changed
    }

    /// Dependents of `name` that still have a process (only `requires` ones if asked).
    fn active_dependents(&self, name: &str, requires_only: bool) -> Vec<String> {
        self.services
            .values()
            .filter(|s| s.state.is_active())
            .filter(|s| {
                if requires_only {
                    s.spec.requires.iter().any(|d| d == name)
                } else {
                    s.spec.dependencies().any(|d| d == name)
                }
            })
            .map(|s| s.spec.name.clone())
            .collect()
    }

    /// A `stop-last` service at shutdown stays up while any other service still has a
    /// process, except the ones it depends on (directly or not): those stop after it, so
    /// waiting for them would wait forever. Other `stop-last` services don't hold it.
    fn must_stay_up(&self, svc: &Service) -> bool {
        if !svc.spec.stop_last {
            return false;
        }
        let needed = self.dependencies_of(&svc.spec.name);
        self.services.values().any(|other| {
            other.state.is_active()
                && !other.spec.stop_last
                && !needed.contains(other.spec.name.as_str())
        })
    }

    /// Every service `name` depends on, directly or through others.
    fn dependencies_of(&self, name: &str) -> BTreeSet<&str> {
        let mut found = BTreeSet::new();
        let mut todo = vec![name];
        while let Some(next) = todo.pop() {
            let Some(svc) = self.services.get(next) else {
                continue;
            };
            for dep in svc.spec.dependencies() {
                if found.insert(dep) {
                    todo.push(dep);
                }
            }
        }
        found
    }

    /// A required service that is durably down (failed, or stopped or removed on request).
    fn required_down(&self, svc: &Service) -> Option<String> {
        svc.spec
            .requires
            .iter()
            .find_map(|dep| match self.services.get(dep) {
                None => Some(dep.clone()),
                Some(d) if d.state == State::Failed => Some(dep.clone()),
                // Not wanted: it is going down (or stays down), so its dependents go first.
                Some(d) if !d.wanted && d.state != State::Skipped => Some(dep.clone()),
                Some(_) => None,
            })
    }

    /// Dependencies `svc` still waits for. `after` waits for a dependency to settle
    /// (up, failed, or stopped on request); `requires` waits for it to be up.
    fn unmet_dependencies(&self, svc: &Service) -> Vec<String> {
        let mut unmet = Vec::new();
        for dep in svc.spec.dependencies() {
            let required = svc.spec.requires.iter().any(|r| r == dep);
            let met = match self.services.get(dep) {
                None => !required,
                Some(d) if d.state.is_up() => true,
                Some(_) if required => false,
                Some(d) => d.state == State::Failed || (!d.wanted && !d.state.is_active()),
            };
            if !met {
                unmet.push(dep.to_string());
            }
        }
        unmet
    }

    fn start(&mut self, name: &str, now: Instant) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        // The first condition that does not hold is the one said.
        for cond in &svc.spec.conditions {
            let exists = self.exec.path_exists(&cond.path);
            if exists == cond.negate {
                svc.state = State::Skipped;
                let what = if cond.negate {
                    "exists"
                } else {
                    "does not exist"
                };
                svc.note = Some(format!("condition: {} {what}", cond.path.display()));
                log::info(format_args!(
                    "{name}: skipped ({} {what})",
                    cond.path.display()
                ));
                return;
            }
        }
        match self.exec.spawn(&svc.spec) {
            Ok(Spawned {
                pid,
                exec_confirmed,
            }) => {
                svc.pid = Some(pid);
                svc.exec_deadline = (!exec_confirmed).then_some(now + EXEC_DEADLINE);
                svc.exec_failed = None;
                svc.started_at = Some(now);
                svc.generation += 1;
                // After a crash, the note says why it restarted until something new.
                if !matches!(svc.state, State::Backoff { .. }) {
                    svc.note = None;
                }
                svc.status_text = None;
                svc.readiness = Readiness::default();
                svc.last_beat = Some(now);
                svc.stale = Stale::Fresh;
                svc.state = match (&svc.spec.kind, &svc.spec.ready) {
                    (ServiceType::Oneshot, _) => State::Starting,
                    // Up (dependents may start) only once its program runs.
                    (ServiceType::Longrun, None) if exec_confirmed => State::Running,
                    (ServiceType::Longrun, None) => State::Starting,
                    (ServiceType::Longrun, Some(ready)) => {
                        svc.readiness.deadline = Some(now + ready.timeout);
                        // Probes start once the program runs.
                        if ready.check != ReadyCheck::Notify && exec_confirmed {
                            svc.readiness.next_probe = Some(now);
                        }
                        State::Starting
                    }
                };
                log::info(format_args!("{name}: started, pid {pid}"));
            }
            Err(error) => self.start_failed(name, &error, now),
        }
    }

    /// A start that never reached the program (spawn, a confinement step, exec, or the
    /// exec deadline): the restart policy's spawn-failure verdict.
    fn start_failed(&mut self, name: &str, error: &str, now: Instant) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        log::warn(format_args!("{name}: cannot start: {error}"));
        svc.readiness = Readiness::default();
        let verdict = policy::after_spawn_failure(
            &svc.spec.restart,
            &mut svc.history,
            error,
            now,
            self.jitter.sample(),
        );
        svc.note = Some(format!("cannot start: {error}"));
        self.apply_verdict(name, verdict, now);
    }

    fn begin_stop(&mut self, name: &str, now: Instant) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        match (svc.pid, &svc.state) {
            (Some(pid), State::Starting | State::Ready | State::Running) => {
                log::info(format_args!(
                    "{name}: stopping with {}",
                    svc.spec.stop.signal.as_str()
                ));
                self.exec.signal_group(pid, svc.spec.stop.signal);
                // A stopped (SIGSTOP) process would sit on the signal until the deadline.
                if svc.spec.stop.signal != Signal::SIGCONT {
                    self.exec.signal_group(pid, Signal::SIGCONT);
                }
                svc.state = State::Stopping {
                    deadline: now + svc.spec.stop.timeout,
                    killed: false,
                };
            }
            (_, State::Stopping { .. }) => {}
            _ => {
                svc.state = State::Stopped;
                self.finish_stop(name);
            }
        }
    }

    /// The process is gone (or was never there): carry out what the stop was for.
    fn finish_stop(&mut self, name: &str) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        svc.pid = None;
        svc.started_at = None;
        match std::mem::replace(&mut svc.then, AfterStop::Rest) {
            AfterStop::Rest => {}
            AfterStop::Restart => {
                svc.wanted = true;
                svc.restarts += 1;
            }
            AfterStop::Replace(spec) => {
                svc.spec = *spec;
                svc.history.reset();
                self.reorder();
            }
            AfterStop::Remove => {
                self.services.remove(name);
                self.exec.release(name);
                self.reorder();
                log::info(format_args!("{name}: removed"));
            }
        }
    }

    fn apply_verdict(&mut self, name: &str, verdict: Verdict, now: Instant) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        match verdict {
            Verdict::Done => {
                svc.state = State::Done;
                svc.note = None;
                log::info(format_args!("{name}: done"));
            }
            Verdict::Stop => {
                svc.state = State::Stopped;
                svc.wanted = false;
                svc.note = Some("exited; its restart policy does not restart it".into());
            }
            Verdict::Fail { reason } => {
                svc.state = State::Failed;
                // Its own policy said never: a person decides. Restarts exhausted: a
                // cause outside it may pass, so try again after the cool-down.
                svc.retry_at = match svc.spec.restart.policy {
                    crate::spec::RestartPolicy::Never => None,
                    _ => svc.spec.restart.retry_failed_after.map(|d| now + d),
                };
                match svc.retry_at {
                    Some(at) => log::warn(format_args!(
                        "{name}: failed: {reason}; trying again in {}",
                        confkit::durations::format_duration(at.saturating_duration_since(now))
                    )),
                    None => log::warn(format_args!("{name}: failed: {reason}")),
                }
                svc.note = Some(reason);
            }
            Verdict::Restart { delay } => {
                svc.restarts += 1;
                if delay.is_zero() {
                    // Due at once: reconcile starts it (never a direct call to `start`
                    // here, which could recurse as deep as the intensity allows).
                    svc.state = State::Backoff { until: now };
                } else {
                    log::info(format_args!(
                        "{name}: restarting in {}",
                        confkit::durations::format_duration(delay)
                    ));
                    svc.state = State::Backoff { until: now + delay };
                }
            }
        }
    }

    /// A child was reaped. Returns false if it was not a service (an orphan).
    pub fn on_exit(&mut self, pid: i32, exit: Exit, now: Instant) -> bool {
        if self.on_probe_exit(pid, exit, now) {
            return true;
        }
        let Some(name) = self
            .services
            .iter()
            .find(|(_, s)| s.pid == Some(pid))
            .map(|(n, _)| n.clone())
        else {
            self.orphans_reaped += 1;
            return false;
        };
        if self
            .services
            .get(&name)
            .is_some_and(|s| s.exec_deadline.is_some())
        {
            // Exited before its exec report was read: the pipe holds it now.
            let report = self.exec.exec_report(pid);
            if let Some(svc) = self.services.get_mut(&name) {
                svc.exec_deadline = None;
                if let Some(Err(e)) = report {
                    svc.exec_failed.get_or_insert(e);
                }
            }
        }
        let Some(svc) = self.services.get_mut(&name) else {
            return false;
        };
        let ran_for = svc
            .started_at
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or_default();
        svc.last_exit = Some(exit);
        svc.pid = None;
        svc.started_at = None;
        self.exec.kill_leftovers(pid);
        // Stopped for a stale heartbeat: the exit is a failure for the restart policy.
        let stale_restart = svc.stale == Stale::Restarting && svc.wanted && !self.shutting_down;
        match svc.state {
            State::Stopping { .. } if !stale_restart => {
                log::info(format_args!("{name}: stopped ({exit})"));
                svc.state = State::Stopped;
                self.finish_stop(&name);
            }
            _ if self.shutting_down || !svc.wanted => {
                log::info(format_args!("{name}: exited ({exit})"));
                svc.state = State::Stopped;
                self.finish_stop(&name);
            }
            _ if svc.exec_failed.is_some() => {
                let error = svc.exec_failed.take().unwrap_or_default();
                self.start_failed(&name, &error, now);
            }
            _ => {
                log::info(format_args!(
                    "{name}: exited ({exit}) after {}",
                    confkit::durations::format_duration(ran_for)
                ));
                let verdict = policy::after_exit(
                    svc.spec.kind,
                    &svc.spec.restart,
                    &mut svc.history,
                    exit,
                    ran_for,
                    now,
                    self.jitter.sample(),
                );
                let not_ready = if svc.readiness.timed_out {
                    let timeout = svc
                        .spec
                        .ready
                        .as_ref()
                        .map(|r| r.timeout)
                        .unwrap_or_default();
                    Some(format!(
                        "not ready within {}",
                        confkit::durations::format_duration(timeout)
                    ))
                } else if stale_restart {
                    let max_age = svc
                        .spec
                        .heartbeat
                        .as_ref()
                        .map(|h| h.max_age)
                        .unwrap_or_default();
                    Some(format!(
                        "heartbeat stale (none for {})",
                        confkit::durations::format_duration(max_age)
                    ))
                } else {
                    None
                };
                svc.stale = Stale::Fresh;
                self.apply_verdict(&name, verdict, now);
                if let (Some(not_ready), Some(svc)) = (not_ready, self.services.get_mut(&name)) {
                    svc.note = Some(match svc.note.take() {
                        Some(note) => format!("{not_ready}; {note}"),
                        None => not_ready,
                    });
                }
            }
        }
        true
    }

    /// Timers: backoffs that ran out, stop deadlines that passed, readiness probes and
    /// readiness deadlines.
    pub fn on_tick(&mut self, now: Instant) {
        let names: Vec<String> = self.services.keys().cloned().collect();
        for name in &names {
            self.exec_tick(name, now);
            self.readiness_tick(name, now);
            self.heartbeat_tick(name, now);
        }
        for name in names {
            let Some(svc) = self.services.get_mut(&name) else {
                continue;
            };
            match svc.state {
                State::Backoff { until } if until <= now => {
                    svc.state = State::Stopped;
                }
                State::Failed if svc.retry_at.is_some_and(|at| at <= now) && svc.wanted => {
                    log::info(format_args!("{name}: trying again after its cool-down"));
                    svc.retry_at = None;
                    svc.recovering = true;
                    svc.history.reset();
                    svc.state = State::Stopped;
                }
                State::Stopping { deadline, killed } if deadline <= now => {
                    if killed {
                        log::warn(format_args!(
                            "{name}: still there {}s after SIGKILL; no longer waiting for it",
                            KILL_GRACE.as_secs()
                        ));
                        svc.note = Some("did not exit after SIGKILL".into());
                        svc.state = State::Stopped;
                        self.finish_stop(&name);
                    } else if let Some(pid) = svc.pid {
                        log::warn(format_args!(
                            "{name}: did not stop within {}; SIGKILL to its process group",
                            confkit::durations::format_duration(svc.spec.stop.timeout)
                        ));
                        self.exec.signal_group(pid, Signal::SIGKILL);
                        // Only a shutdown's SIGKILLs make zedinit's exit unclean; one
                        // during an earlier `supctl stop` or restart does not.
                        if self.shutting_down {
                            self.unclean = true;
                        }
                        svc.state = State::Stopping {
                            deadline: now + KILL_GRACE,
                            killed: true,
                        };
                    }
                }
                _ => {}
            }
        }
    }

    /// The exec report of a new child arrived (or may have): a program that runs is
    /// up or starts its readiness checks; a failed one is dealt with at its exit.
    pub fn on_exec_report(&mut self, pid: i32, now: Instant) {
        let Some(name) = self
            .services
            .iter()
            .find(|(_, s)| s.pid == Some(pid) && s.exec_deadline.is_some())
            .map(|(n, _)| n.clone())
        else {
            return;
        };
        let Some(report) = self.exec.exec_report(pid) else {
            return;
        };
        let Some(svc) = self.services.get_mut(&name) else {
            return;
        };
        svc.exec_deadline = None;
        match report {
            Err(e) => {
                // The child exits 127 now; its exit applies the restart policy.
                svc.exec_failed = Some(e);
            }
            Ok(()) if svc.state == State::Starting => match (&svc.spec.kind, &svc.spec.ready) {
                (ServiceType::Longrun, None) => svc.state = State::Running,
                (ServiceType::Longrun, Some(ready)) if ready.check != ReadyCheck::Notify => {
                    svc.readiness.next_probe = Some(now);
                }
                _ => {}
            },
            Ok(()) => {}
        }
    }

    /// A child that has not reached exec by its deadline is killed; its exit is a
    /// failed start.
    fn exec_tick(&mut self, name: &str, now: Instant) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let (Some(deadline), Some(pid)) = (svc.exec_deadline, svc.pid) else {
            return;
        };
        if deadline > now {
            return;
        }
        let why = format!(
            "did not reach exec within {}",
            confkit::durations::format_duration(EXEC_DEADLINE)
        );
        log::warn(format_args!("{name}: {why}; SIGKILL to it"));
        svc.exec_deadline = None;
        svc.exec_failed = Some(why);
        self.exec.signal_group(pid, Signal::SIGKILL);
    }

    /// The earliest timer the core owes.
    pub fn next_deadline(&self) -> Option<Instant> {
        let phases = self.services.values().filter_map(|s| match s.state {
            State::Backoff { until } => Some(until),
            State::Stopping { deadline, .. } => Some(deadline),
            _ => None,
        });
        let execs = self.services.values().filter_map(|s| s.exec_deadline);
        let retries = self
            .services
            .values()
            .filter(|s| s.state == State::Failed && s.wanted)
            .filter_map(|s| s.retry_at);
        let readiness = self
            .services
            .values()
            .filter(|s| s.state == State::Starting && !s.readiness.timed_out)
            .flat_map(|s| {
                let probe = s
                    .readiness
                    .next_probe
                    .filter(|_| s.readiness.probe_pid.is_none());
                [s.readiness.deadline, probe]
            })
            .flatten();
        let heartbeats = self
            .services
            .values()
            .filter_map(Service::heartbeat_deadline);
        phases
            .chain(execs)
            .chain(retries)
            .chain(readiness)
            .chain(heartbeats)
            .min()
    }

    /// A beat from the service: its file was touched, or it sent WATCHDOG=1.
    pub fn on_beat(&mut self, name: &str, now: Instant) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        if svc.pid.is_none() || svc.spec.heartbeat.is_none() {
            return;
        }
        svc.last_beat = Some(now);
        if let Stale::Signaled(_) = svc.stale {
            log::info(format_args!("{name}: heartbeat back"));
            svc.stale = Stale::Fresh;
        }
    }

    /// Signals, then restarts, a service whose heartbeat is older than its max-age.
    fn heartbeat_tick(&mut self, name: &str, now: Instant) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let (Some(hb), Some(pid), Some(due)) = (
            svc.spec.heartbeat.clone(),
            svc.pid,
            svc.heartbeat_deadline(),
        ) else {
            return;
        };
        if due > now || self.shutting_down {
            return;
        }
        match (svc.stale, hb.signal) {
            (Stale::Fresh, Some(signal)) => {
                log::warn(format_args!(
                    "{name}: no heartbeat for {}; sending {}",
                    confkit::durations::format_duration(hb.max_age),
                    signal.as_str()
                ));
                let _ = self.exec.signal_process(pid, signal);
                svc.stale = Stale::Signaled(now);
            }
            (Stale::Fresh, None) | (Stale::Signaled(_), _) => {
                log::warn(format_args!("{name}: heartbeat stale; restarting it"));
                svc.stale = Stale::Restarting;
                self.begin_stop(name, now);
            }
            (Stale::Restarting, _) => {}
        }
    }

    fn mark_ready(&mut self, name: &str, how: &str) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        if svc.state == State::Starting && svc.spec.ready.is_some() {
            svc.state = State::Ready;
            svc.readiness.deadline = None;
            svc.readiness.next_probe = None;
            log::info(format_args!("{name}: ready ({how})"));
        }
    }

    /// Runs due probes and fails starts whose readiness deadline passed.
    fn readiness_tick(&mut self, name: &str, now: Instant) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let (State::Starting, Some(ready), Some(pid)) =
            (&svc.state, svc.spec.ready.clone(), svc.pid)
        else {
            return;
        };
        if svc.readiness.timed_out {
            return;
        }
        if svc.readiness.deadline.is_some_and(|d| d <= now) {
            log::warn(format_args!(
                "{name}: not ready within {}; SIGKILL to its process group",
                confkit::durations::format_duration(ready.timeout)
            ));
            svc.readiness.timed_out = true;
            self.exec.signal_group(pid, Signal::SIGKILL);
            if let Some(probe) = svc.readiness.probe_pid {
                self.exec.signal_group(probe, Signal::SIGKILL);
            }
            return;
        }
        if svc.readiness.probe_pid.is_some() || svc.readiness.next_probe.is_none_or(|t| t > now) {
            return;
        }
        match &ready.check {
            ReadyCheck::Notify => {}
            ReadyCheck::File(_) if self.exec.file_check_needs_probe(&svc.spec) => {
                match self.exec.spawn_probe(&svc.spec, pid) {
                    Ok(probe) => {
                        svc.readiness.probe_pid = Some(probe);
                        svc.readiness.next_probe = None;
                    }
                    Err(e) => {
                        log::warn(format_args!("{name}: readiness probe: {e}"));
                        svc.readiness.next_probe = Some(now + ready.interval);
                    }
                }
            }
            ReadyCheck::File(path) => {
                if self.exec.path_exists(path) {
                    let how = format!("{} exists", path.display());
                    self.mark_ready(name, &how);
                } else {
                    svc.readiness.next_probe = Some(now + ready.interval);
                }
            }
            ReadyCheck::Tcp(_) | ReadyCheck::Exec(_) => match self.exec.spawn_probe(&svc.spec, pid)
            {
                Ok(probe) => {
                    svc.readiness.probe_pid = Some(probe);
                    svc.readiness.next_probe = None;
                }
                Err(e) => {
                    log::warn(format_args!("{name}: readiness probe: {e}"));
                    svc.readiness.next_probe = Some(now + ready.interval);
                }
            },
        }
    }

    /// A probe process ended: ready on exit 0, otherwise probe again after the interval.
    fn on_probe_exit(&mut self, pid: i32, exit: Exit, now: Instant) -> bool {
        let Some(name) = self
            .services
            .iter()
            .find(|(_, s)| s.readiness.probe_pid == Some(pid))
            .map(|(n, _)| n.clone())
        else {
            return false;
        };
        let Some(svc) = self.services.get_mut(&name) else {
            return false;
        };
        svc.readiness.probe_pid = None;
        if svc.state != State::Starting || svc.readiness.timed_out {
            return true;
        }
        if exit.success() {
            let how = match &svc.spec.ready.as_ref().map(|r| &r.check) {
                Some(ReadyCheck::Tcp(addr)) => format!("{addr} accepts connections"),
                Some(ReadyCheck::File(path)) => format!("{} exists", path.display()),
                _ => "check command exited 0".to_string(),
            };
            self.mark_ready(&name, &how);
        } else {
            let interval = svc
                .spec
                .ready
                .as_ref()
                .map(|r| r.interval)
                .unwrap_or_default();
            svc.readiness.next_probe = Some(now + interval);
        }
        true
    }

    /// A datagram on a service's notify socket, sent by process `sender`.
    /// Returns false when refused (the sender is not one of the service's processes).
    pub fn on_notify(
        &mut self,
        name: &str,
        sender: Option<i32>,
        message: &str,
        now: Instant,
    ) -> bool {
        let Some(svc) = self.services.get_mut(name) else {
            return false;
        };
        let belongs = match (sender, svc.pid) {
            (Some(sender), Some(main)) => self.exec.belongs_to(sender, main),
            _ => false,
        };
        if !belongs {
            let who = sender
                .map(|p| format!("pid {p}"))
                .unwrap_or_else(|| "an unknown sender".into());
            log::warn(format_args!(
                "{name}: notify message from {who}, not one of its processes: refused"
            ));
            return false;
        }
        let mut ready = false;
        let mut watchdog = false;
        for line in message.lines() {
            match line.split_once('=') {
                Some(("READY", "1")) => ready = true,
                Some(("WATCHDOG", "1")) => watchdog = true,
                Some(("STATUS", text)) => svc.status_text = Some(text.chars().take(200).collect()),
                _ => {}
            }
        }
        let wants_notify = svc
            .spec
            .ready
            .as_ref()
            .is_some_and(|r| r.check == ReadyCheck::Notify);
        if ready && wants_notify && !svc.readiness.timed_out {
            self.mark_ready(name, "READY=1");
        }
        if watchdog {
            self.on_beat(name, now);
        }
        true
    }

    fn lookup(&mut self, name: &str) -> Result<&mut Service, RequestError> {
        if self.shutting_down {
            return Err(RequestError::ShuttingDown);
        }
        self.services
            .get_mut(name)
            .ok_or_else(|| RequestError::UnknownService(name.to_string()))
    }

    /// `supctl start`: wanted again, and a fresh start for one that failed or finished.
    pub fn request_start(&mut self, name: &str) -> Result<(), RequestError> {
        let svc = self.lookup_kept(name)?;
        svc.wanted = true;
        if matches!(
            svc.state,
            State::Failed | State::Done | State::Skipped | State::Backoff { .. }
        ) {
            svc.state = State::Stopped;
            svc.history.reset();
            svc.note = None;
        }
        // A pending Replace already starts the new definition once stopped.
        if matches!(svc.state, State::Stopping { .. }) && svc.then == AfterStop::Rest {
            svc.then = AfterStop::Restart;
        }
        Ok(())
    }

    /// Like `lookup`, but a service a rescan is removing can't be brought back by a verb.
    fn lookup_kept(&mut self, name: &str) -> Result<&mut Service, RequestError> {
        let svc = self.lookup(name)?;
        if svc.then == AfterStop::Remove {
            return Err(RequestError::UnknownService(format!(
                "{name} (its definition was removed; it is stopping)"
            )));
        }
        Ok(svc)
    }

    /// `supctl stop`: down until started again; what requires it stops first.
    pub fn request_stop(&mut self, name: &str, now: Instant) -> Result<(), RequestError> {
        let svc = self.lookup(name)?;
        svc.wanted = false;
        if matches!(svc.then, AfterStop::Restart) {
            svc.then = AfterStop::Rest;
        }
        if matches!(svc.state, State::Backoff { .. }) {
            svc.state = State::Stopped;
        }
        svc.note = Some("stopped on request".into());
        let _ = now;
        Ok(())
    }

    /// `supctl restart`: stop this one (only this one) and start it again.
    pub fn request_restart(&mut self, name: &str, now: Instant) -> Result<(), RequestError> {
        let svc = self.lookup_kept(name)?;
        svc.wanted = true;
        // A pending Replace restarts with the new definition: keep it.
        let keep_replace = matches!(svc.then, AfterStop::Replace(_));
        match svc.state {
            State::Starting | State::Ready | State::Running => {
                if !keep_replace {
                    svc.then = AfterStop::Restart;
                }
                self.begin_stop(name, now);
            }
            State::Stopping { .. } => {
                if !keep_replace {
                    svc.then = AfterStop::Restart;
                }
            }
            _ => {
                svc.state = State::Stopped;
                svc.history.reset();
                svc.note = None;
            }
        }
        Ok(())
    }

    /// `supctl signal` / `supctl reload`: one signal to the service's main process.
    pub fn send_signal(
        &mut self,
        name: &str,
        signal: Option<Signal>,
    ) -> Result<Signal, RequestError> {
        let svc = self.lookup(name)?;
        let signal = signal.unwrap_or(svc.spec.reload_signal);
        let Some(pid) = svc.pid else {
            return Err(RequestError::InvalidState(format!(
                "{name} has no process ({})",
                svc.state.name()
            )));
        };
        self.exec
            .signal_process(pid, signal)
            .map_err(RequestError::InvalidState)?;
        Ok(signal)
    }

    /// Applies a fresh load of the definition directories: starts added services,
    /// stops removed ones, restarts changed ones. A definition that is now broken keeps
    /// its running version (bad input loses nothing); its errors are reported.
    pub fn apply_rescan(&mut self, loaded: Loaded, now: Instant) -> rescan::Diff {
        for error in &loaded.errors {
            log::warn(format_args!("definition: {error}"));
        }
        // Definitions that failed to load keep their running version: a broken file, or
        // every file of a directory that could not be read.
        let broken: BTreeSet<String> = loaded
            .errors
            .iter()
            .filter_map(|e| {
                e.file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .map(str::to_string)
            })
            .collect();
        let mut new_specs = loaded.specs();
        for (name, svc) in &self.services {
            let dir_unreadable = svc
                .spec
                .file
                .parent()
                .is_some_and(|d| loaded.unreadable_dirs.iter().any(|u| u == d));
            if (broken.contains(name) || dir_unreadable) && !new_specs.contains_key(name) {
                new_specs.insert(name.clone(), svc.intended_spec().clone());
            }
        }
        // Compare with what each service is heading for (a pending replacement counts).
        let current: BTreeMap<String, ServiceSpec> = self
            .services
            .iter()
            .filter(|(_, s)| s.then != AfterStop::Remove)
            .map(|(n, s)| (n.clone(), s.intended_spec().clone()))
            .collect();
        let diff = rescan::diff(&current, &new_specs);
        self.definition_errors = loaded.errors;
        for name in diff.added.iter().chain(diff.changed.iter()) {
            let Some(spec) = new_specs.remove(name) else {
                continue;
            };
            let Some(svc) = self.services.get_mut(name) else {
                log::info(format_args!("{name}: added"));
                self.services.insert(name.clone(), Service::new(spec));
                continue;
            };
            log::info(format_args!("{name}: definition changed"));
            if svc.then == AfterStop::Remove {
                // Removed, then added back before it stopped.
                svc.wanted = true;
                svc.note = None;
            }
            let stopping = matches!(svc.state, State::Stopping { .. });
            if svc.spec.same_definition(&spec) {
                // Back to what runs now (a pending change or removal is undone).
                svc.then = if stopping {
                    AfterStop::Restart
                } else {
                    AfterStop::Rest
                };
            } else if svc.state.is_active() {
                svc.then = AfterStop::Replace(Box::new(spec));
                if !stopping {
                    self.begin_stop(name, now);
                }
            } else {
                svc.spec = spec;
                svc.then = AfterStop::Rest;
                svc.history.reset();
                if svc.wanted {
                    svc.state = State::Stopped;
                    svc.note = None;
                }
            }
        }
        for name in &diff.removed {
            let Some(svc) = self.services.get_mut(name) else {
                continue;
            };
            svc.wanted = false;
            svc.then = AfterStop::Remove;
            if svc.state.is_active() {
                // Stopped by reconcile once nothing that requires it runs.
                svc.note = Some("removed: stopping".into());
            } else {
                svc.state = State::Stopped;
                self.finish_stop(name);
            }
        }
        self.reorder();
        diff
    }

    /// SIGTERM/SIGINT/`supctl shutdown`: stop everything, dependents first.
    pub fn begin_shutdown(&mut self, now: Instant) {
        if self.shutting_down {
            return;
        }
        log::info(format_args!("shutting down"));
        self.shutting_down = true;
        for svc in self.services.values_mut() {
            svc.wanted = false;
            if matches!(svc.state, State::Backoff { .. }) {
                svc.state = State::Stopped;
            }
        }
        self.reconcile(now);
    }

    pub fn status(&self, now: Instant) -> Vec<ServiceStatus> {
        self.order
            .iter()
            .filter_map(|n| self.services.get(n))
            .map(|s| ServiceStatus {
                name: s.spec.name.clone(),
                state: s.state.name().to_string(),
                kind: match s.spec.kind {
                    ServiceType::Longrun => "longrun".into(),
                    ServiceType::Oneshot => "oneshot".into(),
                },
                pid: s.pid,
                uptime_ms: s
                    .started_at
                    .map(|t| now.saturating_duration_since(t).as_millis() as u64),
                restarts: s.restarts,
                last_exit: s.last_exit.map(Exit::to_wire),
                next_retry_ms: match (&s.state, s.retry_at) {
                    (State::Backoff { until }, _) => {
                        Some(until.saturating_duration_since(now).as_millis() as u64)
                    }
                    (State::Failed, Some(at)) if s.wanted => {
                        Some(at.saturating_duration_since(now).as_millis() as u64)
                    }
                    _ => None,
                },
                note: s.note.clone(),
                critical: s.spec.critical,
                wanted: s.wanted,
                status_text: s.status_text.clone(),
                heartbeat_age_ms: s
                    .last_beat
                    .filter(|_| s.spec.heartbeat.is_some() && s.pid.is_some())
                    .map(|t| now.saturating_duration_since(t).as_millis() as u64),
            })
            .collect()
    }

    /// Unhealthy when a critical service has failed, or its heartbeat is stale and
    /// zedinit is not already restarting it (DESIGN.md "Heartbeats and the watchdog").
    pub fn health(&self) -> Health {
        let mut reasons = Vec::new();
        for s in self.services.values().filter(|s| s.spec.critical) {
            if s.state == State::Failed {
                reasons.push(format!(
                    "{} failed: {}",
                    s.spec.name,
                    s.note.as_deref().unwrap_or("")
                ));
            } else if s.recovering {
                reasons.push(format!(
                    "{} failed and is being tried again: {}",
                    s.spec.name,
                    s.note.as_deref().unwrap_or("")
                ));
            } else if let Stale::Signaled(_) = s.stale {
                reasons.push(format!("{}: heartbeat stale", s.spec.name));
            }
        }
        Health {
            healthy: reasons.is_empty(),
            reasons,
        }
    }
}

#[cfg(test)]
mod tests;
