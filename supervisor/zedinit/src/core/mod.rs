//! The supervisor's state machine: every service's state, and the decisions taken on
//! events (an exit, a timer, a request, a rescan). The OS work it orders goes through
//! the narrow [`Executor`] trait, so everything here is tested without processes.
//!
//! One file per concern, each an `impl` block of [`Core`]: [`reconcile`] (start, stop,
//! verdicts), [`events`] (exits, ticks, exec reports, deadlines), [`heartbeat`],
//! [`readiness`], [`requests`], [`rescan`], [`shutdown`], [`report`] (status, health).
//!
//! Invariant: a pid is recorded in the same call that spawned it, before control returns
//! to the event loop, the only place that reaps; so no exit can be reaped unrecorded.

use crate::exit::Exit;
use crate::graph;
use crate::log;
use crate::parse::{ConfigError, Loaded};
use crate::policy::{self, Jitter, RestartHistory, Verdict};
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
    /// The last generation that came up (its program ran; ready if it has `[ready]`; a
    /// oneshot finished well). A waiting `start` looks here, not at the state: a quick
    /// program can come up and exit between two looks.
    pub came_up: u64,
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
            came_up: 0,
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
}

mod events;
mod heartbeat;
mod readiness;
mod reconcile;
mod report;
mod requests;
mod rescan;
mod shutdown;

#[cfg(test)]
mod tests;
