//! `ServiceSpec`: what a definition file says, validated and with defaults filled in.
//! Nothing here touches the OS; `parse` builds these, `core` runs them.

use nix::sys::signal::Signal;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceType {
    /// Runs until stopped; dependents may start once it runs.
    Longrun,
    /// Runs to completion; dependents wait for it to be `done` (exit 0).
    Oneshot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RestartSpec {
    pub policy: RestartPolicy,
    /// Delay before the second restart in a row; doubles each time after that.
    /// The first restart is always immediate.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Each delay is shortened by up to this fraction, at random, so services that
    /// crashed together do not restart in lockstep.
    pub backoff_jitter: f64,
    /// A run at least this long resets the backoff to "restart at once".
    pub stable_after: Duration,
    /// More than `intensity` restarts within `intensity_window` → `failed`.
    pub intensity: u32,
    pub intensity_window: Duration,
    /// A service that reached `failed` by exhausting its restarts is tried again after
    /// this cool-down (a device has no one to type `supctl start`); `None` = never.
    pub retry_failed_after: Option<Duration>,
}

/// The default cool-down of a `failed` service: long enough that a service failing
/// for a reason outside it (a datastore app still booting, a disk not mounted yet) does
/// not churn, short enough that an unattended device recovers within minutes.
pub const DEFAULT_RETRY_FAILED_AFTER: Duration = Duration::from_secs(300);

impl RestartSpec {
    pub fn default_for(kind: ServiceType) -> Self {
        RestartSpec {
            policy: match kind {
                ServiceType::Longrun => RestartPolicy::Always,
                ServiceType::Oneshot => RestartPolicy::OnFailure,
            },
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            backoff_jitter: 0.2,
            stable_after: Duration::from_secs(10),
            intensity: 5,
            intensity_window: Duration::from_secs(60),
            retry_failed_after: Some(DEFAULT_RETRY_FAILED_AFTER),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StopSpec {
    pub signal: Signal,
    /// How long the service gets after `signal` before SIGKILL to its process group.
    pub timeout: Duration,
}

impl Default for StopSpec {
    fn default() -> Self {
        StopSpec {
            signal: Signal::SIGTERM,
            timeout: Duration::from_secs(10),
        }
    }
}

/// `condition-path-exists`: `"/proc/xen"` must exist, `"!/path"` must not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathCondition {
    pub path: PathBuf,
    pub negate: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// The file stem; unique across all definition directories.
    pub name: String,
    /// Where it was read from, for messages.
    pub file: PathBuf,
    pub command: Vec<String>,
    pub kind: ServiceType,
    pub after: Vec<String>,
    pub requires: Vec<String>,
    /// `condition-path-exists`: all must hold, or the service is `skipped`.
    pub conditions: Vec<PathCondition>,
    pub critical: bool,
    /// `stop-last`: at shutdown, stopped only once every other service is down (but
    /// those it depends on, which stop after it): zedwatchdog keeps feeding through the
    /// whole ordered shutdown.
    pub stop_last: bool,
    pub restart: RestartSpec,
    pub stop: StopSpec,
    /// Sent by `supctl reload`.
    pub reload_signal: Signal,
    /// How a longrun says it is ready; `None`: ready as soon as it runs.
    pub ready: Option<ReadySpec>,
    /// What the process gets (own root, ids, capabilities, limits); `None`: it shares
    /// zedinit's root and privileges (development only; shipped services declare one).
    pub run: Option<RunSpec>,
    /// Where its stdout and stderr go.
    pub log: LogSpec,
    /// A liveness beat the service must give (touch its file or send WATCHDOG=1).
    pub heartbeat: Option<HeartbeatSpec>,
    /// `[export]`: how the service runs in a container of its own, without zedinit
    /// (`supctl export`); zedinit itself ignores it.
    pub export: ExportSpec,
}

/// `[export]`: what differs when the service runs in a container of its own (the
/// modularization path), where zedinit no longer gives what it gives here. Each key
/// replaces what the export would otherwise take from the definition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportSpec {
    /// The command run there (e.g. `zedwatchdog --without-zedinit`, `dnsmasq-render
    /// --supervise`).
    pub command: Option<Vec<String>>,
    /// Its capabilities there (a service that supervises its own children needs
    /// theirs).
    pub capabilities: Option<Vec<u8>>,
    /// Its pid namespace there: `host` (it must see the device's processes) or `new`.
    pub pid_host: Option<bool>,
    /// Its network there: `host` (the device's) or `none` (a new, empty one).
    pub net_none: Option<bool>,
    /// Its binds there (e.g. without zedinit's control socket).
    pub binds: Option<Vec<Bind>>,
}

/// `[heartbeat]`: the service touches `/run/<svc>.touch` (made by zedinit, owned by the
/// service's uid) or sends `WATCHDOG=1` at least every `max_age`. A stale one gets
/// `signal` (if declared) and `grace` more, then is restarted by its restart policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatSpec {
    pub max_age: Duration,
    pub signal: Option<Signal>,
    pub grace: Duration,
}

/// `[log]` (or `log = "console"`): captured to a size-rotated file plus a ring in
/// memory (the default), or passed through to zedinit's console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSpec {
    pub console: bool,
    /// Rotate `<log dir>/<service>.log` when it reaches this many bytes...
    pub max_size: u64,
    /// ...keeping this many older files (`.1` is the newest).
    pub keep: u32,
    /// Lines kept in memory for `supctl logs`.
    pub ring_lines: usize,
}

