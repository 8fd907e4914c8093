//! Starting a service's process and its readiness probes: the real [`Executor`].
//!
//! Children are started with [`Launch`] (fork and go): `spawn` returns as soon as the
//! child exists, and the child's exec report arrives later on a pipe the event loop
//! watches ([`OsExecutor::take_fresh_reports`], [`Executor::exec_report`]).

use crate::core::{Executor, Spawned};
use crate::log;
use crate::spec::{ReadyCheck, ServiceSpec};
use crate::sys::cgroup::Cgroups;
use crate::sys::heartbeat::Heartbeats;
use crate::sys::launch::{self, Confinement, Launch, Report};
use crate::sys::notify::NotifySockets;
use crate::sys::output_pipes::LogHub;
use crate::sys::{confine, proc};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The PATH a service gets: services start from a clean environment, as in a container.
pub const SERVICE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The hidden zedinit mode that runs a `tcp` readiness probe as a child process, so that
/// a slow connect (or name lookup) never blocks PID 1: `zedinit --probe-tcp HOST:PORT`.
pub const PROBE_TCP_FLAG: &str = "--probe-tcp";
/// Where a confined service finds its notify socket.
pub const CONFINED_NOTIFY_SOCKET: &str = "/run/zedctr/notify.sock";
/// How long one TCP probe may take.
pub const PROBE_TCP_TIMEOUT: Duration = Duration::from_secs(2);

/// A service's main process while zedinit knows it.
struct Child {
    service: String,
    /// The program, for exec error messages.
    program: String,
    /// The exec report pipe until the report (or end of file) was read.
    report: Option<OwnedFd>,
    /// PID 1 of its own pid namespace (`[run] pid = "new"`).
    ns_init: bool,
    /// This run's cgroup (none where cgroups are not usable).
    cgroup: Option<PathBuf>,
    /// What the child reads while it runs in zedinit's memory: dropped once it exec'd
    /// or was reaped (`launch::InFlight`).
    in_flight: Option<launch::InFlight>,
}

pub struct OsExecutor {
    pub notify: NotifySockets,
    pub heartbeats: Heartbeats,
    pub logs: LogHub,
    pub cgroups: Cgroups,
    /// Where each confined service's root mount point is made (`<dir>/<service>`).
    roots: PathBuf,
    /// zedinit's own executable, for `tcp` probes.
    self_exe: PathBuf,
    /// Main processes by pid.
    children: BTreeMap<i32, Child>,
    /// Exec report pipes by epoll token, and those not registered yet.
    report_tokens: BTreeMap<u64, i32>,
    fresh_reports: Vec<u64>,
    /// Report pipes done with, for the loop to take out of its epoll set before they
    /// close ([`OsExecutor::take_spent`]).
    spent_reports: Vec<OwnedFd>,
    next_report_token: u64,
}

impl OsExecutor {
    /// `run_dir`: zedinit's runtime directory (that of the control socket); notify
    /// sockets and service roots are made under it. `logs`: where service output goes.
    /// `heartbeat_dir`: where `<service>.touch` files are made (`/run` on a device).
    /// `first_report_token`: the epoll tokens exec report pipes may use.
    pub fn new(
        run_dir: &Path,
        heartbeat_dir: &Path,
        logs: LogHub,
        cgroups: Cgroups,
        first_report_token: u64,
    ) -> Self {
        let self_exe = std::fs::read_link("/proc/self/exe")
            .unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        OsExecutor {
            notify: NotifySockets::new(run_dir.join("notify")),
            heartbeats: Heartbeats::new(heartbeat_dir.to_path_buf()),
            logs,
            cgroups,
            roots: run_dir.join("roots"),
            self_exe,
            children: BTreeMap::new(),
            report_tokens: BTreeMap::new(),
            fresh_reports: Vec::new(),
            spent_reports: Vec::new(),
            next_report_token: first_report_token,
        }
    }

    /// Exec report pipes made since the last call, for the event loop to watch.
    pub fn take_fresh_reports(&mut self) -> Vec<(u64, BorrowedFd<'_>)> {
        let fresh = std::mem::take(&mut self.fresh_reports);
        fresh
            .into_iter()
            .filter_map(|token| {
                let pid = self.report_tokens.get(&token)?;
                let fd = self.children.get(pid)?.report.as_ref()?;
                Some((token, fd.as_fd()))
            })
            .collect()
    }

