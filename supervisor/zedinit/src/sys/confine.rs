//! Applying `[run]` in the child, between clone and exec (DESIGN.md "Applying a
//! definition"). Everything is resolved and allocated before clone by [`prepare`]; the
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
//! 7. PR_SET_NO_NEW_PRIVS if declared; cwd.
//!
//! Paths inside the new root are resolved *beneath* it, never through zedinit's root:
//! bind destinations with `openat2(RESOLVE_IN_ROOT)` (an image symlink such as
//! `/var/run -> /run` leads where the service would see it), `mkdir`s with
//! `RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS` and fd-based chmod/chown (a symlink a service
//! planted in a directory it can write is refused, never followed as root). Mounts are
//! made on the opened fd (`/proc/self/fd/N`), so nothing can be swapped in between.
//! A read-only remount keeps the source's nosuid/nodev/noexec/atime flags (a remount
//! replaces them all, mount(2) "MS_REMOUNT").
//!
//! A readiness probe ([`Join`]) enters the running service's mount and network
//! namespaces and takes its credentials (steps 3–7), so it never has more than the
//! service.
//!
//! A failing step is returned as its number ([`STEPS`]) with errno set; the child
//! reports both, and never execs with more than it declared.

use crate::spec::{IdRef, RunSpec, ServiceSpec};
use crate::sys::launch::raw;
use std::ffi::{CStr, CString, c_int};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// Steps as named in error messages (index = step number reported by the child).
pub const STEPS: [&str; 23] = [
    "unshare mount namespace",
    "make mounts private",
    "bind the image root",
    "open the new root",
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
    "enter the service's namespaces",
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

/// A path inside the new root, cut into what the child walks: for each component, the
/// path from the root up to and including it (relative, as openat2 wants) and its name.
struct Beneath {
    prefixes: Vec<CString>,
    names: Vec<CString>,
}

impl Beneath {
    fn new(path: &Path) -> Result<Self, String> {
        let mut prefixes = Vec::new();
        let mut names = Vec::new();
        let mut so_far = PathBuf::new();
        for c in path.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(name) => {
                    so_far.push(name);
                    prefixes.push(cstr(&so_far)?);
                    names.push(cstr(name)?);
                }
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(format!(
                        "{}: `..` leaves the service's root",
                        path.display()
                    ));
                }
            }
        }
        if names.is_empty() {
            return Err(format!("{}: names the root itself", path.display()));
        }
        Ok(Beneath { prefixes, names })
    }
}

struct BindPlan {
    src: CString,
    dst: Beneath,
    readonly: bool,
    is_dir: bool,
}

struct MkdirPlan {
    path: Beneath,
    mode: u32,
    owner: Option<(u32, u32)>,
}

/// The credential steps (3–7), shared by a service and its probes.
pub struct Creds {
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
}

/// Everything the child needs, resolved before clone.
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
    creds: Creds,
}

/// A probe's way into its running service: its namespaces and its credentials.
pub struct Join {
    /// `None`: stay in zedinit's mount namespace (a `tcp` probe runs zedinit's binary).
    mnt: Option<OwnedFd>,
    net: OwnedFd,
    creds: Creds,
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

impl Creds {
    fn prepare(run: &RunSpec) -> Result<Self, String> {
        let (uid, gid) = ids(run)?;
        let groups = run
            .additional_gids
            .iter()
            .map(|g| group_id(g, "additionalGids"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut keep = 0u64;
        for c in &run.capabilities {
            keep |= 1 << c;
        }
        Ok(Creds {
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
        })
    }
}

fn owner_ids(owner: &(IdRef, Option<IdRef>)) -> Result<(u32, u32), String> {
    let (u, g) = owner;
    let (uid, pgid) = match u {
        IdRef::Id(n) => (*n, *n),
        IdRef::Name(n) => lookup_user(n).ok_or(format!("run.mkdir: unknown user {n:?}"))?,
    };
    let gid = match g {
        None => pgid,
        Some(g) => group_id(g, "mkdir")?,
    };
    Ok((uid, gid))
}

/// Resolves `run` for `spec`: ids, paths, masks. `roots` is where the service's new
/// root mount point is made; `extra` are (source, destination) files zedinit made for the
/// service (its notify socket, its heartbeat file) to keep reachable in its root.
pub fn prepare(
    spec: &ServiceSpec,
    run: &RunSpec,
    roots: &Path,
    extra: &[(PathBuf, PathBuf)],
) -> Result<Plan, String> {
    let root = roots.join(&spec.name);
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
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
            dst: Beneath::new(&b.dst).map_err(|e| format!("run.binds: {e}"))?,
            readonly: b.readonly,
            is_dir: meta.is_dir(),
        });
    }
    for (src, dst) in extra {
        binds.push(BindPlan {
            src: cstr(src)?,
            dst: Beneath::new(dst)?,
            readonly: false,
            is_dir: false,
        });
    }
    let mut mkdirs = Vec::new();
    for m in &run.mkdir {
        mkdirs.push(MkdirPlan {
            path: Beneath::new(&m.path).map_err(|e| format!("run.mkdir: {e}"))?,
            mode: m.mode,
            owner: m.owner.as_ref().map(owner_ids).transpose()?,
        });
    }
    Ok(Plan {
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
        creds: Creds::prepare(run)?,
    })
}

