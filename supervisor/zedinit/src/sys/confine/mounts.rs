//! The service's filesystem view: its mount namespace, its new root and what is
//! mounted in it, `pivot_root`, and its working directory. One function per step.
//!
//! Paths inside the new root are resolved *beneath* it, never through zedinit's root:
//! bind destinations with `openat2(RESOLVE_IN_ROOT)` (an image symlink such as
//! `/var/run -> /run` leads where the service would see it), `mkdir`s with
//! `RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS` and fd-based chmod/chown (a symlink a service
//! planted in a directory it can write is refused, never followed as root). Mounts are
//! made on the opened fd (`/proc/self/fd/N`), so nothing can be swapped in between.

use super::plan::{Beneath, BindPlan, Creds, MkdirPlan, Plan};
use super::step::{At, SpawnError, Step};
use super::sys::{Fd, Sys, SysResult};
use libc::{
    MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT,
    O_CLOEXEC, O_CREAT, O_DIRECTORY, O_NOFOLLOW, O_PATH, O_RDONLY, O_WRONLY, RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, c_int, c_ulong,
};
use std::ffi::CStr;

/// How bind mount points are looked up: symlinks resolve inside the new root.
const BIND_RESOLVE: u64 = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
/// How `mkdir` paths are looked up: no symlink at all.
const MKDIR_RESOLVE: u64 = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS;

pub fn unshare_mount_ns<S: Sys>(sys: &S) -> Result<(), SpawnError> {
    sys.unshare(libc::CLONE_NEWNS).at(Step::UnshareMountNs)
}

pub fn make_private<S: Sys>(sys: &S) -> Result<(), SpawnError> {
    sys.mount(None, c"/", None, MS_REC | MS_PRIVATE, None)
        .at(Step::MakePrivate)
}

/// Non-recursive: the mounts under the image root are not carried into the new root.
pub fn bind_image_root<S: Sys>(sys: &S, plan: &Plan) -> Result<(), SpawnError> {
    sys.mount(Some(c"/"), &plan.root, None, MS_BIND, None)
        .at(Step::BindImageRoot)
}

/// The new root, for the lookups beneath it.
pub fn open_root<'s, S: Sys>(sys: &'s S, plan: &Plan) -> Result<Fd<'s, S>, SpawnError> {
    let fd = sys
        .open(&plan.root, O_PATH | O_DIRECTORY | O_CLOEXEC, 0)
        .at(Step::OpenRoot)?;
    Ok(Fd::new(sys, fd))
}

pub fn mount_proc<S: Sys>(sys: &S, plan: &Plan) -> Result<(), SpawnError> {
    sys.mount(
        Some(c"proc"),
        &plan.proc_dir,
        Some(c"proc"),
        MS_NOSUID | MS_NODEV | MS_NOEXEC,
        None,
    )
    .at(Step::MountProc)
}

pub fn mount_dev<S: Sys>(sys: &S, plan: &Plan) -> Result<(), SpawnError> {
    sys.mount(
        Some(c"tmpfs"),
        &plan.dev_dir,
        Some(c"tmpfs"),
        MS_NOSUID | MS_NOEXEC,
        Some(c"mode=755,size=64k"),
    )
    .at(Step::MountDev)
}

/// Binds each device node over an empty file in the fresh /dev.
pub fn populate_dev<S: Sys>(sys: &S, plan: &Plan) -> Result<(), SpawnError> {
    for (src, dst) in &plan.devices {
        make_dev_target(sys, dst).at(Step::PopulateDev)?;
        sys.mount(Some(src), dst, None, MS_BIND, None)
            .at(Step::PopulateDev)?;
    }
    Ok(())
}

/// A private devpts instance (the service sees none of zedinit's terminals), and
/// /dev/ptmx leading into it.
pub fn mount_pts<S: Sys>(sys: &S, plan: &Plan) -> Result<(), SpawnError> {
    sys.mkdir(&plan.pts_dir, 0o755).at(Step::MountPts)?;
    sys.mount(
        Some(c"devpts"),
        &plan.pts_dir,
        Some(c"devpts"),
        MS_NOSUID | MS_NOEXEC,
        Some(c"newinstance,ptmxmode=0666,mode=620"),
    )
    .at(Step::MountPts)?;
    sys.symlink(c"pts/ptmx", &plan.ptmx).at(Step::MountPts)
}

/// A private /run, as in a container.
pub fn mount_run<S: Sys>(sys: &S, plan: &Plan) -> Result<(), SpawnError> {
    sys.mount(
        Some(c"tmpfs"),
        &plan.run_dir,
        Some(c"tmpfs"),
        MS_NOSUID | MS_NODEV,
        Some(c"mode=755,size=16m"),
    )
    .at(Step::MountRun)
}