    /// Pipes the loop watched and that are done with (exec reports read, log pipes at
    /// end of file): the loop takes each out of its epoll set, then drops it. Closing
    /// alone leaves it in the set while a child cloned since (not yet exec'd) holds a
    /// copy, and a pipe whose writers are gone is always ready: the loop spun until the
    /// last new child exec'd, a CPU taken from those very children on a busy machine.
    pub fn take_spent(&mut self) -> Vec<OwnedFd> {
        let mut spent = std::mem::take(&mut self.spent_reports);
        spent.extend(self.logs.take_spent());
        spent
    }

    /// The main process whose exec report pipe has `token`.
    pub fn report_pid(&self, token: u64) -> Option<i32> {
        self.report_tokens.get(&token).copied()
    }

    fn service_of(&self, pid: i32) -> Option<&Child> {
        self.children.get(&pid)
    }
}

/// A service's clean environment, as in a container.
fn base_env(spec: &ServiceSpec) -> Vec<(String, String)> {
    vec![
        ("PATH".into(), SERVICE_PATH.into()),
        ("ZEDCTR_SERVICE".into(), spec.name.clone()),
    ]
}

fn set_env(env: &mut Vec<(String, String)>, name: &str, value: String) {
    env.retain(|(k, _)| k != name);
    env.push((name.to_string(), value));
}

impl Executor for OsExecutor {
    fn spawn(&mut self, spec: &ServiceSpec) -> Result<Spawned, String> {
        let mut env = base_env(spec);
        // Looked up once: the heartbeat file's owner, and the plan's credentials.
        let confined = match &spec.run {
            Some(run) => Some((run, confine::ids(run)?)),
            None => None,
        };
        let (uid, gid) = confined
            .as_ref()
            .map_or((0, 0), |(_, ids)| (ids.uid, ids.gid));
        // Files zedinit makes for the service, bound into its own root if it has one.
        let mut extra = Vec::new();
        let wants_notify = spec
            .ready
            .as_ref()
            .is_some_and(|r| r.check == ReadyCheck::Notify)
            || spec.heartbeat.is_some();
        if wants_notify {
            // Confined, it sees its socket in its private /run (the directory holding
            // all of them is root-only).
            let path = self.notify.ensure(&spec.name)?;
            let inside = PathBuf::from(CONFINED_NOTIFY_SOCKET);
            let seen = if spec.run.is_some() { &inside } else { &path };
            set_env(&mut env, "NOTIFY_SOCKET", seen.display().to_string());
            extra.push((path, inside));
        }
        if spec.heartbeat.is_some() {
            let path = self.heartbeats.ensure(&spec.name, uid, gid)?;
            let inside = PathBuf::from(format!("/run/{}.touch", spec.name));
            let seen = if spec.run.is_some() { &inside } else { &path };
            set_env(
                &mut env,
                "ZEDCTR_HEARTBEAT_FILE",
                seen.display().to_string(),
            );
            extra.push((path, inside));
        }
        let mut new_pid_ns = false;
        let confinement = match confined {
            None => Confinement::None,
            Some((run, ids)) => {
                for (name, value) in &run.env {
                    set_env(&mut env, name, value.clone());
                }
                new_pid_ns = run.pid_new;
                let plan = confine::prepare(&spec.name, run, ids, &self.roots, &extra)?;
                Confinement::Own(Box::new(plan))
            }
        };
        let mut child = Launch::new(&spec.command, &env, SERVICE_PATH)?;
        self.logs.attach(spec, &mut child)?;
        child.confinement = confinement;
        child.new_pid_ns = new_pid_ns;
        // The executor keeps `in_flight` until the exec report or the reap.
        child.may_share_memory = true;
        let cgroup = match self.cgroups.make_run(&spec.name)? {
            Some((path, fd)) => {
                child.cgroup = Some(fd);
                Some(path)
            }
            None => None,
        };
        let started = match child.start() {
            Ok(started) => started,
            Err(e) => {
                if let Some(path) = cgroup {
                    self.cgroups.retire(path);
                }
                return Err(e);
            }
        };
        let (pid, report, in_flight) = (started.pid, started.report, started.in_flight);
        let cgroup = match cgroup {
            Some(path) if !started.in_cgroup => {
                self.cgroups.retire(path);
                None
            }
            other => other,
        };
        let token = self.next_report_token;
        self.next_report_token += 1;
        self.report_tokens.insert(token, pid);
        self.fresh_reports.push(token);
        self.children.insert(
            pid,
            Child {
                service: spec.name.clone(),
                program: spec.command[0].clone(),
                report: Some(report),
                ns_init: new_pid_ns,
                cgroup,
                in_flight,
            },
        );
        Ok(Spawned {
            pid,
            exec_confirmed: false,
        })
    }