/// The way into the running service `pid` for a probe of it.
pub fn prepare_join(run: &RunSpec, pid: i32, with_mounts: bool) -> Result<Join, String> {
    let ns = |kind: &str| {
        std::fs::File::open(format!("/proc/{pid}/ns/{kind}"))
            .map(OwnedFd::from)
            .map_err(|e| format!("/proc/{pid}/ns/{kind}: {e}"))
    };
    Ok(Join {
        mnt: if with_mounts { Some(ns("mnt")?) } else { None },
        net: ns("net")?,
        creds: Creds::prepare(run)?,
    })
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

    fn as_ptr(&self) -> *const libc::c_char {
        self.0.as_ptr().cast()
    }
}

impl Plan {
    /// Runs in the cloned child. Syscalls only, nothing allocated. On failure returns
    /// the step number, errno still set.
    pub fn apply(&self) -> Result<(), u8> {
        self.mount_steps()?;
        if self.net_none {
            // SAFETY: unshare(2) with a flag.
            step(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 13)?;
        }
        self.creds.apply()
    }

    fn mount_steps(&self) -> Result<(), u8> {
        use libc::*;
        let null = std::ptr::null::<c_char>();
        // SAFETY: plain syscalls on NUL-terminated strings and plain-old-data owned by
        // `self`, which outlives every call; nothing is allocated.
        unsafe {
            step(unshare(CLONE_NEWNS), 0)?;
            step(
                mount(
                    null,
                    c"/".as_ptr(),
                    null,
                    MS_REC | MS_PRIVATE,
                    std::ptr::null(),
                ),
                1,
            )?;
            step(
                mount(
                    c"/".as_ptr(),
                    self.root.as_ptr(),
                    null,
                    MS_BIND,
                    std::ptr::null(),
                ),
                2,
            )?;
            let root_fd = open(self.root.as_ptr(), O_PATH | O_DIRECTORY | O_CLOEXEC);
            step(root_fd, 3)?;
            step(
                mount(
                    c"proc".as_ptr(),
                    self.proc_dir.as_ptr(),
                    c"proc".as_ptr(),
                    MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    std::ptr::null(),
                ),
                4,
            )?;
            step(
                mount(
                    c"tmpfs".as_ptr(),
                    self.dev_dir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    MS_NOSUID | MS_NOEXEC,
                    c"mode=755,size=64k".as_ptr().cast(),
                ),
                5,
            )?;
            for (src, dst) in &self.devices {
                // The fresh /dev tmpfs is ours alone: plain paths are safe in it.
                step(make_target(dst, false), 6)?;
                step(
                    mount(src.as_ptr(), dst.as_ptr(), null, MS_BIND, std::ptr::null()),
                    6,
                )?;
            }
            step(mkdir(self.pts_dir.as_ptr(), 0o755), 7)?;
            step(
                mount(
                    c"devpts".as_ptr(),
                    self.pts_dir.as_ptr(),
                    c"devpts".as_ptr(),
                    MS_NOSUID | MS_NOEXEC,
                    c"newinstance,ptmxmode=0666,mode=620".as_ptr().cast(),
                ),
                7,
            )?;
            step(symlink(c"pts/ptmx".as_ptr(), self.ptmx.as_ptr()), 7)?;
            step(
                mount(
                    c"tmpfs".as_ptr(),
                    self.run_dir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    MS_NOSUID | MS_NODEV,
                    c"mode=755,size=16m".as_ptr().cast(),
                ),
                8,
            )?;
            for b in &self.binds {
                let fd = step_fd(make_beneath(root_fd, &b.dst, b.is_dir), 9)?;
                let bound = mount(
                    b.src.as_ptr(),
                    FdPath::new(fd).as_ptr(),
                    null,
                    MS_BIND,
                    std::ptr::null(),
                );
                close(fd);
                step(bound, 9)?;
                if b.readonly {
                    // The fd still names the directory under the new mount; a fresh
                    // lookup lands on the mount itself.
                    let last = &b.dst.prefixes[b.dst.prefixes.len() - 1];
                    let fd = step_fd(
                        open_beneath(
                            root_fd,
                            last,
                            O_PATH,
                            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
                        ),
                        9,
                    )?;
                    let remounted = remount_readonly(FdPath::new(fd).as_ptr());
                    close(fd);
                    step(remounted, 9)?;
                }
            }
            for m in &self.mkdirs {
                step(make_dir(root_fd, m), 10)?;
            }
            if self.readonly {
                step(remount_readonly(self.root.as_ptr()), 11)?;
            }
            close(root_fd);
            step(chdir(self.root.as_ptr()), 12)?;
            // pivot_root(".", "."): the old root ends up on top of the new one; detach it.
            step(
                syscall(SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) as c_int,
                12,
            )?;
            step(umount2(c".".as_ptr(), MNT_DETACH), 12)?;
            step(chdir(c"/".as_ptr()), 12)?;
        }
        Ok(())
    }
}

