//! The syscalls the confinement steps make, behind [`Sys`] (youki's `Syscall` seam):
//! [`LinuxSys`] makes them, and under `cfg(test)` `RecordingSys` records them, so the
//! order and arguments of every step are checked without root.
//!
//! The steps run in a cloned child of zedinit, between clone and exec, where malloc's
//! locks may be held by zedinit's log-writer thread: so the steps are generic over
//! `S: Sys` (static dispatch, no `Box`), [`LinuxSys`] is zero-sized, and no method
//! allocates. Each method is the one syscall it names, with its errno as `Err`; this
//! file holds every `unsafe` block of the confinement, one per syscall.

use crate::sys::raw;
use std::ffi::{CStr, c_int, c_ulong};

/// A syscall's result: `Err` holds its errno.
pub type SysResult<T> = Result<T, i32>;

/// A process's capability sets as capset(2) takes them (bit `n` is capability `n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

/// The syscalls of the confinement steps. Paths are NUL-terminated; flags are the
/// kernel's, passed through unchanged.
pub trait Sys {
    fn unshare(&self, flags: c_int) -> SysResult<()>;
    fn setns(&self, fd: c_int, nstype: c_int) -> SysResult<()>;
    fn mount(
        &self,
        src: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: c_ulong,
        data: Option<&CStr>,
    ) -> SysResult<()>;
    fn umount2(&self, target: &CStr, flags: c_int) -> SysResult<()>;
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> SysResult<()>;
    /// The mount flags of the filesystem at `path` (statvfs(3) `f_flag`, `ST_*`).
    fn statvfs(&self, path: &CStr) -> SysResult<c_ulong>;
    fn open(&self, path: &CStr, flags: c_int, mode: u32) -> SysResult<c_int>;
    fn openat(&self, dir: c_int, path: &CStr, flags: c_int, mode: u32) -> SysResult<c_int>;
    /// openat2(2): `resolve` is a set of `RESOLVE_*` flags.
    fn openat2(&self, dir: c_int, path: &CStr, flags: c_int, resolve: u64) -> SysResult<c_int>;
    fn close(&self, fd: c_int);
    fn access(&self, path: &CStr) -> SysResult<()>;
    fn mkdir(&self, path: &CStr, mode: u32) -> SysResult<()>;
    fn mkdirat(&self, dir: c_int, name: &CStr, mode: u32) -> SysResult<()>;
    fn symlink(&self, target: &CStr, link: &CStr) -> SysResult<()>;
    fn fchmod(&self, fd: c_int, mode: u32) -> SysResult<()>;
    fn fchown(&self, fd: c_int, uid: u32, gid: u32) -> SysResult<()>;
    fn write(&self, fd: c_int, data: &[u8]) -> SysResult<usize>;
    fn chdir(&self, path: &CStr) -> SysResult<()>;
    fn setrlimit(&self, resource: c_int, limit: &libc::rlimit) -> SysResult<()>;
    fn prctl(&self, option: c_int, arg2: c_ulong, arg3: c_ulong) -> SysResult<()>;
    fn capset(&self, sets: CapSets) -> SysResult<()>;
    fn setgroups(&self, groups: &[libc::gid_t]) -> SysResult<()>;
    fn setresgid(&self, r: u32, e: u32, s: u32) -> SysResult<()>;
    fn setresuid(&self, r: u32, e: u32, s: u32) -> SysResult<()>;
}

/// An fd a step opened, closed when the step is done with it (on every path, so the
/// recording fake can check that no fd outlives its step).
pub struct Fd<'s, S: Sys> {
    sys: &'s S,
    raw: c_int,
}

impl<'s, S: Sys> Fd<'s, S> {
    pub fn new(sys: &'s S, raw: c_int) -> Self {
        Fd { sys, raw }
    }

    pub fn raw(&self) -> c_int {
        self.raw
    }
}

impl<S: Sys> Drop for Fd<'_, S> {
    fn drop(&mut self) {
        self.sys.close(self.raw);
    }
}

