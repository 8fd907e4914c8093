//! Fork and go: starting a child without waiting for it to exec.
//!
//! `std::process::Command` blocks its caller until the child has exec'd (it reads a
//! CLOEXEC pipe to report exec errors): under load PID 1 paid a scheduling delay per
//! service, and a child hung before exec (a mount on a dead disk) would hang PID 1.
//! Here the parent returns right after clone(2) with the read end of a CLOEXEC pipe;
//! the child writes a [`REPORT_LEN`]-byte report to it only if something fails, so the
//! event loop sees either end-of-file (exec succeeded) or the failed step and errno.
//!
//! Everything the child needs is allocated before clone: the child only makes syscalls
//! (zedinit has a log-writer thread, so malloc's locks may be held at clone time).
//! Raw syscalls, not glibc's wrappers, where a wrapper does more: see [`raw`].

use crate::sys::confine::{Join, Plan, SpawnError, Step};
use std::ffi::{CString, c_char, c_int};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Bytes of a failure report: the step (`Step as u8`) and the errno (i32, native order).
pub const REPORT_LEN: usize = 5;

/// How the child gets its confinement.
pub enum Confinement {
    /// Runs as zedinit does (a service without `[run]`).
    None,
    /// Its own root, namespaces and credentials (`[run]`).
    Own(Box<Plan>),
    /// Enters a running service's namespaces with its credentials (readiness probes).
    Join(Box<Join>),
}

/// A child to start, resolved before clone.
pub struct Launch {
    /// Paths to try in order (a bare program name is searched in the service PATH).
    programs: Vec<CString>,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const c_char>,
    stdin: OwnedFd,
    /// `None`: inherit zedinit's (a console service).
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    pub confinement: Confinement,
    /// Start in a new pid namespace (`[run] pid = "new"`): the child is its PID 1.
    pub new_pid_ns: bool,
    /// The service's cgroup directory: the child is cloned into it (clone3
    /// CLONE_INTO_CGROUP), or, on kernels without that, moves itself in.
    pub cgroup: Option<OwnedFd>,
    /// zedinit's real uid is not 0 (its signal shield): give the child uid 0 back.
    reset_uid: bool,
    /// Instead of exec: exit 0 if this path exists (in the child's namespaces), else 1.
    check_file: Option<CString>,
}

fn cstring(s: &str, what: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} holds a NUL byte: {s:?}"))
}

