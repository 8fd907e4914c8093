//! EVE's registrations, `<registry>/file/<name>` and `<registry>/pid/<name>`, kept in
//! memory and updated by inotify: a registration added or removed takes effect at once,
//! and the directories are listed only when a watch on them starts (or the kernel's
//! event queue overflowed), never periodically. A directory that does not exist yet
//! (EVE makes them when its first agent registers) is waited for by watching its nearest
//! existing ancestor.

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::BTreeSet;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// The two kinds of registration, by their directory's name.
pub const KINDS: [&str; 2] = ["file", "pid"];

/// One registration directory and what it holds.
struct Kind {
    dir: PathBuf,
    /// The watch on the directory itself, once it exists.
    watch: Option<WatchDescriptor>,
    names: BTreeSet<String>,
}

pub struct Registry {
    inotify: Inotify,
    kinds: Vec<Kind>,
    /// Ancestors watched for a missing registration directory to appear.
    waiting_on: Vec<WatchDescriptor>,
}

/// What a registration directory's own watch reports.
fn dir_mask() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

/// What an ancestor's watch reports: something appeared in it, or it went away.
fn ancestor_mask() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

/// A registration's name counts unless hidden (a writer's temporary, `.x.tmp`).
fn counts(name: &str) -> bool {
    !name.starts_with('.')
}

impl Registry {
    /// Watches `<registry>/file` and `<registry>/pid` (or their nearest existing
    /// ancestors) and lists what is registered already.
    pub fn open(registry: &Path) -> Result<Registry, String> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| format!("inotify: {e}"))?;
        let kinds = KINDS
            .iter()
            .map(|kind| Kind {
                dir: registry.join(kind),
                watch: None,
                names: BTreeSet::new(),
            })
            .collect();
        let mut registry = Registry {
            inotify,
            kinds,
            waiting_on: Vec::new(),
        };
        registry.resync(false)?;
        Ok(registry)
    }

    /// The registered names of `kind` ("file" or "pid"), sorted.
    pub fn names(&self, kind: &str) -> Vec<String> {
        self.kinds
            .iter()
            .find(|k| k.dir.file_name().is_some_and(|n| n == kind))
            .map(|k| k.names.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// Reads what inotify has; returns whether any registration came or went.
    pub fn on_events(&mut self) -> Result<bool, String> {
        let before: Vec<BTreeSet<String>> = self.kinds.iter().map(|k| k.names.clone()).collect();
        let mut resync = false;
        let mut relist = false;
        loop {
            let events = match self.inotify.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(format!("inotify: {e}")),
            };
            for event in events {
                if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    // Events were lost: start over from the directories themselves.
                    resync = true;
                    relist = true;
                    continue;
                }
                if self.waiting_on.contains(&event.wd) {
                    resync = true;
                    continue;
                }
                let Some(kind) = self.kinds.iter_mut().find(|k| k.watch == Some(event.wd)) else {
                    continue;
                };
                let gone = AddWatchFlags::IN_DELETE_SELF
                    | AddWatchFlags::IN_MOVE_SELF
                    | AddWatchFlags::IN_IGNORED;
                if event.mask.intersects(gone) {
                    // The directory itself went: so did its registrations.
                    kind.watch = None;
                    kind.names.clear();
                    resync = true;
                    continue;
                }
                let Some(name) = event.name.and_then(|n| n.into_string().ok()) else {
                    continue;
                };
                if !counts(&name) {
                    continue;
                }
                if event
                    .mask
                    .intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO)
                {
                    kind.names.insert(name);
                } else if event
                    .mask
                    .intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM)
                {
                    kind.names.remove(&name);
                }
            }
        }
        if resync {
            self.resync(relist)?;
        }
        let after: Vec<BTreeSet<String>> = self.kinds.iter().map(|k| k.names.clone()).collect();
        Ok(before != after)
    }

    /// Makes sure every registration directory is watched, or else its nearest existing
    /// ancestor; lists a directory when its watch starts (or, `relist`, in any case).
    fn resync(&mut self, relist: bool) -> Result<(), String> {
        for wd in std::mem::take(&mut self.waiting_on) {
            // Already gone if the directory was removed; nothing to undo then.
            let _ = self.inotify.rm_watch(wd);
        }
        for i in 0..self.kinds.len() {
            let fresh = self.kinds[i].watch.is_none() && self.watch_kind(i)?;
            if fresh || relist {
                // Listed after the watch is in place: an entry made in between is seen
                // by both, and a set does not mind.
                self.kinds[i].names = list(&self.kinds[i].dir);
            } else if self.kinds[i].watch.is_none() {
                self.kinds[i].names.clear();
            }
        }
        Ok(())
    }

    /// Watches registration directory `i`; returns false when it does not exist and its
    /// nearest existing ancestor is watched instead.
    fn watch_kind(&mut self, i: usize) -> Result<bool, String> {
        let dir = self.kinds[i].dir.clone();
        // Each pass finds a deeper ancestor; the bound only guards against a loop.
        for _ in 0..dir.components().count() + 1 {
            match self.inotify.add_watch(&dir, dir_mask()) {
                Ok(wd) => {
                    self.kinds[i].watch = Some(wd);
                    return Ok(true);
                }
                Err(Errno::ENOENT | Errno::ENOTDIR) => {}
                Err(e) => return Err(format!("inotify: watching {}: {e}", dir.display())),
            }
            let ancestor = self.wait_for(&dir)?;
            // Made between the two calls, its creation was not seen by the ancestor's
            // watch: look again.
            let next = dir
                .ancestors()
                .find(|p| p.parent() == Some(ancestor.as_path()));
            if !next.is_some_and(Path::is_dir) {
                return Ok(false);
            }
        }
        Ok(false)
    }

    /// Watches the nearest existing ancestor of `dir` for it (or a step towards it) to
    /// appear; returns that ancestor.
    fn wait_for(&mut self, dir: &Path) -> Result<PathBuf, String> {
        let mut ancestor = dir.parent();
        while let Some(path) = ancestor {
            match self.inotify.add_watch(path, ancestor_mask()) {
                Ok(wd) => {
                    self.waiting_on.push(wd);
                    return Ok(path.to_path_buf());
                }
                Err(Errno::ENOENT | Errno::ENOTDIR) => ancestor = path.parent(),
                Err(e) => return Err(format!("inotify: watching {}: {e}", path.display())),
            }
        }
        Err(format!("no existing directory above {}", dir.display()))
    }
}

