//! Heartbeat files: `<dir>/<service>.touch` (by default `/run/<service>.touch`, EVE's
//! convention), made by zedinit and owned by the service's uid, watched with inotify.
//! A touch (attribute change) or a write is a beat. Confined services see the file at
//! `/run/<service>.touch` inside their own root (it is bound there).
//!
//! The directory is the host's /run on a device, so what sits at a file's name is not
//! trusted: the file is opened without following a symlink and must be a regular file
//! with one link; its mode and owner are changed through that descriptor (audit finding
//! 18: a pre-placed symlink used to get its target chowned to the service).

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag};
use nix::unistd::{Gid, Uid};
use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The heartbeat file's mode: the service (its owner) touches it; zedinit, not its
/// owner, must be able to read it for its inotify watch.
const FILE_MODE: u32 = 0o644;

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
        give_to(&path, uid, gid).map_err(|e| format!("heartbeat file {}: {e}", path.display()))?;
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
                AddWatchFlags::IN_ATTRIB
                    | AddWatchFlags::IN_MODIFY
                    | AddWatchFlags::IN_CLOSE_WRITE
                    | AddWatchFlags::IN_DONT_FOLLOW,
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

/// Makes the heartbeat file at `path` (or takes the one there) and gives it to
/// `uid:gid`, mode [`FILE_MODE`]. Whatever else is at the name (a symlink, a FIFO, a
/// device, a directory, a file with other names) is refused, not removed: in the host's
/// /run it is someone else's (tampering, or another program's file of the same name),
/// and refusing fails only this service's start, with the reason in its status; its
/// restarts succeed once the thing is gone.
fn give_to(path: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let (file, made) = open_no_follow(path)?;
    let stat = nix::sys::stat::fstat(&file).map_err(|e| format!("fstat: {e}"))?;
    let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFREG {
        return Err(format!(
            "{} is there, not a regular file: refused (zedinit makes this file; remove it)",
            kind_name(kind)
        ));
    }
    if stat.st_nlink != 1 {
        return Err(format!(
            "a file with {} links (another name for some other file): refused",
            stat.st_nlink
        ));
    }
    let mode = Mode::from_bits_truncate(FILE_MODE);
    if made {
        // Ours, still root's: the creation mode was cut by the umask.
        nix::sys::stat::fchmod(&file, mode).map_err(|e| format!("fchmod: {e}"))?;
    } else {
        // On a restart it is the service's, and zedinit (without CAP_FOWNER) may not
        // change its mode: best effort, as the file is only ever read by inotify. The
        // O_PATH descriptor takes no fchmod; its /proc link names this very inode.
        let _ = nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            format!("/proc/self/fd/{}", file.as_raw_fd()).as_str(),
            mode,
            FchmodatFlags::FollowSymlink,
        );
    }
    nix::unistd::fchownat(
        &file,
        "",
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_EMPTY_PATH,
    )
    .map_err(|e| format!("chown: {e}"))
}

/// The file at `path`, never through a symlink: made if missing (`true`), else an
/// `O_PATH` handle of what is there (opening it for real could block on a FIFO, act on
/// a device, or need a permission zedinit lacks on a file the service owns).
fn open_no_follow(path: &Path) -> Result<(OwnedFd, bool), String> {
    let flags = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    // O_EXCL: a symlink at the name is never followed, it makes EEXIST.
    let made = nix::fcntl::open(
        path,
        flags | OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
        Mode::from_bits_truncate(FILE_MODE),
    );
    match made {
        Ok(file) => Ok((file, true)),
        Err(Errno::EEXIST) => nix::fcntl::open(path, flags | OFlag::O_PATH, Mode::empty())
            .map(|file| (file, false))
            .map_err(|e| format!("open: {e}")),
        Err(e) => Err(format!("create: {e}")),
    }
}

fn kind_name(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFLNK => "a symlink",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFSOCK => "a socket",
        _ => "a special file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn me() -> (u32, u32) {
        (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    }

    /// A file standing for something precious elsewhere: root-only, 0600.
    fn victim(dir: &Path) -> PathBuf {
        let victim = dir.join("victim");
        std::fs::write(&victim, "secret").expect("victim");
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        victim
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").mode() & 0o7777
    }

    #[test]
    fn a_missing_file_is_made_regular_and_0644_and_a_second_ensure_takes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut beats = Heartbeats::new(dir.path().to_path_buf());
        let (uid, gid) = me();
        let path = beats.ensure("svc", uid, gid).expect("made");
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        assert!(meta.file_type().is_file());
        assert_eq!((meta.uid(), meta.gid()), (uid, gid));
        assert_eq!(mode_of(&path), 0o644);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        beats
            .ensure("svc", uid, gid)
            .expect("taken again (a restart)");
        assert_eq!(mode_of(&path), 0o644, "its mode is put back");
    }

    #[test]
    fn a_pre_placed_symlink_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = victim(dir.path());
        let beats_dir = dir.path().join("beats");
        std::fs::create_dir(&beats_dir).expect("mkdir");
        std::os::unix::fs::symlink(&victim, beats_dir.join("svc.touch")).expect("symlink");
        let mut beats = Heartbeats::new(beats_dir);
        let (uid, gid) = me();
        let e = beats.ensure("svc", uid, gid).expect_err("refused");
        assert!(e.contains("a symlink is there"), "{e}");
        assert_eq!(mode_of(&victim), 0o600, "the target's mode is untouched");
        // A dangling symlink is no different: nothing is created through it.
        let absent = dir.path().join("absent");
        std::os::unix::fs::symlink(&absent, dir.path().join("beats/other.touch")).expect("symlink");
        let e = beats.ensure("other", uid, gid).expect_err("refused");
        assert!(e.contains("a symlink is there"), "{e}");
        assert!(!absent.exists(), "nothing made through the symlink");
    }

    #[test]
    fn a_hard_link_to_another_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = victim(dir.path());
        std::fs::hard_link(&victim, dir.path().join("svc.touch")).expect("link");
        let mut beats = Heartbeats::new(dir.path().to_path_buf());
        let (uid, gid) = me();
        let e = beats.ensure("svc", uid, gid).expect_err("refused");
        assert!(e.contains("2 links"), "{e}");
        assert_eq!(mode_of(&victim), 0o600);
    }

    #[test]
    fn a_fifo_or_a_directory_at_the_name_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        nix::unistd::mkfifo(
            &dir.path().join("fifo.touch"),
            Mode::from_bits_truncate(0o644),
        )
        .expect("mkfifo");
        std::fs::create_dir(dir.path().join("dir.touch")).expect("mkdir");
        let mut beats = Heartbeats::new(dir.path().to_path_buf());
        let (uid, gid) = me();
        let e = beats.ensure("fifo", uid, gid).expect_err("refused");
        assert!(e.contains("a FIFO is there"), "{e}");
        let e = beats.ensure("dir", uid, gid).expect_err("refused");
        assert!(e.contains("a directory is there"), "{e}");
    }
}
