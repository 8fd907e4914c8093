//! Wakes `serve` when the request directory changes (inotify), without polling.
//!
//! Events only say "look again": `serve` rescans the whole directory each time, so a
//! lost or coalesced event (queue overflow) can't leave it out of date, and the order
//! of events doesn't matter.

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// An inotify watch on one directory.
pub struct DirWatch {
    fd: AsyncFd<InotifyFd>,
}

impl DirWatch {
    /// Watches `dir` for requests written in place (close after write), moved in or out
    /// (the atomic way to write them), deleted, or touched (to retry a failed request).
    pub fn new(dir: &Path) -> std::io::Result<DirWatch> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        inotify.add_watch(
            dir,
            AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_ATTRIB,
        )?;
        // SAFETY: `Inotify` owns its descriptor and closes it only when dropped, which
        // happens when the `AsyncFd` (its only owner) is dropped; `as_raw_fd` returns
        // that same descriptor every time.
        let fd =
            unsafe { AsyncFd::register_with_interest(InotifyFd(inotify), Interest::READABLE) }?;
        Ok(DirWatch { fd })
    }

    /// Waits until something changed, then drains all pending events.
    pub async fn changed(&self) -> std::io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.get_inner().0.read_events() {
                Ok(_) => {
                    // Drain the rest so one rescan covers a burst.
                    while guard.get_inner().0.read_events().is_ok() {}
                    guard.clear_ready();
                    return Ok(());
                }
                Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}