/// The real syscalls. Zero-sized: the child holds nothing but what the plan holds.
///
/// Each goes straight to the kernel ([`raw`]): the child may run in zedinit's address
/// space (`CLONE_VM`), where glibc's `errno` is zedinit's, so nothing here writes it.
pub struct LinuxSys;

fn check(ret: raw::Ret) -> SysResult<()> {
    raw::unit(ret)
}

fn check_fd(ret: raw::Ret) -> SysResult<c_int> {
    ret.map(|fd| fd as c_int)
}

fn ptr_or_null(s: Option<&CStr>) -> usize {
    s.map_or(0, |s| s.as_ptr() as usize)
}

fn ptr(s: &CStr) -> usize {
    s.as_ptr() as usize
}

/// `AT_FDCWD` as a syscall argument (sign-extended, as the kernel reads an int).
const CWD: usize = libc::AT_FDCWD as isize as usize;

/// An fd as a syscall argument.
fn fd_arg(fd: c_int) -> usize {
    fd as isize as usize
}

/// capset(2)'s header (`struct __user_cap_header_struct`).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

/// capset(2)'s data, one per 32 capabilities (`struct __user_cap_data_struct`).
#[repr(C)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: two [`CapData`], 64 capabilities.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// The kernel's `struct statfs` (asm-generic/statfs.h: words are `long`): libc's type
/// hides `f_flags` in its padding.
#[repr(C)]
#[derive(Default)]
struct KernelStatfs {
    f_type: libc::c_long,
    f_bsize: libc::c_long,
    f_blocks: libc::c_long,
    f_bfree: libc::c_long,
    f_bavail: libc::c_long,
    f_files: libc::c_long,
    f_ffree: libc::c_long,
    f_fsid: [i32; 2],
    f_namelen: libc::c_long,
    f_frsize: libc::c_long,
    f_flags: libc::c_long,
    f_spare: [libc::c_long; 4],
}

/// statfs(2) sets it in `f_flags` when the mount flags there are valid (Linux 2.6.36+);
/// glibc's statvfs takes `f_flag` from there the same way.
const ST_VALID: c_ulong = 0x20;

impl Sys for LinuxSys {
    fn unshare(&self, flags: c_int) -> SysResult<()> {
        // SAFETY: unshare(2) takes a flag word only.
        check(unsafe { raw::call(libc::SYS_unshare, &[flags as usize]) })
    }

    fn setns(&self, fd: c_int, nstype: c_int) -> SysResult<()> {
        // SAFETY: setns(2) takes an fd and a flag word; a stale fd is an EBADF.
        check(unsafe { raw::call(libc::SYS_setns, &[fd_arg(fd), nstype as usize]) })
    }

    fn mount(
        &self,
        src: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: c_ulong,
        data: Option<&CStr>,
    ) -> SysResult<()> {
        // SAFETY: every pointer is a NUL-terminated string borrowed for the call, or null
        // where mount(2) allows it (source and type of a bind or remount, no data).
        check(unsafe {
            raw::call(
                libc::SYS_mount,
                &[
                    ptr_or_null(src),
                    ptr(target),
                    ptr_or_null(fstype),
                    flags as usize,
                    ptr_or_null(data),
                ],
            )
        })
    }

    fn umount2(&self, target: &CStr, flags: c_int) -> SysResult<()> {
        // SAFETY: a NUL-terminated path borrowed for the call.
        check(unsafe { raw::call(libc::SYS_umount2, &[ptr(target), flags as usize]) })
    }

    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> SysResult<()> {
        // SAFETY: two NUL-terminated paths borrowed for the call.
        check(unsafe { raw::call(libc::SYS_pivot_root, &[ptr(new_root), ptr(put_old)]) })
    }

    fn statvfs(&self, path: &CStr) -> SysResult<c_ulong> {
        let mut st = KernelStatfs::default();
        // SAFETY: a NUL-terminated path and a struct we own, of the kernel's layout,
        // written by the call.
        check(unsafe {
            raw::call(
                libc::SYS_statfs,
                &[ptr(path), &mut st as *mut KernelStatfs as usize],
            )
        })?;
        let flags = st.f_flags as c_ulong;
        if flags & ST_VALID == 0 {
            // Before 2.6.36: no flags to keep; say so rather than drop them silently.
            return Err(libc::ENOSYS);
        }
        Ok(flags & !ST_VALID)
    }