impl Default for LogSpec {
    fn default() -> Self {
        LogSpec {
            console: false,
            max_size: 1024 * 1024,
            keep: 3,
            ring_lines: 200,
        }
    }
}

/// `[ready]`: what makes a longrun `ready` (dependents start only then).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadySpec {
    pub check: ReadyCheck,
    /// Not ready by then: the start failed (process group killed, restart policy applies).
    pub timeout: Duration,
    /// Pause between probes for `tcp`, `file` and `exec`.
    pub interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReadyCheck {
    /// `READY=1` on the service's own `NOTIFY_SOCKET`, from one of its processes.
    Notify,
    /// A TCP connect to `host:port` succeeds.
    Tcp(String),
    /// The path exists.
    File(PathBuf),
    /// The command exits 0.
    Exec(Vec<String>),
}

impl ServiceSpec {
    /// Every service this one waits for: `after` and `requires`, without repeats.
    pub fn dependencies(&self) -> impl Iterator<Item = &str> {
        let extra = self.requires.iter().filter(|r| !self.after.contains(r));
        self.after.iter().chain(extra).map(String::as_str)
    }

    /// Equal as far as running the service goes (the file it came from may move).
    pub fn same_definition(&self, other: &ServiceSpec) -> bool {
        ServiceSpec {
            file: PathBuf::new(),
            ..self.clone()
        } == ServiceSpec {
            file: PathBuf::new(),
            ..other.clone()
        }
    }
}

/// A user or group as written: a number, or a name looked up in the image's
/// /etc/passwd or /etc/group (before fork).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdRef {
    Id(u32),
    Name(String),
}

/// `[run]`, with linuxkit's names: what the service's process gets. A service with
/// `[run]` gets exactly this and nothing more (no declared capability: none at all).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunSpec {
    pub uid: Option<IdRef>,
    pub gid: Option<IdRef>,
    pub additional_gids: Vec<IdRef>,
    /// Capability numbers: bounding, permitted, effective and inheritable sets.
    pub capabilities: Vec<u8>,
    /// Raised into the ambient set (a non-root service's only effective capabilities).
    pub ambient: Vec<u8>,
    pub binds: Vec<Bind>,
    pub mkdir: Vec<Mkdir>,
    /// Device nodes made visible in the service's small /dev.
    pub devices: Vec<PathBuf>,
    /// `net = "none"`: a new, empty network namespace.
    pub net_none: bool,
    /// `pid = "new"`: its own pid namespace, its main process PID 1 there. It sees and
    /// can signal none of zedinit's or other services' processes.
    pub pid_new: bool,
    pub readonly: bool,
    pub rlimits: Vec<Rlimit>,
    pub oom_score_adj: Option<i32>,
    pub no_new_privileges: bool,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub src: PathBuf,
    pub dst: PathBuf,
    pub readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mkdir {
    pub path: PathBuf,
    pub owner: Option<(IdRef, Option<IdRef>)>,
    pub mode: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// libc `RLIMIT_*` number.
    pub resource: i32,
    pub name: &'static str,
    pub soft: u64,
    pub hard: u64,
}