/// One bind: its mount point opened (and made if missing) beneath the root, the source
/// mounted on that fd, then, for `:ro`, remounted read-only.
pub fn bind<S: Sys>(sys: &S, root: &Fd<S>, b: &BindPlan) -> Result<(), SpawnError> {
    let point = open_or_make(sys, root, &b.dst, b.is_dir).at(Step::Bind)?;
    sys.mount(
        Some(&b.src),
        FdPath::new(point.raw()).as_cstr(),
        None,
        MS_BIND,
        None,
    )
    .at(Step::Bind)?;
    drop(point);
    if b.readonly {
        // The fd still names the directory under the new mount; a fresh lookup lands
        // on the mount itself.
        // Never empty (plan); checked anyway: no panic in a child in zedinit's memory.
        let last = b.dst.prefixes.last().ok_or(libc::EINVAL).at(Step::Bind)?;
        let mounted = sys
            .openat2(root.raw(), last, O_PATH | O_CLOEXEC, BIND_RESOLVE)
            .at(Step::Bind)?;
        let mounted = Fd::new(sys, mounted);
        remount_readonly(sys, FdPath::new(mounted.raw()).as_cstr()).at(Step::Bind)?;
    }
    Ok(())
}

/// A `[run] mkdir`: the parent must exist and the whole path be free of symlinks; the
/// directory is made if missing, then chmod/chown go through its fd (O_NOFOLLOW), so a
/// symlink a service planted is refused (ELOOP), never followed with zedinit's rights.
pub fn mkdir<S: Sys>(sys: &S, root: &Fd<S>, m: &MkdirPlan) -> Result<(), SpawnError> {
    let n = m.path.prefixes.len();
    let opened;
    let parent = if n == 1 {
        root.raw()
    } else {
        let fd = sys
            .openat2(
                root.raw(),
                m.path
                    .prefixes
                    .get(n.wrapping_sub(2))
                    .ok_or(libc::EINVAL)
                    .at(Step::Mkdir)?,
                O_PATH | O_DIRECTORY | O_CLOEXEC,
                MKDIR_RESOLVE,
            )
            .at(Step::Mkdir)?;
        opened = Fd::new(sys, fd);
        opened.raw()
    };
    let name = m
        .path
        .names
        .get(n.wrapping_sub(1))
        .ok_or(libc::EINVAL)
        .at(Step::Mkdir)?;
    match sys.mkdirat(parent, name, m.mode) {
        Ok(()) | Err(libc::EEXIST) => {}
        Err(e) => return Err(e).at(Step::Mkdir),
    }
    let dir = sys
        .openat(
            parent,
            name,
            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
            0,
        )
        .at(Step::Mkdir)?;
    let dir = Fd::new(sys, dir);
    sys.fchmod(dir.raw(), m.mode).at(Step::Mkdir)?;
    if let Some((uid, gid)) = m.owner {
        sys.fchown(dir.raw(), uid, gid).at(Step::Mkdir)?;
    }
    Ok(())
}

/// The whole root read-only; the mounts on it (binds, /dev, /run, /proc) keep theirs.
pub fn remount_root_readonly<S: Sys>(sys: &S, plan: &Plan) -> Result<(), SpawnError> {
    remount_readonly(sys, &plan.root).at(Step::RemountRootReadonly)
}

/// pivot_root(".", "."): the old root ends up on top of the new one; detach it, so
/// nothing of zedinit's tree stays reachable.
pub fn pivot_root<S: Sys>(sys: &S, plan: &Plan) -> Result<(), SpawnError> {
    sys.chdir(&plan.root).at(Step::PivotRoot)?;
    sys.pivot_root(c".", c".").at(Step::PivotRoot)?;
    sys.umount2(c".", MNT_DETACH).at(Step::PivotRoot)?;
    sys.chdir(c"/").at(Step::PivotRoot)
}

/// The service's working directory, entered with its own rights.
pub fn cwd<S: Sys>(sys: &S, creds: &Creds) -> Result<(), SpawnError> {
    sys.chdir(&creds.cwd).at(Step::Cwd)
}