impl Join {
    /// Runs in the cloned child: into the service's namespaces, then its credentials.
    pub fn apply(&self) -> Result<(), u8> {
        // SAFETY: setns(2) on namespace fds owned by `self`; chdir on a static string.
        unsafe {
            if let Some(mnt) = &self.mnt {
                step(libc::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS), 22)?;
                step(libc::chdir(c"/".as_ptr()), 22)?;
            }
            step(libc::setns(self.net.as_raw_fd(), libc::CLONE_NEWNET), 22)?;
        }
        self.creds.apply()
    }
}

impl Creds {
    fn apply(&self) -> Result<(), u8> {
        use libc::*;
        // SAFETY: plain syscalls on plain-old-data owned by `self`; nothing allocated.
        unsafe {
            for (resource, limit) in &self.rlimits {
                step(setrlimit(*resource as __rlimit_resource_t, limit), 14)?;
            }
            if let Some(value) = &self.oom_value {
                let fd = open(self.oom_path.as_ptr(), O_WRONLY | O_CLOEXEC);
                step(fd, 15)?;
                let len = value.as_bytes().len();
                let n = write(fd, value.as_ptr().cast(), len);
                close(fd);
                if n != len as isize {
                    return Err(15);
                }
            }
            for cap in 0..=self.last_cap {
                if self.keep & (1 << cap) == 0 {
                    step(prctl(PR_CAPBSET_DROP, cap as c_ulong, 0, 0, 0), 16)?;
                }
            }
            step(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), 17)?;
            // Raw syscalls: glibc's wrappers hang in a cloned child (launch::raw).
            step(raw::setgroups(self.groups.len(), self.groups.as_ptr()), 18)?;
            step(raw::setresgid(self.gid, self.gid, self.gid), 18)?;
            step(raw::setresuid(self.uid, self.uid, self.uid), 18)?;
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
            step(
                syscall(SYS_capset, &header as *const CapHeader, data.as_ptr()) as c_int,
                19,
            )?;
            for cap in &self.ambient {
                step(
                    prctl(
                        PR_CAP_AMBIENT,
                        PR_CAP_AMBIENT_RAISE as c_ulong,
                        *cap as c_ulong,
                        0,
                        0,
                    ),
                    20,
                )?;
            }
            if self.no_new_privs {
                step(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 21)?;
            }
            step(chdir(self.cwd.as_ptr()), 21)?;
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

/// A syscall's result as the step it belongs to (errno stays set for the report).
fn step(ret: c_int, number: u8) -> Result<(), u8> {
    if ret < 0 { Err(number) } else { Ok(()) }
}

fn step_fd(ret: c_int, number: u8) -> Result<c_int, u8> {
    if ret < 0 { Err(number) } else { Ok(ret) }
}

/// openat2(2) beneath `root`: `resolve` is a set of `RESOLVE_*` flags.
///
/// # Safety
/// Only a syscall on `path`, a NUL-terminated string.
unsafe fn open_beneath(root: c_int, path: &CStr, flags: c_int, resolve: u64) -> c_int {
    // SAFETY: open_how is plain data; zeroed is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // SAFETY: openat2 reads `how` (of the size passed) and the path.
    unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        ) as c_int
    }
}

