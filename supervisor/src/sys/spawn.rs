//! Starting a service's process and its readiness probes: the real [`Executor`].

use crate::core::Executor;
use crate::spec::{ReadyCheck, ServiceSpec};
use crate::sys::heartbeat::Heartbeats;
use crate::sys::logpipes::LogHub;
use crate::sys::notify::NotifySockets;
use crate::sys::{confine, proc};
use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

pub struct OsExecutor {
    pub notify: NotifySockets,
    pub heartbeats: Heartbeats,
    pub logs: LogHub,
    /// Where each confined service's root mount point is made (`<dir>/<service>`).
    roots: PathBuf,
    /// zedinit's own executable, for `tcp` probes.
    self_exe: PathBuf,
}

impl OsExecutor {
    /// `run_dir`: zedinit's runtime directory (that of the control socket); notify
    /// sockets and service roots are made under it. `logs`: where service output goes.
    /// `heartbeat_dir`: where `<service>.touch` files are made (`/run` on a device).
    pub fn new(run_dir: &Path, heartbeat_dir: &Path, logs: LogHub) -> Self {
        let self_exe = std::fs::read_link("/proc/self/exe")
            .unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        OsExecutor {
            notify: NotifySockets::new(run_dir.join("notify")),
            heartbeats: Heartbeats::new(heartbeat_dir.to_path_buf()),
            logs,
            roots: run_dir.join("roots"),
            self_exe,
        }
    }
}

/// A command with a service's environment, in its own session, signals unmasked.
fn service_command(spec: &ServiceSpec, argv: &[String]) -> Result<Command, String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", SERVICE_PATH)
        .env("ZEDCTR_SERVICE", &spec.name)
        .stdin(Stdio::null())
        .current_dir("/");
    // SAFETY: runs in the forked child before exec and only makes async-signal-safe
    // syscalls (setsid, sigprocmask); it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            // Own session and process group: stop signals and SIGKILL go to the whole
            // group, and a terminal's job control never reaches it.
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            // zedinit blocks the signals it reads from its signalfd; the mask is
            // inherited across exec, so clear it.
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    Ok(cmd)
}

fn spawned(cmd: &mut Command, what: &str) -> Result<i32, String> {
    // The Child handle is dropped without waiting: the event loop is the only reaper.
    cmd.spawn()
        .map(|child| child.id() as i32)
        .map_err(|e| format!("{what}: {e}"))
}

impl Executor for OsExecutor {
    fn spawn(&mut self, spec: &ServiceSpec) -> Result<i32, String> {
        let mut cmd = service_command(spec, &spec.command)?;
        self.logs.attach(spec, &mut cmd)?;
        let (uid, gid) = match &spec.run {
            Some(run) => confine::ids(run)?,
            None => (0, 0),
        };
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
            cmd.env(
                "NOTIFY_SOCKET",
                if spec.run.is_some() { &inside } else { &path },
            );
            extra.push((path, inside));
        }
        if spec.heartbeat.is_some() {
            let path = self.heartbeats.ensure(&spec.name, uid, gid)?;
            let inside = PathBuf::from(format!("/run/{}.touch", spec.name));
            let seen = if spec.run.is_some() {
                inside.clone()
            } else {
                path.clone()
            };
            cmd.env("ZEDCTR_HEARTBEAT_FILE", &seen);
            extra.push((path, inside));
        }
        let Some(run) = &spec.run else {
            return spawned(&mut cmd, &spec.command[0]);
        };
        let (plan, step_read, step_write) = confine::prepare(spec, run, &self.roots, &extra)?;
        for (name, value) in &run.env {
            cmd.env(name, value);
        }
        // SAFETY: `Plan::apply` only makes syscalls on data prepared before fork.
        unsafe {
            cmd.pre_exec(move || plan.apply());
        }
        let result = cmd.spawn().map(|child| child.id() as i32);
        drop(step_write);
        result.map_err(|e| match confine::failed_step(&step_read) {
            Some(step) => format!("step \"{step}\": {e}"),
            None => format!("{}: {e}", spec.command[0]),
        })
    }

    fn spawn_probe(&mut self, spec: &ServiceSpec) -> Result<i32, String> {
        match spec.ready.as_ref().map(|r| &r.check) {
            Some(ReadyCheck::Exec(argv)) => {
                let mut cmd = service_command(spec, argv)?;
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
                spawned(&mut cmd, &argv[0])
            }
            Some(ReadyCheck::Tcp(addr)) => {
                let argv = [
                    self.self_exe.display().to_string(),
                    PROBE_TCP_FLAG.to_string(),
                    addr.clone(),
                ];
                let mut cmd = service_command(spec, &argv)?;
                cmd.stdout(Stdio::null());
                spawned(&mut cmd, "tcp probe")
            }
            _ => Err("no probe for this readiness check".into()),
        }
    }

    fn belongs_to(&self, pid: i32, main_pid: i32) -> bool {
        pid == main_pid
            || proc::stat(pid).is_some_and(|s| s.session == main_pid || s.pgrp == main_pid)
    }

    fn kill_leftovers(&mut self, pgid: i32) {
        // ESRCH (the usual case): the group died with its leader.
        let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
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