    fn exec_report(&mut self, pid: i32) -> Option<Result<(), String>> {
        let child = self.children.get_mut(&pid)?;
        let report = match &child.report {
            None => return Some(Ok(())),
            Some(fd) => launch::read_report(fd),
        };
        let result = match report {
            Report::Pending => return None,
            Report::Execed => {
                // Its exec replaced its memory before its report pipe closed.
                child.in_flight = None;
                Ok(())
            }
            // It is still running (to _exit): kept until it is reaped.
            Report::Failed(failed) => Err(failed.describe(&child.program)),
        };
        if let Some(fd) = child.report.take() {
            self.spent_reports.push(fd);
        }
        self.report_tokens.retain(|_, p| *p != pid);
        Some(result)
    }

    fn spawn_probe(&mut self, spec: &ServiceSpec, main_pid: i32) -> Result<i32, String> {
        let mut check_file = None;
        let argv = match spec.ready.as_ref().map(|r| &r.check) {
            Some(ReadyCheck::Exec(argv)) => argv.clone(),
            // No program: the child looks for the file in the service's root and exits.
            Some(ReadyCheck::File(path)) => {
                check_file = Some(path.clone());
                vec![path.display().to_string()]
            }
            Some(ReadyCheck::Tcp(addr)) => vec![
                self.self_exe.display().to_string(),
                PROBE_TCP_FLAG.to_string(),
                addr.clone(),
            ],
            _ => return Err("no probe for this readiness check".into()),
        };
        let mut env = base_env(spec);
        let mut join = None;
        if let Some(run) = &spec.run {
            for (name, value) in &run.env {
                set_env(&mut env, name, value.clone());
            }
            // A probe never has more than its service: its network namespace and
            // credentials, and for `exec` its mount namespace too (a `tcp` probe is
            // zedinit's own binary, which the service's root need not hold).
            let with_mounts = matches!(
                spec.ready.as_ref().map(|r| &r.check),
                Some(ReadyCheck::Exec(_) | ReadyCheck::File(_))
            );
            join = Some(confine::prepare_join(run, main_pid, with_mounts)?);
        }
        let mut child = Launch::new(&argv, &env, SERVICE_PATH)?;
        if let Some(path) = check_file {
            child.check_file(&path)?;
        }
        if let Some(join) = join {
            child.confinement = Confinement::Join(Box::new(join));
        }
        child.quiet()?;
        // In its service's cgroup: a stop or exit of the service ends it too.
        if let Some(path) = self.children.get(&main_pid).and_then(|c| c.cgroup.as_ref()) {
            child.cgroup = std::fs::File::open(path).ok().map(OwnedFd::from);
        }
        // The probe's exec report is not awaited: a probe that cannot run exits 127,
        // which is a failed check like any other.
        Ok(child.start()?.pid)
    }

    fn belongs_to(&self, pid: i32, main_pid: i32) -> bool {
        if pid == main_pid {
            return true;
        }
        if let Some(cgroup) = self.service_of(main_pid).and_then(|c| c.cgroup.as_ref()) {
            if self.cgroups.contains(cgroup, pid) {
                return true;
            }
        }
        proc::stat(pid).is_some_and(|s| s.session == main_pid || s.pgrp == main_pid)
    }