fn pointers(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

impl Launch {
    /// `argv[0]` is searched in `path` unless it holds a `/` (as execvp(3) does, but with
    /// the service's PATH, not zedinit's). `env`: the child's whole environment.
    pub fn new(argv: &[String], env: &[(String, String)], path: &str) -> Result<Self, String> {
        let program = argv.first().ok_or("empty command")?;
        let programs = if program.contains('/') {
            vec![cstring(program, "command")?]
        } else {
            path.split(':')
                .filter(|d| !d.is_empty())
                .map(|d| cstring(&format!("{d}/{program}"), "command"))
                .collect::<Result<_, _>>()?
        };
        let argv = argv
            .iter()
            .map(|a| cstring(a, "command"))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = env
            .iter()
            .map(|(k, v)| cstring(&format!("{k}={v}"), "env"))
            .collect::<Result<Vec<_>, _>>()?;
        let stdin = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
        Ok(Launch {
            programs,
            argv_ptrs: pointers(&argv),
            _argv: argv,
            envp_ptrs: pointers(&envp),
            _envp: envp,
            stdin: stdin.into(),
            stdout: None,
            stderr: None,
            confinement: Confinement::None,
            new_pid_ns: false,
            cgroup: None,
            // SAFETY: getuid/geteuid only read the caller's credentials.
            reset_uid: unsafe { libc::getuid() != 0 && libc::geteuid() == 0 },
            check_file: None,
        })
    }

    /// Makes the child a `file` readiness check: after its confinement it exits 0 if
    /// `path` exists, 1 if not, and execs nothing.
    pub fn check_file(&mut self, path: &std::path::Path) -> Result<(), String> {
        let text = path.to_str().ok_or("ready.file is not UTF-8")?;
        self.check_file = Some(cstring(text, "ready.file")?);
        Ok(())
    }

    pub fn stdout(&mut self, fd: OwnedFd) {
        self.stdout = Some(fd);
    }

    pub fn stderr(&mut self, fd: OwnedFd) {
        self.stderr = Some(fd);
    }

    /// Output nowhere (probes).
    pub fn quiet(&mut self) -> Result<(), String> {
        let null = || {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .map(OwnedFd::from)
                .map_err(|e| format!("/dev/null: {e}"))
        };
        self.stdout = Some(null()?);
        self.stderr = Some(null()?);
        Ok(())
    }

    /// Clones the child and returns at once: its pid, the report pipe's read end
    /// (non-blocking; end-of-file with no bytes means exec succeeded), and whether it is
    /// in its cgroup (a cgroup the kernel refuses to clone into is said and left out:
    /// the service runs, tracked by its process group).
    pub fn start(self) -> Result<Started, String> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(|e| format!("pipe: {e}"))?;
        // The child's end blocks (a 5-byte write to an empty pipe never waits anyway).
        nix::fcntl::fcntl(
            &write,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
        )
        .map_err(|e| format!("pipe: {e}"))?;
        let mut flags = 0u64;
        if self.new_pid_ns {
            flags |= libc::CLONE_NEWPID as u64;
        }
        // Straight into the service's cgroup: moving a process between cgroups later
        // takes a global lock that waits for an RCU grace period (milliseconds per child,
        // which start-up would pay once per service); being born there does not.
        let mut args = CloneArgs {
            flags,
            exit_signal: libc::SIGCHLD as u64,
            ..CloneArgs::default()
        };
        if let Some(fd) = &self.cgroup {
            args.flags |= CLONE_INTO_CGROUP;
            args.cgroup = fd.as_raw_fd() as u64;
        }
        let mut in_cgroup = self.cgroup.is_some();
        // SAFETY: clone3(2) without CLONE_VM and with no stack behaves as fork(2): the
        // child gets a copy of this address space and returns 0. The child runs only
        // `child_main`, which makes syscalls on memory prepared before this call and
        // never returns.
        let mut pid = unsafe { clone3(&mut args) };
        let error = std::io::Error::last_os_error().raw_os_error();
        if pid < 0 && in_cgroup && error != Some(libc::ENOSYS) && error != Some(libc::EAGAIN) {
            crate::log::warn(format_args!(
                "cannot start a child in its cgroup ({}); it runs without one",
                std::io::Error::last_os_error()
            ));
            args.flags &= !CLONE_INTO_CGROUP;
            args.cgroup = 0;
            in_cgroup = false;
            // SAFETY: as above.
            pid = unsafe { clone3(&mut args) };
        }
        let mut moves_itself = false;
        if pid < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            // Before Linux 5.7: plain clone, and the child moves itself into its cgroup.
            moves_itself = self.cgroup.is_some();
            let flags = flags | libc::SIGCHLD as u64;
            // SAFETY: as above, clone(2) without CLONE_VM or a stack is fork(2).
            pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
        }
        if pid < 0 {
            return Err(format!("clone: {}", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: in the child; see above.
            unsafe { self.child_main(write.as_raw_fd(), moves_itself) }
        }
        // The child's copies of stdio and the cgroup fd are closed as `self` drops.
        drop(write);
        Ok(Started {
            pid: pid as i32,
            report: read,
            in_cgroup,
        })
    }

    /// The child: never returns.
    ///
    /// # Safety
    /// Call only in a freshly cloned child, which then runs nothing else.
    unsafe fn child_main(&self, report: RawFd, moves_itself: bool) -> ! {
        // SAFETY: syscalls on prepared memory; see each step.
        unsafe {
            if let Err(failed) = self.child_steps(moves_itself) {
                let mut buf = [0u8; REPORT_LEN];
                buf[0] = failed.step as u8;
                buf[1..].copy_from_slice(&failed.errno.to_ne_bytes());
                libc::write(report, buf.as_ptr().cast(), REPORT_LEN);
            }
            libc::_exit(127)
        }
    }

    /// # Safety
    /// Child side only (see [`Launch::child_main`]).
    unsafe fn child_steps(&self, moves_itself: bool) -> Result<(), SpawnError> {
        let setup_failed = || SpawnError {
            step: Step::Setup,
            errno: errno(),
        };
        let setup = |ret: c_int| if ret < 0 { Err(setup_failed()) } else { Ok(()) };
        // SAFETY: plain syscalls on fds and strings owned by `self`.
        unsafe {
            // zedinit blocks the signals it reads from its signalfd and ignores SIGPIPE:
            // neither may reach the service (signal(7): masks and ignored dispositions
            // survive execve).
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            setup(libc::sigprocmask(
                libc::SIG_SETMASK,
                &empty,
                std::ptr::null_mut(),
            ))?;
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            if let (true, Some(dir)) = (moves_itself, &self.cgroup) {
                // "0" moves the writer itself (cgroup v2 `cgroup.procs`).
                let procs = libc::openat(
                    dir.as_raw_fd(),
                    c"cgroup.procs".as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                );
                setup(procs)?;
                let moved = libc::write(procs, b"0".as_ptr().cast(), 1);
                libc::close(procs);
                if moved != 1 {
                    return Err(setup_failed());
                }
            }
            // Own session and process group: stop signals go to the whole group, and a
            // terminal's job control never reaches it.
            setup(libc::setsid())?;
            setup(libc::dup2(self.stdin.as_raw_fd(), 0))?;
            if let Some(out) = &self.stdout {
                setup(libc::dup2(out.as_raw_fd(), 1))?;
            }
            if let Some(err) = &self.stderr {
                setup(libc::dup2(err.as_raw_fd(), 2))?;
            }
            if self.reset_uid {
                setup(raw::setresuid(0, 0, 0))?;
            }
            match &self.confinement {
                Confinement::None => {}
                Confinement::Own(plan) => plan.apply()?,
                Confinement::Join(join) => join.apply()?,
            }
            if let Some(path) = &self.check_file {
                libc::_exit(if libc::access(path.as_ptr(), libc::F_OK) == 0 {
                    0
                } else {
                    1
                });
            }
            // As execvp(3): ENOENT goes on to the next directory; another error is kept
            // (EACCES of one candidate beats ENOENT of the later ones).
            let mut kept = libc::ENOENT;
            for program in &self.programs {
                libc::execve(
                    program.as_ptr(),
                    self.argv_ptrs.as_ptr(),
                    self.envp_ptrs.as_ptr(),
                );
                let e = errno();
                if e != libc::ENOENT {
                    kept = e;
                }
            }
            Err(SpawnError {
                step: Step::Exec,
                errno: kept,
            })
        }
    }
}

/// A child just cloned.
pub struct Started {
    pub pid: i32,
    /// The exec report pipe's read end.
    pub report: OwnedFd,
    pub in_cgroup: bool,
}

/// clone3(2) with no stack: returns twice, like fork(2).
///
/// # Safety
/// The caller must run only async-signal-safe code in the child.
unsafe fn clone3(args: &mut CloneArgs) -> libc::c_long {
    // SAFETY: the kernel reads `args`, of the size given.
    unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    }
}