/// Opens (O_PATH) a mount point beneath `root`, making it and its missing parents:
/// directories, or an empty file for a file bind. Symlinks resolve inside the new root
/// (RESOLVE_IN_ROOT), never in zedinit's. Returns the fd or -1 with errno set.
///
/// # Safety
/// Only syscalls; callable between clone and exec.
unsafe fn make_beneath(root: c_int, path: &Beneath, dir: bool) -> c_int {
    use libc::*;
    let resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    let last = path.prefixes.len() - 1;
    for (i, prefix) in path.prefixes.iter().enumerate() {
        let wants_dir = i < last || dir;
        let flags = O_PATH | if wants_dir { O_DIRECTORY } else { 0 };
        // SAFETY: syscalls on strings owned by `path`.
        unsafe {
            let fd = open_beneath(root, prefix, flags, resolve);
            if fd >= 0 {
                if i == last {
                    return fd;
                }
                close(fd);
                continue;
            }
            if *__errno_location() != ENOENT {
                return -1;
            }
            let parent = if i == 0 {
                fcntl(root, F_DUPFD_CLOEXEC, 0)
            } else {
                open_beneath(root, &path.prefixes[i - 1], O_PATH | O_DIRECTORY, resolve)
            };
            if parent < 0 {
                return -1;
            }
            let name = path.names[i].as_ptr();
            let made = if wants_dir {
                mkdirat(parent, name, 0o755)
            } else {
                let f = openat(
                    parent,
                    name,
                    O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
                    0o644,
                );
                if f >= 0 {
                    close(f);
                }
                f
            };
            let made_or_there = made >= 0 || *__errno_location() == EEXIST;
            close(parent);
            if !made_or_there {
                return -1;
            }
            let fd = open_beneath(root, prefix, flags, resolve);
            if fd < 0 || i == last {
                return fd;
            }
            close(fd);
        }
    }
    -1
}

/// A `[run] mkdir`: the parent must exist and the whole path be free of symlinks; the
/// directory is made if missing, then chmod/chown go through its fd (O_NOFOLLOW), so a
/// symlink a service planted is refused (ELOOP), never followed with zedinit's rights.
///
/// # Safety
/// Only syscalls; callable between clone and exec.
unsafe fn make_dir(root: c_int, m: &MkdirPlan) -> c_int {
    use libc::*;
    let resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS;
    let n = m.path.prefixes.len();
    // SAFETY: syscalls on strings owned by `m`.
    unsafe {
        let parent = if n == 1 {
            fcntl(root, F_DUPFD_CLOEXEC, 0)
        } else {
            open_beneath(root, &m.path.prefixes[n - 2], O_PATH | O_DIRECTORY, resolve)
        };
        if parent < 0 {
            return -1;
        }
        let name = m.path.names[n - 1].as_ptr();
        if mkdirat(parent, name, m.mode) != 0 && *__errno_location() != EEXIST {
            close(parent);
            return -1;
        }
        let fd = openat(
            parent,
            name,
            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
        );
        close(parent);
        if fd < 0 {
            return -1;
        }
        let mut ret = fchmod(fd, m.mode);
        if ret == 0 {
            if let Some((u, g)) = m.owner {
                ret = fchown(fd, u, g);
            }
        }
        close(fd);
        ret
    }
}

