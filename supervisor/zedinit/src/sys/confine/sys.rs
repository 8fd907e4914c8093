//! The syscalls the confinement steps make, behind [`Sys`] (youki's `Syscall` seam):
//! [`LinuxSys`] makes them, and under `cfg(test)` `RecordingSys` records them, so the
//! order and arguments of every step are checked without root.
//!
//! The steps run in a cloned child of zedinit, between clone and exec, where malloc's
//! locks may be held by zedinit's log-writer thread: so the steps are generic over
//! `S: Sys` (static dispatch, no `Box`), [`LinuxSys`] is zero-sized, and no method
//! allocates. Each method is the one syscall it names, with its errno as `Err`; this
//! file holds every `unsafe` block of the confinement, one per syscall.

use crate::sys::launch::raw;
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
pub struct LinuxSys;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A `-1 and errno` return as a [`SysResult`].
fn check(ret: c_int) -> SysResult<()> {
    if ret < 0 { Err(errno()) } else { Ok(()) }
}

fn check_fd(ret: c_int) -> SysResult<c_int> {
    if ret < 0 { Err(errno()) } else { Ok(ret) }
}

fn ptr_or_null(s: Option<&CStr>) -> *const libc::c_char {
    s.map_or(std::ptr::null(), CStr::as_ptr)
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

impl Sys for LinuxSys {
    fn unshare(&self, flags: c_int) -> SysResult<()> {
        // SAFETY: unshare(2) takes a flag word only.
        check(unsafe { libc::unshare(flags) })
    }

    fn setns(&self, fd: c_int, nstype: c_int) -> SysResult<()> {
        // SAFETY: setns(2) takes an fd and a flag word; a stale fd is an EBADF.
        check(unsafe { libc::setns(fd, nstype) })
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
            libc::mount(
                ptr_or_null(src),
                target.as_ptr(),
                ptr_or_null(fstype),
                flags,
                ptr_or_null(data).cast(),
            )
        })
    }

    fn umount2(&self, target: &CStr, flags: c_int) -> SysResult<()> {
        // SAFETY: a NUL-terminated path borrowed for the call.
        check(unsafe { libc::umount2(target.as_ptr(), flags) })
    }

    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> SysResult<()> {
        // SAFETY: two NUL-terminated paths borrowed for the call (glibc has no wrapper).
        check(
            unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) }
                as c_int,
        )
    }

    fn statvfs(&self, path: &CStr) -> SysResult<c_ulong> {
        // SAFETY: statvfs is plain data; zeroed is a valid value to be overwritten.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a NUL-terminated path and a struct we own, written by the call. glibc
        // takes the flags from statfs(2)'s f_flags (ST_VALID since Linux 2.6.36): one
        // syscall, no allocation.
        check(unsafe { libc::statvfs(path.as_ptr(), &mut st) })?;
        Ok(st.f_flag)
    }

    fn open(&self, path: &CStr, flags: c_int, mode: u32) -> SysResult<c_int> {
        // SAFETY: a NUL-terminated path borrowed for the call.
        check_fd(unsafe { libc::open(path.as_ptr(), flags, mode) })
    }

    fn openat(&self, dir: c_int, path: &CStr, flags: c_int, mode: u32) -> SysResult<c_int> {
        // SAFETY: a NUL-terminated path borrowed for the call.
        check_fd(unsafe { libc::openat(dir, path.as_ptr(), flags, mode) })
    }

    fn openat2(&self, dir: c_int, path: &CStr, flags: c_int, resolve: u64) -> SysResult<c_int> {
        // SAFETY: open_how is plain data; zeroed is its documented default.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = flags as u64;
        how.resolve = resolve;
        // SAFETY: openat2 reads `how` (of the size passed) and the NUL-terminated path,
        // both borrowed for the call (glibc before 2.40 has no wrapper).
        check_fd(unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        } as c_int)
    }

    fn close(&self, fd: c_int) {
        // SAFETY: closes an fd this child opened and no one else uses (an [`Fd`]).
        unsafe { libc::close(fd) };
    }

    fn access(&self, path: &CStr) -> SysResult<()> {
        // SAFETY: a NUL-terminated path borrowed for the call.
        check(unsafe { libc::access(path.as_ptr(), libc::F_OK) })
    }

    fn mkdir(&self, path: &CStr, mode: u32) -> SysResult<()> {
        // SAFETY: a NUL-terminated path borrowed for the call.
        check(unsafe { libc::mkdir(path.as_ptr(), mode) })
    }

    fn mkdirat(&self, dir: c_int, name: &CStr, mode: u32) -> SysResult<()> {
        // SAFETY: a NUL-terminated name borrowed for the call.
        check(unsafe { libc::mkdirat(dir, name.as_ptr(), mode) })
    }

    fn symlink(&self, target: &CStr, link: &CStr) -> SysResult<()> {
        // SAFETY: two NUL-terminated paths borrowed for the call.
        check(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) })
    }

    fn fchmod(&self, fd: c_int, mode: u32) -> SysResult<()> {
        // SAFETY: integer arguments only.
        check(unsafe { libc::fchmod(fd, mode) })
    }

    fn fchown(&self, fd: c_int, uid: u32, gid: u32) -> SysResult<()> {
        // SAFETY: integer arguments only.
        check(unsafe { libc::fchown(fd, uid, gid) })
    }

    fn write(&self, fd: c_int, data: &[u8]) -> SysResult<usize> {
        // SAFETY: reads `data.len()` bytes of a slice borrowed for the call.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        usize::try_from(n).map_err(|_| errno())
    }

    fn chdir(&self, path: &CStr) -> SysResult<()> {
        // SAFETY: a NUL-terminated path borrowed for the call.
        check(unsafe { libc::chdir(path.as_ptr()) })
    }

    fn setrlimit(&self, resource: c_int, limit: &libc::rlimit) -> SysResult<()> {
        // SAFETY: reads the rlimit borrowed for the call.
        check(unsafe { libc::setrlimit(resource as libc::__rlimit_resource_t, limit) })
    }

    fn prctl(&self, option: c_int, arg2: c_ulong, arg3: c_ulong) -> SysResult<()> {
        // SAFETY: the options used here take integers only (PR_CAPBSET_DROP,
        // PR_SET_KEEPCAPS, PR_CAP_AMBIENT, PR_SET_NO_NEW_PRIVS); unused arguments are 0.
        check(unsafe { libc::prctl(option, arg2, arg3, 0 as c_ulong, 0 as c_ulong) })
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
        // owned by this frame (glibc has no wrapper).
        check(
            unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) }
                as c_int,
        )
    }

    fn setgroups(&self, groups: &[libc::gid_t]) -> SysResult<()> {
        // Raw syscalls, not glibc's wrappers, which hang in a cloned child (launch::raw).
        // SAFETY: the slice's pointer and length, borrowed for the call.
        check(unsafe { raw::setgroups(groups.len(), groups.as_ptr()) })
    }

    fn setresgid(&self, r: u32, e: u32, s: u32) -> SysResult<()> {
        // SAFETY: integer arguments only; the raw syscall, as for setgroups.
        check(unsafe { raw::setresgid(r, e, s) })
    }

    fn setresuid(&self, r: u32, e: u32, s: u32) -> SysResult<()> {
        // SAFETY: integer arguments only; the raw syscall, as for setgroups.
        check(unsafe { raw::setresuid(r, e, s) })
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