/// clone3(2)'s arguments (`struct clone_args`, the size with `cgroup`: 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// linux/sched.h: place the child in the cgroup `clone_args.cgroup` names (5.7+).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// What a child's report pipe says.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// Nothing yet: the child has not reached exec (or failed) so far.
    Pending,
    /// End of file without a report: the child exec'd.
    Execed,
    /// It failed (at a step, with an errno) and will exit 127.
    Failed(SpawnError),
}

/// Reads the report pipe without blocking.
pub fn read_report(fd: &OwnedFd) -> Report {
    let mut buf = [0u8; REPORT_LEN];
    match nix::unistd::read(fd, &mut buf) {
        Ok(0) => Report::Execed,
        Ok(n) if n == REPORT_LEN => Report::Failed(match Step::from_u8(buf[0]) {
            Some(step) => SpawnError {
                step,
                errno: i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]]),
            },
            // Cannot happen (both ends are this binary); say it failed.
            None => SpawnError {
                step: Step::Setup,
                errno: libc::EIO,
            },
        }),
        // A short report cannot happen (5 bytes to a pipe is atomic); say it failed.
        Ok(_) => Report::Failed(SpawnError {
            step: Step::Setup,
            errno: libc::EIO,
        }),
        Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => Report::Pending,
        Err(e) => Report::Failed(SpawnError {
            step: Step::Setup,
            errno: e as i32,
        }),
    }
}

/// Credential syscalls for a freshly cloned child.
///
/// glibc's `setresuid`, `setresgid` and `setgroups` apply POSIX's per-process rule:
/// they signal every other thread glibc knows of and wait for each to change too. A
/// child made by a raw clone inherits glibc's list of zedinit's threads (the log
/// writer) but not the threads, so the wrapper waits forever on a futex: the service
/// never reaches exec (seen: one start in a few dozen hung until the 30 s exec
/// deadline). The child has one thread; the kernel's calls change just that one.
pub mod raw {
    use std::ffi::c_int;

    /// setresuid(2) for the calling thread only.
    ///
    /// # Safety
    /// A syscall without pointers; callable between clone and exec.
    pub unsafe fn setresuid(r: libc::uid_t, e: libc::uid_t, s: libc::uid_t) -> c_int {
        // SAFETY: integer arguments only.
        unsafe { libc::syscall(libc::SYS_setresuid, r, e, s) as c_int }
    }

    /// setresgid(2) for the calling thread only.
    ///
    /// # Safety
    /// A syscall without pointers; callable between clone and exec.
    pub unsafe fn setresgid(r: libc::gid_t, e: libc::gid_t, s: libc::gid_t) -> c_int {
        // SAFETY: integer arguments only.
        unsafe { libc::syscall(libc::SYS_setresgid, r, e, s) as c_int }
    }

    /// setgroups(2) for the calling thread only.
    ///
    /// # Safety
    /// `groups` must point at `len` gids; callable between clone and exec.
    pub unsafe fn setgroups(len: usize, groups: *const libc::gid_t) -> c_int {
        // SAFETY: the caller vouches for the array.
        unsafe { libc::syscall(libc::SYS_setgroups, len, groups) as c_int }
    }
}