    fn open(&self, path: &CStr, flags: c_int, mode: u32) -> SysResult<c_int> {
        self.openat(libc::AT_FDCWD, path, flags, mode)
    }

    fn openat(&self, dir: c_int, path: &CStr, flags: c_int, mode: u32) -> SysResult<c_int> {
        // SAFETY: a NUL-terminated path borrowed for the call.
        check_fd(unsafe {
            raw::call(
                libc::SYS_openat,
                &[fd_arg(dir), ptr(path), flags as usize, mode as usize],
            )
        })
    }

    fn openat2(&self, dir: c_int, path: &CStr, flags: c_int, resolve: u64) -> SysResult<c_int> {
        // SAFETY: open_how is plain data; zeroed is its documented default.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = flags as u64;
        how.resolve = resolve;
        // SAFETY: openat2 reads `how` (of the size passed) and the NUL-terminated path,
        // both borrowed for the call.
        check_fd(unsafe {
            raw::call(
                libc::SYS_openat2,
                &[
                    fd_arg(dir),
                    ptr(path),
                    &how as *const libc::open_how as usize,
                    std::mem::size_of::<libc::open_how>(),
                ],
            )
        })
    }

    fn close(&self, fd: c_int) {
        // SAFETY: closes an fd this child opened and no one else uses (an [`Fd`]).
        let _ = unsafe { raw::call(libc::SYS_close, &[fd_arg(fd)]) };
    }

    fn access(&self, path: &CStr) -> SysResult<()> {
        // SAFETY: a NUL-terminated path borrowed for the call.
        check(unsafe { raw::call(libc::SYS_faccessat, &[CWD, ptr(path), libc::F_OK as usize]) })
    }

    fn mkdir(&self, path: &CStr, mode: u32) -> SysResult<()> {
        self.mkdirat(libc::AT_FDCWD, path, mode)
    }

    fn mkdirat(&self, dir: c_int, name: &CStr, mode: u32) -> SysResult<()> {
        // SAFETY: a NUL-terminated name borrowed for the call.
        check(unsafe { raw::call(libc::SYS_mkdirat, &[fd_arg(dir), ptr(name), mode as usize]) })
    }

    fn symlink(&self, target: &CStr, link: &CStr) -> SysResult<()> {
        // SAFETY: two NUL-terminated paths borrowed for the call.
        check(unsafe { raw::call(libc::SYS_symlinkat, &[ptr(target), CWD, ptr(link)]) })
    }

    fn fchmod(&self, fd: c_int, mode: u32) -> SysResult<()> {
        // SAFETY: integer arguments only.
        check(unsafe { raw::call(libc::SYS_fchmod, &[fd_arg(fd), mode as usize]) })
    }

    fn fchown(&self, fd: c_int, uid: u32, gid: u32) -> SysResult<()> {
        // SAFETY: integer arguments only.
        check(unsafe { raw::call(libc::SYS_fchown, &[fd_arg(fd), uid as usize, gid as usize]) })
    }

    fn write(&self, fd: c_int, data: &[u8]) -> SysResult<usize> {
        // SAFETY: reads `data.len()` bytes of a slice borrowed for the call.
        unsafe {
            raw::call(
                libc::SYS_write,
                &[fd_arg(fd), data.as_ptr() as usize, data.len()],
            )
        }
    }

    fn chdir(&self, path: &CStr) -> SysResult<()> {
        // SAFETY: a NUL-terminated path borrowed for the call.
        check(unsafe { raw::call(libc::SYS_chdir, &[ptr(path)]) })
    }

