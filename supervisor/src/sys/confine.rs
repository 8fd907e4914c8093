//! Applying `[run]` in the child, between fork and exec (DESIGN.md "Applying a
//! definition"). Everything is resolved and allocated before fork by [`prepare`]; the
//! child ([`Plan::apply`]) only makes syscalls, in the order the kernel requires:
//!
//! 1. own mount namespace, private propagation; a **non-recursive** bind of the image
//!    root (so the container's own binds — /hostfs, /config, /run — are not inherited),
//!    then /proc, a small /dev (null, zero, full, random, urandom, tty, pts and only the
//!    declared devices), a private /run (tmpfs, as in a container), the declared binds,
//!    the notify socket, `mkdir`s; read-only remount if `readonly`; `pivot_root`;
//! 2. `net = "none"`: a new, empty network namespace;
//! 3. rlimits, oom_score_adj;
//! 4. still uid 0: drop the bounding set to the declared capabilities; PR_SET_KEEPCAPS;
//! 5. setgroups → setresgid → setresuid;
//! 6. capset (permitted = effective = inheritable = declared), then raise ambient
//!    (the uid change cleared it);
//! 7. PR_SET_NO_NEW_PRIVS if declared; cwd. (env is set by `Command` before fork.)
//!
//! A failing step writes its number to a CLOEXEC pipe before returning the errno, so the
//! parent can name the step; the child never execs with more than it declared.

use crate::spec::{IdRef, RunSpec, ServiceSpec};
use std::ffi::{CString, c_int};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Steps as named in error messages (index = step number written to the pipe).
pub const STEPS: [&str; 21] = [
    "unshare mount namespace",
    "make mounts private",
    "bind the image root",
    "mount /proc",
    "mount /dev",
    "populate /dev",
    "mount /dev/pts",
    "mount /run",
    "bind",
    "mkdir",
    "remount the root read-only",
    "pivot_root",
    "unshare network namespace (net = none)",
    "rlimits",
    "oomScoreAdj",
    "drop the bounding set",
    "keep capabilities across setuid",
    "setgroups/setresgid/setresuid",
    "set capabilities",
    "raise ambient capabilities",
    "noNewPrivileges / cwd",
];

/// The device nodes every service gets.
const BASE_DEVICES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

struct BindPlan {
    src: CString,
    dst: CString,
    readonly: bool,
    is_dir: bool,
}

struct MkdirPlan {
    path: CString,
    mode: u32,
    owner: Option<(u32, u32)>,
}

/// Everything the child needs, resolved before fork.
pub struct Plan {
    root: CString,
    proc_dir: CString,
    dev_dir: CString,
    pts_dir: CString,
    ptmx: CString,
    run_dir: CString,
    devices: Vec<(CString, CString)>,
    binds: Vec<BindPlan>,
    mkdirs: Vec<MkdirPlan>,
    readonly: bool,
    net_none: bool,
    rlimits: Vec<(i32, libc::rlimit)>,
    oom_path: CString,
    oom_value: Option<CString>,
    keep: u64,
    last_cap: u8,
    groups: Vec<libc::gid_t>,
    uid: u32,
    gid: u32,
    ambient: Vec<u8>,
    no_new_privs: bool,
    cwd: CString,
    /// Write end of the step pipe (closed on exec).
    step_fd: c_int,
}

fn cstr(path: impl AsRef<Path>) -> Result<CString, String> {
    CString::new(path.as_ref().as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{}: path holds a NUL byte", path.as_ref().display()))
}

fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Looks a user up in /etc/passwd: (uid, primary gid).
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn lookup_group(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[0] == name).then(|| f[2].parse().ok())?
    })
}

fn group_id(id: &IdRef, key: &str) -> Result<u32, String> {
    match id {
        IdRef::Id(n) => Ok(*n),
        IdRef::Name(n) => lookup_group(n).ok_or(format!(
            "run.{key}: unknown group {n:?} (not in /etc/group)"
        )),
    }
}

fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// The uid and gid a service runs as (names looked up in the image's files).
pub fn ids(run: &RunSpec) -> Result<(u32, u32), String> {
    let (uid, user_gid) = match &run.uid {
        None => (0, 0),
        Some(IdRef::Id(n)) => (*n, *n),
        Some(IdRef::Name(n)) => {
            lookup_user(n).ok_or(format!("run.uid: unknown user {n:?} (not in /etc/passwd)"))?
        }
    };
    let gid = match &run.gid {
        None => user_gid,
        Some(g) => group_id(g, "gid")?,
    };
    Ok((uid, gid))
}

/// Resolves `run` for `spec`: ids, paths, masks. `roots` is where the service's new
/// root mount point is made; `extra` are (source, destination) files zedinit made for the
/// service (its notify socket, its heartbeat file) to keep reachable in its root.
/// Returns the plan and the step pipe's read end and write end; drop the write end in
/// the parent once spawn has returned.
pub fn prepare(
    spec: &ServiceSpec,
    run: &RunSpec,
    roots: &Path,
    extra: &[(PathBuf, PathBuf)],
) -> Result<(Plan, OwnedFd, OwnedFd), String> {
    let root = roots.join(&spec.name);
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let (uid, gid) = ids(run)?;
    let groups = run
        .additional_gids
        .iter()
        .map(|g| group_id(g, "additionalGids"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut devices = Vec::new();
    for dev in BASE_DEVICES
        .iter()
        .map(Path::new)
        .chain(run.devices.iter().map(PathBuf::as_path))
    {
        if !dev.exists() {
            if run.devices.iter().any(|d| d == dev) {
                return Err(format!("run.devices: {} does not exist", dev.display()));
            }
            continue;
        }
        devices.push((cstr(dev)?, cstr(under(&root, dev))?));
    }
    let mut binds = Vec::new();
    for b in &run.binds {
        let meta = std::fs::metadata(&b.src)
            .map_err(|e| format!("run.binds: source {}: {e}", b.src.display()))?;
        binds.push(BindPlan {
            src: cstr(&b.src)?,
            dst: cstr(under(&root, &b.dst))?,
            readonly: b.readonly,
            is_dir: meta.is_dir(),
        });
    }
    for (src, dst) in extra {
        binds.push(BindPlan {
            src: cstr(src)?,
            dst: cstr(under(&root, dst))?,
            readonly: false,
            is_dir: false,
        });
    }
    let mut mkdirs = Vec::new();
    for m in &run.mkdir {
        let owner = match &m.owner {
            None => None,
            Some((u, g)) => {
                let (uid, pgid) = match u {
                    IdRef::Id(n) => (*n, *n),
                    IdRef::Name(n) => {
                        lookup_user(n).ok_or(format!("run.mkdir: unknown user {n:?}"))?
                    }
                };
                let gid = match g {
                    None => pgid,
                    Some(g) => group_id(g, "mkdir")?,
                };
                Some((uid, gid))
            }
        };
        mkdirs.push(MkdirPlan {
            path: cstr(under(&root, &m.path))?,
            mode: m.mode,
            owner,
        });
    }
    let mut keep = 0u64;
    for c in &run.capabilities {
        keep |= 1 << c;
    }
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let plan = Plan {
        proc_dir: cstr(root.join("proc"))?,
        dev_dir: cstr(root.join("dev"))?,
        pts_dir: cstr(root.join("dev/pts"))?,
        ptmx: cstr(root.join("dev/ptmx"))?,
        run_dir: cstr(root.join("run"))?,
        root: cstr(&root)?,
        devices,
        binds,
        mkdirs,
        readonly: run.readonly,
        net_none: run.net_none,
        rlimits: run
            .rlimits
            .iter()
            .map(|r| {
                (
                    r.resource,
                    libc::rlimit {
                        rlim_cur: r.soft,
                        rlim_max: r.hard,
                    },
                )
            })
            .collect(),
        oom_path: cstr("/proc/self/oom_score_adj")?,
        oom_value: run
            .oom_score_adj
            .map(|v| CString::new(v.to_string()))
            .transpose()
            .map_err(|_| "oomScoreAdj")?,
        keep,
        last_cap: last_cap(),
        groups,
        uid,
        gid,
        ambient: run.ambient.clone(),
        no_new_privs: run.no_new_privileges,
        cwd: cstr(run.cwd.as_deref().unwrap_or(Path::new("/")))?,
        step_fd: write.as_raw_fd(),
    };
    Ok((plan, read, write))
}

/// The step that failed in the child, if it reported one.
pub fn failed_step(read: &OwnedFd) -> Option<&'static str> {
    let mut byte = [0u8; 1];
    match nix::unistd::read(read, &mut byte) {
        Ok(1) => STEPS.get(byte[0] as usize).copied(),
        _ => None,
    }
}

impl Plan {
    /// Runs in the forked child. Async-signal-safe: syscalls only, nothing allocated.
    pub fn apply(&self) -> std::io::Result<()> {
        let mut step = 0u8;
        let result = self.apply_steps(&mut step);
        if result.is_err() {
            // SAFETY: writing one byte from a stack buffer to our own pipe.
            unsafe { libc::write(self.step_fd, (&step as *const u8).cast(), 1) };
        }
        result
    }

    fn apply_steps(&self, step: &mut u8) -> std::io::Result<()> {
        use libc::*;
        let null = std::ptr::null::<c_char>();
        // SAFETY: plain syscalls on NUL-terminated strings and plain-old-data owned by
        // `self`, which outlives every call; nothing is allocated.
        unsafe {
            *step = 0;
            check(unshare(CLONE_NEWNS))?;
            *step = 1;
            check(mount(
                null,
                c"/".as_ptr(),
                null,
                MS_REC | MS_PRIVATE,
                std::ptr::null(),
            ))?;
            *step = 2;
            check(mount(
                c"/".as_ptr(),
                self.root.as_ptr(),
                null,
                MS_BIND,
                std::ptr::null(),
            ))?;
            *step = 3;
            check(mount(
                c"proc".as_ptr(),
                self.proc_dir.as_ptr(),
                c"proc".as_ptr(),
                MS_NOSUID | MS_NODEV | MS_NOEXEC,
                std::ptr::null(),
            ))?;
            *step = 4;
            check(mount(
                c"tmpfs".as_ptr(),
                self.dev_dir.as_ptr(),
                c"tmpfs".as_ptr(),
                MS_NOSUID | MS_NOEXEC,
                c"mode=755,size=64k".as_ptr().cast(),
            ))?;
            *step = 5;
            for (src, dst) in &self.devices {
                make_target(dst, false)?;
                check(mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    null,
                    MS_BIND,
                    std::ptr::null(),
                ))?;
            }
            *step = 6;
            check(mkdir(self.pts_dir.as_ptr(), 0o755))?;
            check(mount(
                c"devpts".as_ptr(),
                self.pts_dir.as_ptr(),
                c"devpts".as_ptr(),
                MS_NOSUID | MS_NOEXEC,
                c"newinstance,ptmxmode=0666,mode=620".as_ptr().cast(),
            ))?;
            check(symlink(c"pts/ptmx".as_ptr(), self.ptmx.as_ptr()))?;
            *step = 7;
            check(mount(
                c"tmpfs".as_ptr(),
                self.run_dir.as_ptr(),
                c"tmpfs".as_ptr(),
                MS_NOSUID | MS_NODEV,
                c"mode=755,size=16m".as_ptr().cast(),
            ))?;
            *step = 8;
            for b in &self.binds {
                make_target(&b.dst, b.is_dir)?;
                check(mount(
                    b.src.as_ptr(),
                    b.dst.as_ptr(),
                    null,
                    MS_BIND,
                    std::ptr::null(),
                ))?;
                if b.readonly {
                    check(mount(
                        null,
                        b.dst.as_ptr(),
                        null,
                        MS_REMOUNT | MS_BIND | MS_RDONLY,
                        std::ptr::null(),
                    ))?;
                }
            }
            *step = 9;
            for m in &self.mkdirs {
                if mkdir(m.path.as_ptr(), m.mode) != 0 && *__errno_location() != EEXIST {
                    return Err(std::io::Error::last_os_error());
                }
                check(chmod(m.path.as_ptr(), m.mode))?;
                if let Some((u, g)) = m.owner {
                    check(chown(m.path.as_ptr(), u, g))?;
                }
            }
            *step = 10;
            if self.readonly {
                check(mount(
                    null,
                    self.root.as_ptr(),
                    null,
                    MS_REMOUNT | MS_BIND | MS_RDONLY,
                    std::ptr::null(),
                ))?;
            }
            *step = 11;
            check(chdir(self.root.as_ptr()))?;
            // pivot_root(".", "."): the old root ends up on top of the new one; detach it.
            check(syscall(SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) as c_int)?;
            check(umount2(c".".as_ptr(), MNT_DETACH))?;
            check(chdir(c"/".as_ptr()))?;
            *step = 12;
            if self.net_none {
                check(unshare(CLONE_NEWNET))?;
            }
            *step = 13;
            for (resource, limit) in &self.rlimits {
                check(setrlimit(*resource as __rlimit_resource_t, limit))?;
            }
            *step = 14;
            if let Some(value) = &self.oom_value {
                let fd = open(self.oom_path.as_ptr(), O_WRONLY | O_CLOEXEC);
                check(fd)?;
                let len = value.as_bytes().len();
                let n = write(fd, value.as_ptr().cast(), len);
                close(fd);
                if n != len as isize {
                    return Err(std::io::Error::last_os_error());
                }
            }
            *step = 15;
            for cap in 0..=self.last_cap {
                if self.keep & (1 << cap) == 0 {
                    check(prctl(PR_CAPBSET_DROP, cap as c_ulong, 0, 0, 0))?;
                }
            }
            *step = 16;
            check(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0))?;
            *step = 17;
            check(setgroups(self.groups.len(), self.groups.as_ptr()))?;
            check(setresgid(self.gid, self.gid, self.gid))?;
            check(setresuid(self.uid, self.uid, self.uid))?;
            *step = 18;
            let header = CapHeader {
                version: 0x2008_0522,
                pid: 0,
            };
            let low = (self.keep & 0xffff_ffff) as u32;
            let high = (self.keep >> 32) as u32;
            let data = [
                CapData {
                    effective: low,
                    permitted: low,
                    inheritable: low,
                },
                CapData {
                    effective: high,
                    permitted: high,
                    inheritable: high,
                },
            ];
            check(syscall(SYS_capset, &header as *const CapHeader, data.as_ptr()) as c_int)?;
            *step = 19;
            for cap in &self.ambient {
                check(prctl(
                    PR_CAP_AMBIENT,
                    PR_CAP_AMBIENT_RAISE as c_ulong,
                    *cap as c_ulong,
                    0,
                    0,
                ))?;
            }
            *step = 20;
            if self.no_new_privs {
                check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            }
            check(chdir(self.cwd.as_ptr()))?;
        }
        Ok(())
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

#[repr(C)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn check(ret: c_int) -> std::io::Result<()> {
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Makes a mount point and its missing parents: a directory, or an empty file for a
/// file bind. Allocation-free (parents are cut in a stack buffer).
///
/// # Safety
/// Only syscalls on `path`; callable between fork and exec.
unsafe fn make_target(path: &CString, dir: bool) -> std::io::Result<()> {
    // Already there (a directory, a file, or the very socket being bound): use it as is.
    // SAFETY: access(2) on a NUL-terminated path we own.
    if unsafe { libc::access(path.as_ptr(), libc::F_OK) } == 0 {
        return Ok(());
    }
    let bytes = path.as_bytes();
    let mut buf = [0u8; 4096];
    if bytes.len() >= buf.len() {
        return Err(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf[..bytes.len()].copy_from_slice(bytes);
    for i in 1..bytes.len() {
        if bytes[i] == b'/' {
            buf[i] = 0;
            // SAFETY: `buf` is NUL-terminated at `i`; EEXIST is the common answer.
            let ret = unsafe { libc::mkdir(buf.as_ptr().cast(), 0o755) };
            // SAFETY: reading errno right after the call.
            if ret != 0 && unsafe { *libc::__errno_location() } != libc::EEXIST {
                return Err(std::io::Error::last_os_error());
            }
            buf[i] = b'/';
        }
    }
    // SAFETY: syscalls on a NUL-terminated path we own.
    unsafe {
        if dir {
            if libc::mkdir(path.as_ptr(), 0o755) != 0 && *libc::__errno_location() != libc::EEXIST {
                return Err(std::io::Error::last_os_error());
            }
        } else {
            let fd = libc::open(
                path.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
                0o644,
            );
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
        }
    }
    Ok(())
}
