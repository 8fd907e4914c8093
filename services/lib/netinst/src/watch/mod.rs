//! Watching the instance directory with inotify, so readers load again only when an
//! instance file came, changed, moved or went.

use crate::load::is_instance_file;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Watches one instance directory. Create it, register [`fd`](Watcher::fd) with your
/// event loop (readable = something happened), call [`changed`](Watcher::changed) when it
/// is readable, and load the directory again when that says so. Simple users call
/// [`wait_for_change`](Watcher::wait_for_change) instead.
///
/// Only `*.toml` files not starting with '.' count, so writing `.x.toml` and renaming
/// it to `x.toml` is one change. If the directory does not exist yet (or is removed),
/// the watcher watches its parent until it appears, and reports a change then.
#[derive(Debug)]
pub struct Watcher {
    inotify: Inotify,
    dir: PathBuf,
    dir_name: OsString,
    target: Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Watching the directory itself.
    Dir(WatchDescriptor),
    /// The directory is missing: watching its parent for it to appear.
    Parent(WatchDescriptor),
    /// Neither the directory nor its parent exists: nothing will be reported.
    Nothing,
}

/// Events in the directory that can change an instance file.
fn dir_mask() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

impl Watcher {
    /// Starts watching `dir`. Fails only if inotify cannot be set up, or neither `dir`
    /// nor its parent exists.
    pub fn new(dir: &Path) -> io::Result<Watcher> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        let dir_name = dir
            .file_name()
            .map(OsString::from)
            .ok_or_else(|| io::Error::other(format!("{}: not a directory name", dir.display())))?;
        let mut watcher = Watcher {
            inotify,
            dir: dir.to_path_buf(),
            dir_name,
            target: Target::Nothing,
        };
        watcher.arm()?;
        Ok(watcher)
    }

    /// The directory watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The inotify descriptor (non-blocking), readable when events are pending.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// The directory itself is being watched (false while waiting for it to appear, or
    /// if its parent is gone too).
    pub fn is_watching(&self) -> bool {
        matches!(self.target, Target::Dir(_))
    }

    /// Drains every pending event; true if any of them can have changed an instance
    /// file (the directory appearing or going counts). Never blocks.
    pub fn changed(&mut self) -> bool {
        let mut changed = false;
        let mut rearm = false;
        loop {
            let events = match self.inotify.read_events() {
                Ok(events) => events,
                Err(Errno::EINTR) => continue,
                Err(_) => break, // EAGAIN: drained
            };
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    changed = true;
                    continue;
                }
                match self.target {
                    Target::Dir(wd) if ev.wd == wd => {
                        let gone = AddWatchFlags::IN_IGNORED
                            | AddWatchFlags::IN_DELETE_SELF
                            | AddWatchFlags::IN_MOVE_SELF;
                        if ev.mask.intersects(gone) {
                            rearm = true;
                            changed = true;
                        } else if ev
                            .name
                            .as_deref()
                            .is_some_and(|n| is_instance_file(Path::new(n)))
                        {
                            changed = true;
                        }
                    }
                    Target::Parent(wd)
                        if ev.wd == wd
                            && (ev.mask.contains(AddWatchFlags::IN_IGNORED)
                                || ev.name.as_deref() == Some(self.dir_name.as_os_str())) =>
                    {
                        rearm = true;
                    }
                    _ => {} // a watch given up on
                }
            }
        }
        if rearm {
            let was_watching = self.is_watching();
            // Failure leaves Target::Nothing; there is no one to tell but the caller,
            // who sees `is_watching()` false.
            let _ = self.arm();
            changed |= was_watching || self.is_watching();
        }
        changed
    }

    /// Waits up to `timeout` for a change (see [`changed`](Watcher::changed)); true if
    /// there was one. Events already pending count at once.
    pub fn wait_for_change(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.changed() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // Round up, so that a wait never ends just short of the deadline and spins.
            let ms = (left + Duration::from_micros(999)).as_millis();
            let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => {
                    // Should not happen; do not spin.
                    std::thread::sleep(left.min(Duration::from_millis(100)));
                }
            }
        }
    }

    /// (Re)establishes the watch: on the directory if it exists, else on its parent.
    fn arm(&mut self) -> io::Result<()> {
        match self.target {
            Target::Dir(wd) | Target::Parent(wd) => {
                let _ = self.inotify.rm_watch(wd); // may already be gone
            }
            Target::Nothing => {}
        }
        self.target = Target::Nothing;
        let watch_dir = |w: &Watcher| w.inotify.add_watch(&w.dir, dir_mask());
        match watch_dir(self) {
            Ok(wd) => {
                self.target = Target::Dir(wd);
                return Ok(());
            }
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => {}
            Err(e) => return Err(io::Error::other(format!("{}: {e}", self.dir.display()))),
        }
        let parent = match self.dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mask =
            AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_ONLYDIR;
        let wd = self.inotify.add_watch(&parent, mask).map_err(|e| {
            io::Error::other(format!(
                "{} does not exist, and its parent cannot be watched: {e}",
                self.dir.display()
            ))
        })?;
        self.target = Target::Parent(wd);
        // The directory may have appeared between the two attempts.
        if let Ok(dir_wd) = watch_dir(self) {
            let _ = self.inotify.rm_watch(wd);
            self.target = Target::Dir(dir_wd);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