    fn setrlimit(&self, resource: c_int, limit: &libc::rlimit) -> SysResult<()> {
        // prlimit64 on the caller (pid 0), with `struct rlimit64` (two u64) built here.
        // `rlim_t` is u64 on 64-bit targets only: the casts are for the others.
        #[allow(clippy::unnecessary_cast)]
        let limit64 = [limit.rlim_cur as u64, limit.rlim_max as u64];
        // SAFETY: reads the two limits borrowed for the call; no old limits written.
        check(unsafe {
            raw::call(
                libc::SYS_prlimit64,
                &[0, resource as usize, limit64.as_ptr() as usize, 0],
            )
        })
    }

    fn prctl(&self, option: c_int, arg2: c_ulong, arg3: c_ulong) -> SysResult<()> {
        // SAFETY: the options used here take integers only (PR_CAPBSET_DROP,
        // PR_SET_KEEPCAPS, PR_CAP_AMBIENT, PR_SET_NO_NEW_PRIVS); unused arguments are 0.
        check(unsafe {
            raw::call(
                libc::SYS_prctl,
                &[option as usize, arg2 as usize, arg3 as usize, 0, 0],
            )
        })
    }

    fn capset(&self, sets: CapSets) -> SysResult<()> {
        let header = CapHeader {
            version: CAPABILITY_VERSION_3,
            pid: 0,
        };
        let half = |shift: u32| CapData {
            effective: (sets.effective >> shift) as u32,
            permitted: (sets.permitted >> shift) as u32,
            inheritable: (sets.inheritable >> shift) as u32,
        };
        let data = [half(0), half(32)];
        // SAFETY: the kernel reads the header and, for version 3, two data structs, all
        // owned by this frame.
        check(unsafe {
            raw::call(
                libc::SYS_capset,
                &[&header as *const CapHeader as usize, data.as_ptr() as usize],
            )
        })
    }

    fn setgroups(&self, groups: &[libc::gid_t]) -> SysResult<()> {
        // Not glibc's wrapper: it signals every thread glibc knows of (zedinit's, which
        // a cloned child does not have) and waits for each, forever.
        // SAFETY: the slice's pointer and length, borrowed for the call.
        check(unsafe {
            raw::call(
                libc::SYS_setgroups,
                &[groups.len(), groups.as_ptr() as usize],
            )
        })
    }

    fn setresgid(&self, r: u32, e: u32, s: u32) -> SysResult<()> {
        // SAFETY: integer arguments only; the raw syscall, as for setgroups.
        check(unsafe { raw::call(libc::SYS_setresgid, &[r as usize, e as usize, s as usize]) })
    }

    fn setresuid(&self, r: u32, e: u32, s: u32) -> SysResult<()> {
        // SAFETY: integer arguments only; the raw syscall, as for setgroups.
        check(unsafe { raw::call(libc::SYS_setresuid, &[r as usize, e as usize, s as usize]) })
    }
}

#[cfg(test)]
pub use recording::{Call, RecordingSys};

#[cfg(test)]
mod recording {
    use super::{CapSets, Sys, SysResult};
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeSet;
    use std::ffi::{CStr, c_int, c_ulong};