/// The names in `dir` that count as registrations (none when it can't be read).
fn list(dir: &Path) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| counts(n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::fs;
    use std::time::{Duration, Instant};

    /// Waits (up to a generous deadline) for events and applies them, until `done`.
    fn until(registry: &mut Registry, what: &str, done: impl Fn(&Registry) -> bool) {
        let start = Instant::now();
        while !done(registry) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting for: {what}"
            );
            let mut fds = [PollFd::new(registry.fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(100u16)).expect("poll");
            registry.on_events().expect("events");
        }
    }

    #[test]
    fn registrations_already_there_are_listed_and_hidden_names_do_not_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("file")).expect("file");
        fs::create_dir_all(dir.path().join("pid")).expect("pid");
        fs::write(dir.path().join("file/a.touch"), "").expect("a");
        fs::write(dir.path().join("file/.a.tmp"), "").expect("tmp");
        fs::write(dir.path().join("pid/b.pid"), "").expect("b");
        let registry = Registry::open(dir.path()).expect("open");
        assert_eq!(registry.names("file"), vec!["a.touch"]);
        assert_eq!(registry.names("pid"), vec!["b.pid"]);
    }

    #[test]
    fn directories_made_later_are_found_and_changes_arrive_as_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("run/watchdog");
        let mut registry = Registry::open(&root).expect("open");
        assert!(registry.names("file").is_empty());
        // Two levels missing: the parent's parent is watched, then the parent.
        fs::create_dir_all(root.join("file")).expect("mkdir");
        fs::write(root.join("file/x.touch"), "").expect("register");
        until(&mut registry, "x.touch registered", |r| {
            r.names("file") == ["x.touch"]
        });
        fs::create_dir(root.join("pid")).expect("mkdir pid");
        fs::write(root.join("pid/y.pid"), "").expect("register");
        until(&mut registry, "y.pid registered", |r| {
            r.names("pid") == ["y.pid"]
        });
        // Renamed in (the atomic way) and out count like created and removed.
        fs::write(root.join("file/.z.tmp"), "").expect("tmp");
        fs::rename(root.join("file/.z.tmp"), root.join("file/z.touch")).expect("rename");
        fs::remove_file(root.join("file/x.touch")).expect("unregister");
        until(&mut registry, "x gone, z there", |r| {
            r.names("file") == ["z.touch"]
        });
        // The directory removed: its registrations go with it; made again: watched again.
        fs::remove_dir_all(root.join("file")).expect("rm");
        until(&mut registry, "file/ gone", |r| r.names("file").is_empty());
        fs::create_dir(root.join("file")).expect("mkdir again");
        fs::write(root.join("file/w.touch"), "").expect("register");
        until(&mut registry, "w.touch registered", |r| {
            r.names("file") == ["w.touch"]
        });
        assert_eq!(registry.names("pid"), vec!["y.pid"]);
    }
}
