//! Heartbeat files: `<dir>/<service>.touch` (by default `/run/<service>.touch`, EVE's
//! convention), made by zedinit and owned by the service's uid, watched with inotify.
//! A touch (attribute change) or a write is a beat. Confined services see the file at
//! `/run/<service>.touch` inside their own root (it is bound there).

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct Heartbeats {
    dir: PathBuf,
    inotify: Option<Inotify>,
    watches: BTreeMap<WatchDescriptor, String>,
    /// The inotify fd was made since the event loop last looked.
    fresh: bool,
}

impl Heartbeats {
    pub fn new(dir: PathBuf) -> Self {
        Heartbeats {
            dir,
            inotify: None,
            watches: BTreeMap::new(),
            fresh: false,
        }
    }

    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.touch"))
    }

    /// Makes (or re-makes) the service's file, owned by `uid:gid`, and watches it.
    pub fn ensure(&mut self, name: &str, uid: u32, gid: u32) -> Result<PathBuf, String> {
        let path = self.path_of(name);
        if self.inotify.is_none() {
            let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
                .map_err(|e| format!("inotify: {e}"))?;
            self.inotify = Some(inotify);
            self.fresh = true;
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("heartbeat: {}: {e}", self.dir.display()))?;
        // Made once; on a restart it exists already, owned by the service (and zedinit
        // may lack CAP_DAC_OVERRIDE to open it for writing then: it needs not).
        match std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("heartbeat file {}: {e}", path.display())),
        }
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))
            .map_err(|e| format!("heartbeat file {}: chown: {e}", path.display()))?;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644));
        self.watch(name, &path)?;
        Ok(path)
    }

    fn watch(&mut self, name: &str, path: &Path) -> Result<(), String> {
        let Some(inotify) = &self.inotify else {
            return Err("inotify not set up".into());
        };
        self.watches.retain(|_, n| n != name);
        let wd = inotify
            .add_watch(
                path,
                AddWatchFlags::IN_ATTRIB | AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CLOSE_WRITE,
            )
            .map_err(|e| format!("heartbeat watch {}: {e}", path.display()))?;
        self.watches.insert(wd, name.to_string());
        Ok(())
    }

    /// The inotify fd, once, for the event loop to register.
    pub fn take_fresh_fd(&mut self) -> Option<BorrowedFd<'_>> {
        if !self.fresh {
            return None;
        }
        self.fresh = false;
        self.inotify.as_ref().map(|i| i.as_fd())
    }

    /// Services that beat since the last call.
    pub fn read_beats(&mut self) -> Vec<String> {
        let Some(inotify) = &self.inotify else {
            return Vec::new();
        };
        let mut beats = Vec::new();
        let mut lost = Vec::new();
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                if let Some(name) = self.watches.get(&e.wd) {
                    if e.mask.contains(AddWatchFlags::IN_IGNORED) {
                        lost.push(e.wd);
                    } else if !beats.contains(name) {
                        beats.push(name.clone());
                    }
                }
            }
        }
        for wd in lost {
            // The file went away (deleted, or its filesystem unmounted): stop tracking;
            // the service will be found stale and restarted, which makes it again.
            self.watches.remove(&wd);
        }
        beats
    }

    pub fn forget(&mut self, name: &str) {
        if let Some(inotify) = &self.inotify {
            let gone: Vec<WatchDescriptor> = self
                .watches
                .iter()
                .filter(|(_, n)| *n == name)
                .map(|(wd, _)| *wd)
                .collect();
            for wd in gone {
                let _ = inotify.rm_watch(wd);
                self.watches.remove(&wd);
            }
        }
        let _ = std::fs::remove_file(self.path_of(name));
    }
}