    /// One syscall with its arguments, as [`RecordingSys`] saw it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Call {
        Unshare(c_int),
        Setns {
            fd: c_int,
            nstype: c_int,
        },
        Mount {
            src: Option<String>,
            target: String,
            fstype: Option<String>,
            flags: c_ulong,
            data: Option<String>,
        },
        Umount2 {
            target: String,
            flags: c_int,
        },
        PivotRoot {
            new_root: String,
            put_old: String,
        },
        Statvfs(String),
        Open {
            path: String,
            flags: c_int,
            mode: u32,
        },
        Openat {
            dir: c_int,
            path: String,
            flags: c_int,
            mode: u32,
        },
        Openat2 {
            dir: c_int,
            path: String,
            flags: c_int,
            resolve: u64,
        },
        Close(c_int),
        Access(String),
        Mkdir {
            path: String,
            mode: u32,
        },
        Mkdirat {
            dir: c_int,
            name: String,
            mode: u32,
        },
        Symlink {
            target: String,
            link: String,
        },
        Fchmod {
            fd: c_int,
            mode: u32,
        },
        Fchown {
            fd: c_int,
            uid: u32,
            gid: u32,
        },
        Write {
            fd: c_int,
            data: Vec<u8>,
        },
        Chdir(String),
        Setrlimit {
            resource: c_int,
            soft: u64,
            hard: u64,
        },
        Prctl {
            option: c_int,
            arg2: c_ulong,
            arg3: c_ulong,
        },
        Capset(CapSets),
        Setgroups(Vec<u32>),
        Setresgid(u32, u32, u32),
        Setresuid(u32, u32, u32),
    }

    impl Call {
        /// Whether this call opens an fd (its result is one).
        pub fn opens(&self) -> bool {
            matches!(
                self,
                Call::Open { .. } | Call::Openat { .. } | Call::Openat2 { .. }
            )
        }
    }

    /// When a call is made to fail.
    enum Trigger {
        /// The call with this index (0: the first call).
        Nth(usize),
        /// The first call this matches.
        When(Box<dyn Fn(&Call) -> bool>),
    }

    /// Records every call; succeeds unless told to fail (each failure fires once).
    /// Opened fds are numbered from 100; statvfs answers the flags given to
    /// [`RecordingSys::mount_flags`].
    pub struct RecordingSys {
        calls: RefCell<Vec<Call>>,
        failures: RefCell<Vec<(Trigger, i32)>>,
        next_fd: Cell<c_int>,
        open_fds: RefCell<BTreeSet<c_int>>,
        statvfs_flags: Cell<c_ulong>,
    }

    fn text(s: &CStr) -> String {
        s.to_string_lossy().into_owned()
    }

    impl RecordingSys {
        pub fn new() -> Self {
            RecordingSys {
                calls: RefCell::new(Vec::new()),
                failures: RefCell::new(Vec::new()),
                next_fd: Cell::new(100),
                open_fds: RefCell::new(BTreeSet::new()),
                statvfs_flags: Cell::new(0),
            }
        }

        /// Fails the `n`th call (0: the first) with `errno`.
        pub fn fail_at(self, n: usize, errno: i32) -> Self {
            self.failures.borrow_mut().push((Trigger::Nth(n), errno));
            self
        }

        /// Fails the first call `matches` picks with `errno`.
        pub fn fail_when(self, matches: impl Fn(&Call) -> bool + 'static, errno: i32) -> Self {
            self.failures
                .borrow_mut()
                .push((Trigger::When(Box::new(matches)), errno));
            self
        }

        /// What statvfs answers (`ST_*` flags) for every path.
        pub fn mount_flags(self, flags: c_ulong) -> Self {
            self.statvfs_flags.set(flags);
            self
        }

        pub fn calls(&self) -> Vec<Call> {
            self.calls.borrow().clone()
        }

        /// Fds opened and not closed.
        pub fn open_fds(&self) -> Vec<c_int> {
            self.open_fds.borrow().iter().copied().collect()
        }

        /// Records `call`; its errno if a failure fires on it.
        fn record(&self, call: Call) -> SysResult<()> {
            let index = self.calls.borrow().len();
            let mut failures = self.failures.borrow_mut();
            let fired = failures.iter().position(|(trigger, _)| match trigger {
                Trigger::Nth(n) => *n == index,
                Trigger::When(matches) => matches(&call),
            });
            self.calls.borrow_mut().push(call);
            match fired {
                Some(i) => Err(failures.remove(i).1),
                None => Ok(()),
            }
        }

        fn record_fd(&self, call: Call) -> SysResult<c_int> {
            self.record(call)?;
            let fd = self.next_fd.get();
            self.next_fd.set(fd + 1);
            self.open_fds.borrow_mut().insert(fd);
            Ok(fd)
        }
    }

    impl Sys for RecordingSys {
        fn unshare(&self, flags: c_int) -> SysResult<()> {
            self.record(Call::Unshare(flags))
        }

        fn setns(&self, fd: c_int, nstype: c_int) -> SysResult<()> {
            self.record(Call::Setns { fd, nstype })
        }

        fn mount(
            &self,
            src: Option<&CStr>,
            target: &CStr,
            fstype: Option<&CStr>,
            flags: c_ulong,
            data: Option<&CStr>,
        ) -> SysResult<()> {
            self.record(Call::Mount {
                src: src.map(text),
                target: text(target),
                fstype: fstype.map(text),
                flags,
                data: data.map(text),
            })
        }

        fn umount2(&self, target: &CStr, flags: c_int) -> SysResult<()> {
            self.record(Call::Umount2 {
                target: text(target),
                flags,
            })
        }

        fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> SysResult<()> {
            self.record(Call::PivotRoot {
                new_root: text(new_root),
                put_old: text(put_old),
            })
        }

        fn statvfs(&self, path: &CStr) -> SysResult<c_ulong> {
            self.record(Call::Statvfs(text(path)))?;
            Ok(self.statvfs_flags.get())
        }

        fn open(&self, path: &CStr, flags: c_int, mode: u32) -> SysResult<c_int> {
            self.record_fd(Call::Open {
                path: text(path),
                flags,
                mode,
            })
        }

        fn openat(&self, dir: c_int, path: &CStr, flags: c_int, mode: u32) -> SysResult<c_int> {
            self.record_fd(Call::Openat {
                dir,
                path: text(path),
                flags,
                mode,
            })
        }

        fn openat2(&self, dir: c_int, path: &CStr, flags: c_int, resolve: u64) -> SysResult<c_int> {
            self.record_fd(Call::Openat2 {
                dir,
                path: text(path),
                flags,
                resolve,
            })
        }

        fn close(&self, fd: c_int) {
            let _ = self.record(Call::Close(fd));
            self.open_fds.borrow_mut().remove(&fd);
        }

        fn access(&self, path: &CStr) -> SysResult<()> {
            self.record(Call::Access(text(path)))
        }

        fn mkdir(&self, path: &CStr, mode: u32) -> SysResult<()> {
            self.record(Call::Mkdir {
                path: text(path),
                mode,
            })
        }

        fn mkdirat(&self, dir: c_int, name: &CStr, mode: u32) -> SysResult<()> {
            self.record(Call::Mkdirat {
                dir,
                name: text(name),
                mode,
            })
        }

        fn symlink(&self, target: &CStr, link: &CStr) -> SysResult<()> {
            self.record(Call::Symlink {
                target: text(target),
                link: text(link),
            })
        }

        fn fchmod(&self, fd: c_int, mode: u32) -> SysResult<()> {
            self.record(Call::Fchmod { fd, mode })
        }

        fn fchown(&self, fd: c_int, uid: u32, gid: u32) -> SysResult<()> {
            self.record(Call::Fchown { fd, uid, gid })
        }

        fn write(&self, fd: c_int, data: &[u8]) -> SysResult<usize> {
            self.record(Call::Write {
                fd,
                data: data.to_vec(),
            })?;
            Ok(data.len())
        }

        fn chdir(&self, path: &CStr) -> SysResult<()> {
            self.record(Call::Chdir(text(path)))
        }

        fn setrlimit(&self, resource: c_int, limit: &libc::rlimit) -> SysResult<()> {
            self.record(Call::Setrlimit {
                resource,
                soft: limit.rlim_cur,
                hard: limit.rlim_max,
            })
        }

        fn prctl(&self, option: c_int, arg2: c_ulong, arg3: c_ulong) -> SysResult<()> {
            self.record(Call::Prctl { option, arg2, arg3 })
        }

        fn capset(&self, sets: CapSets) -> SysResult<()> {
            self.record(Call::Capset(sets))
        }

        fn setgroups(&self, groups: &[libc::gid_t]) -> SysResult<()> {
            self.record(Call::Setgroups(groups.to_vec()))
        }

        fn setresgid(&self, r: u32, e: u32, s: u32) -> SysResult<()> {
            self.record(Call::Setresgid(r, e, s))
        }

        fn setresuid(&self, r: u32, e: u32, s: u32) -> SysResult<()> {
            self.record(Call::Setresuid(r, e, s))
        }
    }
}