    fn kill_leftovers(&mut self, pgid: i32) {
        // ESRCH (the usual case): the group died with its leader.
        let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
        if let Some(mut child) = self.children.remove(&pgid) {
            self.report_tokens.retain(|_, p| *p != pgid);
            self.spent_reports.extend(child.report.take());
            // What left the process group (setsid, setpgid) is still in the cgroup.
            match child.cgroup {
                Some(cgroup) => {
                    self.cgroups.kill(&cgroup);
                    self.cgroups.retire(cgroup);
                }
                None => kill_session(pgid),
            }
        }
    }

    fn log_tail(&self, name: &str, n: usize) -> Vec<String> {
        self.logs.tail(name, n)
    }

    fn release(&mut self, name: &str) {
        self.notify.remove(name);
        self.logs.forget(name);
        self.heartbeats.forget(name);
    }

    fn signal_group(&mut self, pgid: i32, signal: Signal) {
        let mut signal = signal;
        if let Some(child) = self.children.get(&pgid) {
            if signal == Signal::SIGKILL {
                if let Some(cgroup) = &child.cgroup {
                    self.cgroups.kill(cgroup);
                }
            } else if child.ns_init && terminates_by_default(signal) && !catches(pgid, signal) {
                // The init of a pid namespace ignores a signal it has no handler for,
                // even from zedinit (pid_namespaces(7)): its default action, ending
                // the process, is done with SIGKILL, which it cannot ignore.
                log::info(format_args!(
                    "{}: its pid-namespace init has no {} handler; SIGKILL instead",
                    child.service,
                    signal.as_str()
                ));
                signal = Signal::SIGKILL;
            }
        }
        // ESRCH: the group is already gone, which is what we wanted.
        let _ = kill(Pid::from_raw(-pgid), signal);
    }

    fn signal_process(&mut self, pid: i32, signal: Signal) -> Result<(), String> {
        match kill(Pid::from_raw(pid), signal) {
            Ok(()) => Ok(()),
            Err(Errno::ESRCH) => Err(format!("process {pid} is gone")),
            Err(e) => Err(format!("kill {pid} {}: {e}", signal.as_str())),
        }
    }

    fn path_exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn file_check_needs_probe(&self, spec: &ServiceSpec) -> bool {
        spec.run.is_some()
    }
}

/// Whether `signal`'s default action ends the process (signal(7), "Standard signals").
fn terminates_by_default(signal: Signal) -> bool {
    !matches!(
        signal,
        Signal::SIGCHLD
            | Signal::SIGCONT
            | Signal::SIGSTOP
            | Signal::SIGTSTP
            | Signal::SIGTTIN
            | Signal::SIGTTOU
            | Signal::SIGURG
            | Signal::SIGWINCH
    )
}

/// Whether process `pid` will take `signal` itself: it has a handler, ignores it, or
/// blocks it (a signalfd reader: a blocked signal is queued even for a namespace's init,
/// kernel/signal.c `sig_ignored`). Its SigCgt, SigIgn and SigBlk masks in
/// /proc/<pid>/status; unknown (gone, unreadable): assume it does.
fn catches(pid: i32, signal: Signal) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    let bit = 1u64 << (signal as i32 - 1);
    match (mask("SigCgt:"), mask("SigIgn:"), mask("SigBlk:")) {
        (Some(caught), Some(ignored), Some(blocked)) => (caught | ignored | blocked) & bit != 0,
        _ => true,
    }
}

/// Without cgroups: SIGKILL to whatever is left in the session the main process led
/// (a child that called setpgid stays in it; one that called setsid does not, which only
/// a cgroup catches).
fn kill_session(sid: i32) {
    for pid in proc::in_session(sid) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The body of `zedinit --probe-tcp HOST:PORT`: exit 0 if a connection is accepted.
pub fn probe_tcp(addr: &str) -> i32 {
    use std::net::{TcpStream, ToSocketAddrs};
    let Ok(addrs) = addr.to_socket_addrs() else {
        return 1;
    };
    for a in addrs {
        if TcpStream::connect_timeout(&a, PROBE_TCP_TIMEOUT).is_ok() {
            return 0;
        }
    }
    1
}
