//! Reaping: the only caller of `waitpid` in the process.

use crate::exit::Exit;
use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

/// Collects every exited child without blocking, calling `on_exit` for each.
/// Returns false once no child at all is left (ECHILD).
pub fn reap_all(mut on_exit: impl FnMut(i32, Exit)) -> bool {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => on_exit(pid.as_raw(), Exit::Exited(code)),
            Ok(WaitStatus::Signaled(pid, signal, _core)) => {
                on_exit(pid.as_raw(), Exit::Signaled(signal))
            }
            Ok(WaitStatus::StillAlive) => return true,
            // Stop/continue reports are not asked for (no WUNTRACED/WCONTINUED).
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(_) => return false, // ECHILD: no children left
        }
    }
}
