//! Starting a service's process: the real [`Executor`].

use crate::core::Executor;
use crate::spec::ServiceSpec;
use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The PATH a service gets: services start from a clean environment, as in a container.
pub const SERVICE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Default)]
pub struct OsExecutor;

impl Executor for OsExecutor {
    fn spawn(&mut self, spec: &ServiceSpec) -> Result<i32, String> {
        let (program, args) = spec.command.split_first().ok_or("empty command")?;
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
                // Own session and process group: stop signals and SIGKILL go to the
                // whole group, and a terminal's job control never reaches it.
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                // zedinit blocks the signals it reads from its signalfd; the mask is
                // inherited across exec, so clear it.
                sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                    .map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        // The Child handle is dropped without waiting: the event loop is the only reaper.
        cmd.spawn()
            .map(|child| child.id() as i32)
            .map_err(|e| format!("{program}: {e}"))
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