/// Remounts the bind mount at `target` read-only, keeping the per-mount flags it has
/// (nosuid, nodev, noexec, atime): MS_REMOUNT replaces them all.
///
/// # Safety
/// Only syscalls on `target`, a NUL-terminated path.
unsafe fn remount_readonly(target: *const libc::c_char) -> c_int {
    use libc::*;
    // SAFETY: statvfs writes into a zeroed struct we own; mount takes plain arguments.
    unsafe {
        // glibc's statvfs takes the flags from statfs(2)'s f_flags (ST_VALID): a syscall,
        // no allocation.
        let mut st: statvfs = std::mem::zeroed();
        if statvfs(target, &mut st) != 0 {
            return -1;
        }
        let f = st.f_flag as c_ulong;
        let mut keep = 0;
        for (st_flag, ms_flag) in [
            (ST_NOSUID, MS_NOSUID),
            (ST_NODEV, MS_NODEV),
            (ST_NOEXEC, MS_NOEXEC),
            (ST_NOATIME, MS_NOATIME),
            (ST_NODIRATIME, MS_NODIRATIME),
            (ST_RELATIME, MS_RELATIME),
        ] {
            if f & st_flag != 0 {
                keep |= ms_flag;
            }
        }
        mount(
            std::ptr::null(),
            target,
            std::ptr::null(),
            MS_REMOUNT | MS_BIND | MS_RDONLY | keep,
            std::ptr::null(),
        )
    }
}

/// Makes a mount point and its missing parents in the fresh /dev tmpfs: a directory,
/// or an empty file. Allocation-free (parents are cut in a stack buffer). Returns 0 or
/// -1 with errno set.
///
/// # Safety
/// Only syscalls on `path`; callable between clone and exec.
unsafe fn make_target(path: &CString, dir: bool) -> c_int {
    // SAFETY: access(2) on a NUL-terminated path we own.
    if unsafe { libc::access(path.as_ptr(), libc::F_OK) } == 0 {
        return 0;
    }
    let bytes = path.as_bytes();
    let mut buf = [0u8; 4096];
    if bytes.len() >= buf.len() {
        // SAFETY: setting errno for the caller's report.
        unsafe { *libc::__errno_location() = libc::ENAMETOOLONG };
        return -1;
    }
    buf[..bytes.len()].copy_from_slice(bytes);
    for i in 1..bytes.len() {
        if bytes[i] == b'/' {
            buf[i] = 0;
            // SAFETY: `buf` is NUL-terminated at `i`; EEXIST is the common answer.
            let ret = unsafe { libc::mkdir(buf.as_ptr().cast(), 0o755) };
            // SAFETY: reading errno right after the call.
            if ret != 0 && unsafe { *libc::__errno_location() } != libc::EEXIST {
                return -1;
            }
            buf[i] = b'/';
        }
    }
    // SAFETY: syscalls on a NUL-terminated path we own.
    unsafe {
        if dir {
            if libc::mkdir(path.as_ptr(), 0o755) != 0 && *libc::__errno_location() != libc::EEXIST {
                return -1;
            }
        } else {
            let fd = libc::open(
                path.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
                0o644,
            );
            if fd < 0 {
                return -1;
            }
            libc::close(fd);
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_beneath_the_root_are_cut_into_components_and_refuse_dotdot() {
        let b = Beneath::new(Path::new("/var/run/app.sock")).unwrap();
        let prefixes: Vec<&str> = b.prefixes.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(prefixes, ["var", "var/run", "var/run/app.sock"]);
        let names: Vec<&str> = b.names.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(names, ["var", "run", "app.sock"]);
        assert!(Beneath::new(Path::new("/run/../etc")).is_err());
        assert!(Beneath::new(Path::new("/")).is_err());
    }

    #[test]
    fn fd_paths_are_formatted_without_allocating() {
        for (fd, text) in [
            (0, "/proc/self/fd/0"),
            (7, "/proc/self/fd/7"),
            (1234, "/proc/self/fd/1234"),
        ] {
            let p = FdPath::new(fd);
            // SAFETY: FdPath is NUL-terminated (its buffer is zeroed past the digits).
            let s = unsafe { CStr::from_ptr(p.as_ptr()) };
            assert_eq!(s.to_str().unwrap(), text);
        }
    }
}