/// Opens (O_PATH) a mount point beneath `root`, making it and its missing parents:
/// directories, or an empty file for a file bind (`dir` false).
fn open_or_make<'s, S: Sys>(
    sys: &'s S,
    root: &Fd<S>,
    path: &Beneath,
    dir: bool,
) -> SysResult<Fd<'s, S>> {
    let last = path.prefixes.len() - 1;
    for (i, prefix) in path.prefixes.iter().enumerate() {
        let wants_dir = i < last || dir;
        let flags = O_PATH | O_CLOEXEC | if wants_dir { O_DIRECTORY } else { 0 };
        let fd = match sys.openat2(root.raw(), prefix, flags, BIND_RESOLVE) {
            Err(libc::ENOENT) => {
                make_component(sys, root, path, i, wants_dir)?;
                sys.openat2(root.raw(), prefix, flags, BIND_RESOLVE)?
            }
            other => other?,
        };
        let fd = Fd::new(sys, fd);
        if i == last {
            return Ok(fd);
        }
    }
    // Not reached: a plan's path has at least one component.
    Err(libc::EINVAL)
}

/// Makes component `i` of `path` (its parent exists): a directory or an empty file.
/// One there already (made meanwhile) is fine.
fn make_component<S: Sys>(
    sys: &S,
    root: &Fd<S>,
    path: &Beneath,
    i: usize,
    dir: bool,
) -> SysResult<()> {
    let opened;
    let parent = if i == 0 {
        root.raw()
    } else {
        let fd = sys.openat2(
            root.raw(),
            path.prefixes.get(i.wrapping_sub(1)).ok_or(libc::EINVAL)?,
            O_PATH | O_DIRECTORY | O_CLOEXEC,
            BIND_RESOLVE,
        )?;
        opened = Fd::new(sys, fd);
        opened.raw()
    };
    let name = path.names.get(i).ok_or(libc::EINVAL)?;
    let made = if dir {
        sys.mkdirat(parent, name, 0o755)
    } else {
        sys.openat(
            parent,
            name,
            O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
            0o644,
        )
        .map(|fd| drop(Fd::new(sys, fd)))
    };
    match made {
        Ok(()) | Err(libc::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Remounts the bind mount at `target` read-only, keeping the per-mount flags it has
/// (nosuid, nodev, noexec, atime): MS_REMOUNT replaces them all (mount(2)).
fn remount_readonly<S: Sys>(sys: &S, target: &CStr) -> SysResult<()> {
    let flags = sys.statvfs(target)?;
    let mut keep: c_ulong = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_NOSUID, MS_NOSUID),
        (libc::ST_NODEV, MS_NODEV),
        (libc::ST_NOEXEC, MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if flags & st_flag != 0 {
            keep |= ms_flag;
        }
    }
    sys.mount(
        None,
        target,
        None,
        MS_REMOUNT | MS_BIND | MS_RDONLY | keep,
        None,
    )
}

/// Makes a device's mount point, an empty file, and its missing parents in the fresh
/// /dev tmpfs (ours alone: plain paths are safe in it). The parents are cut in a stack
/// buffer: nothing is allocated.
fn make_dev_target<S: Sys>(sys: &S, path: &CStr) -> SysResult<()> {
    if sys.access(path).is_ok() {
        return Ok(());
    }
    let bytes = path.to_bytes();
    let mut buf = [0u8; 4096];
    if bytes.len() >= buf.len() {
        return Err(libc::ENAMETOOLONG);
    }
    buf[..bytes.len()].copy_from_slice(bytes);
    for i in 1..bytes.len() {
        if bytes[i] == b'/' {
            buf[i] = 0;
            let parent = CStr::from_bytes_until_nul(&buf).map_err(|_| libc::EINVAL)?;
            match sys.mkdir(parent, 0o755) {
                Ok(()) | Err(libc::EEXIST) => {}
                Err(e) => return Err(e),
            }
            buf[i] = b'/';
        }
    }
    let fd = sys.open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)?;
    drop(Fd::new(sys, fd));
    Ok(())
}

/// A mount target by fd: `/proc/self/fd/N`, formatted without allocating.
struct FdPath([u8; 32]);

impl FdPath {
    fn new(fd: c_int) -> Self {
        let mut buf = [0u8; 32];
        let prefix = b"/proc/self/fd/";
        buf[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 10];
        let mut n = fd.max(0) as u32;
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for i in 0..len {
            buf[prefix.len() + i] = digits[len - 1 - i];
        }
        FdPath(buf)
    }

    /// The path (the buffer always ends in NULs: 14 + at most 10 digits < 32).
    fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.0).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_paths_are_formatted_without_allocating() {
        for (fd, text) in [
            (0, "/proc/self/fd/0"),
            (7, "/proc/self/fd/7"),
            (1234, "/proc/self/fd/1234"),
            (c_int::MAX, "/proc/self/fd/2147483647"),
        ] {
            assert_eq!(FdPath::new(fd).as_cstr().to_str().unwrap(), text);
        }
    }
}
