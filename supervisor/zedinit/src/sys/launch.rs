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
//! (zedinit has a log-writer thread, so malloc's locks may be held at clone time), and
//! only raw ones ([`crate::sys::raw`]): no glibc wrapper, no `errno`.
//!
//! A service's child shares zedinit's memory (`CLONE_VM`, on x86_64) on a stack of its
//! own until its exec: cloning then copies no page tables and zedinit takes no
//! copy-on-write faults afterwards, which is most of the cost of a clone from a process
//! of zedinit's size (BENCHMARKS.md, "Start-up under load"). It is not `vfork`: zedinit
//! goes on at once. The price: what the child reads ([`Launch`], its stack) stays alive
//! until the exec report or the child's exit ([`InFlight`], kept by the executor), and
//! nothing the child does may change zedinit, which rules out one step:
//! `/proc/self/oom_score_adj` is per memory (a write sets every process sharing it), so
//! a service with `oomScoreAdj` is forked, as are readiness probes (their report is not
//! awaited, so nothing would know when their memory may go). A confined child's
//! credential change marks the shared memory non-dumpable (no core dump of zedinit: it
//! is PID 1, a crash ends the machine anyway).

use crate::sys::confine::{Join, Plan, SpawnError, Step};
use crate::sys::raw;
use std::ffi::{CString, c_char};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

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
    /// The child may run in zedinit's memory until its exec (see the module's doc): the
    /// caller keeps [`Started::in_flight`] until the exec report or the child's exit.
    pub may_share_memory: bool,
    /// The report pipe's write end, for the child (set just before clone).
    report: RawFd,
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
            may_share_memory: false,
            report: -1,
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

    /// Whether the child may run in zedinit's memory (see the module's doc).
    fn shares_memory(&self) -> bool {
        cfg!(target_arch = "x86_64")
            && self.may_share_memory
            && match &self.confinement {
                Confinement::None => true,
                Confinement::Own(plan) => !plan.sets_oom_score(),
                Confinement::Join(_) => false,
            }
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
        let mut stack = match self.shares_memory() {
            true => Some(Stack::new()?),
            false => None,
        };
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
        let mut this = Box::new(self);
        this.report = write.as_raw_fd();
        // From here on the child may read it: only through this pointer, never written
        // until the child is done with it (`InFlight`).
        let this = NonNull::from(Box::leak(this));
        // SAFETY: `this` stays allocated and unchanged until the child no longer runs
        // in this memory (kept in `InFlight`, or freed below only when forked), and so
        // does the stack.
        let mut pid = unsafe { clone_child(&mut args, this, stack.as_ref()) };
        if pid.is_err() && in_cgroup && pid != Err(libc::ENOSYS) && pid != Err(libc::EAGAIN) {
            crate::log::warn(format_args!(
                "cannot start a child in its cgroup ({}); it runs without one",
                std::io::Error::from_raw_os_error(pid.err().unwrap_or(0))
            ));
            args.flags &= !CLONE_INTO_CGROUP;
            args.cgroup = 0;
            in_cgroup = false;
            // SAFETY: as above.
            pid = unsafe { clone_child(&mut args, this, stack.as_ref()) };
        }
        let mut moves_itself = false;
        if pid == Err(libc::ENOSYS) {
            // Before Linux 5.7: plain clone (a copy of this memory), and the child moves
            // itself into its cgroup.
            stack = None;
            // SAFETY: `this` is live (see above).
            moves_itself = unsafe { this.as_ref() }.cgroup.is_some();
            let flags = flags | libc::SIGCHLD as u64;
            // SAFETY: clone(2) without CLONE_VM or a stack is fork(2): the child runs
            // `child_main` on its copy of this memory and never returns.
            pid = unsafe { raw::call(libc::SYS_clone, &[flags as usize, 0, 0, 0, 0]) }
                .map(|p| p as i32);
        }
        let in_flight = InFlight {
            launch: this,
            stack,
        };
        let pid = match pid {
            Ok(0) => {
                // SAFETY: in a forked child (a `CLONE_VM` child never returns from
                // `clone_child`): it runs nothing else.
                unsafe { in_flight.launch.as_ref().child_main(moves_itself) }
            }
            Ok(pid) => pid,
            Err(e) => {
                return Err(format!("clone: {}", std::io::Error::from_raw_os_error(e)));
            }
        };
        // The child's copies of stdio and the cgroup fd (forked: its own copies of
        // everything) are closed as the `Launch` drops; a child in this memory keeps
        // them until it is done.
        drop(write);
        let in_flight = in_flight.stack.is_some().then_some(in_flight);
        Ok(Started {
            pid,
            report: read,
            in_cgroup,
            in_flight,
        })
    }

    /// The child: never returns.
    ///
    /// # Safety
    /// Call only in a freshly cloned child, which then runs nothing else.
    unsafe fn child_main(&self, moves_itself: bool) -> ! {
        // SAFETY: raw syscalls on prepared memory; see each step.
        unsafe {
            if let Err(failed) = self.child_steps(moves_itself) {
                let mut buf = [0u8; REPORT_LEN];
                buf[0] = failed.step as u8;
                let errno = failed.errno.to_ne_bytes();
                buf[1] = errno[0];
                buf[2] = errno[1];
                buf[3] = errno[2];
                buf[4] = errno[3];
                let _ = raw::call(
                    libc::SYS_write,
                    &[fd_arg(self.report), buf.as_ptr() as usize, REPORT_LEN],
                );
            }
            exit(127)
        }
    }

    /// # Safety
    /// Child side only (see [`Launch::child_main`]).
    unsafe fn child_steps(&self, moves_itself: bool) -> Result<(), SpawnError> {
        let setup = |ret: raw::Ret| {
            ret.map_err(|errno| SpawnError {
                step: Step::Setup,
                errno,
            })
        };
        // SAFETY: raw syscalls on fds and strings owned by `self`, and on this frame.
        unsafe {
            // zedinit blocks the signals it reads from its signalfd and ignores SIGPIPE:
            // neither may reach the service (signal(7): masks and ignored dispositions
            // survive execve). The kernel's sigset is 8 bytes; its sigaction, zeroed, is
            // SIG_DFL with no flags (32 bytes covers every layout).
            let empty: u64 = 0;
            setup(raw::call(
                libc::SYS_rt_sigprocmask,
                &[
                    libc::SIG_SETMASK as usize,
                    &empty as *const u64 as usize,
                    0,
                    8,
                ],
            ))?;
            let default = [0u64; 4];
            let _ = raw::call(
                libc::SYS_rt_sigaction,
                &[libc::SIGPIPE as usize, default.as_ptr() as usize, 0, 8],
            );
            if let (true, Some(dir)) = (moves_itself, &self.cgroup) {
                // "0" moves the writer itself (cgroup v2 `cgroup.procs`).
                let procs = setup(raw::call(
                    libc::SYS_openat,
                    &[
                        fd_arg(dir.as_raw_fd()),
                        c"cgroup.procs".as_ptr() as usize,
                        (libc::O_WRONLY | libc::O_CLOEXEC) as usize,
                    ],
                ))?;
                let moved = raw::call(libc::SYS_write, &[procs, b"0".as_ptr() as usize, 1]);
                let _ = raw::call(libc::SYS_close, &[procs]);
                if moved != Ok(1) {
                    return Err(SpawnError {
                        step: Step::Setup,
                        errno: moved.err().unwrap_or(libc::EIO),
                    });
                }
            }
            // Own session and process group: stop signals go to the whole group, and a
            // terminal's job control never reaches it.
            setup(raw::call(libc::SYS_setsid, &[]))?;
            setup(dup_to(self.stdin.as_raw_fd(), 0))?;
            if let Some(out) = &self.stdout {
                setup(dup_to(out.as_raw_fd(), 1))?;
            }
            if let Some(err) = &self.stderr {
                setup(dup_to(err.as_raw_fd(), 2))?;
            }
            if self.reset_uid {
                setup(raw::call(libc::SYS_setresuid, &[0, 0, 0]))?;
            }
            match &self.confinement {
                Confinement::None => {}
                Confinement::Own(plan) => plan.apply()?,
                Confinement::Join(join) => join.apply()?,
            }
            if let Some(path) = &self.check_file {
                let found = raw::call(
                    libc::SYS_faccessat,
                    &[
                        fd_arg(libc::AT_FDCWD),
                        path.as_ptr() as usize,
                        libc::F_OK as usize,
                    ],
                );
                exit(if found.is_ok() { 0 } else { 1 });
            }
            // As execvp(3): ENOENT goes on to the next directory; another error is kept
            // (EACCES of one candidate beats ENOENT of the later ones).
            let mut kept = libc::ENOENT;
            for program in &self.programs {
                let e = raw::call(
                    libc::SYS_execve,
                    &[
                        program.as_ptr() as usize,
                        self.argv_ptrs.as_ptr() as usize,
                        self.envp_ptrs.as_ptr() as usize,
                    ],
                )
                .err()
                .unwrap_or(libc::ENOENT);
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

/// An fd as a syscall argument (sign-extended, as the kernel reads an int).
fn fd_arg(fd: RawFd) -> usize {
    fd as isize as usize
}

/// dup2(2) as the child needs it: dup3 (the only one on every architecture) refuses
/// `old == new`, which dup2 leaves alone.
///
/// # Safety
/// Integer arguments only; child side.
unsafe fn dup_to(old: RawFd, new: RawFd) -> raw::Ret {
    if old == new {
        return Ok(new as usize);
    }
    // SAFETY: integer arguments only.
    unsafe { raw::call(libc::SYS_dup3, &[fd_arg(old), fd_arg(new), 0]) }
}

/// Ends the child (exit_group(2) without glibc's exit handlers).
///
/// # Safety
/// Child side only.
unsafe fn exit(code: i32) -> ! {
    loop {
        // SAFETY: integer argument only; does not return.
        let _ = unsafe { raw::call(libc::SYS_exit_group, &[code as usize]) };
    }
}

/// What a child running in zedinit's memory reads until its exec: its [`Launch`] and
/// its stack. Drop it only once the child is done with them: its exec report said it
/// exec'd (end of file: its exec has replaced its memory), or it was reaped.
pub struct InFlight {
    launch: NonNull<Launch>,
    stack: Option<Stack>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // SAFETY: made by Box::leak in `Launch::start`; the child no longer reads it
        // (see the type's doc), and nothing else points to it.
        drop(unsafe { Box::from_raw(self.launch.as_ptr()) });
    }
}

/// A child's own stack (for a `CLONE_VM` child), with an inaccessible guard below it:
/// an overflow faults instead of writing into zedinit's memory.
struct Stack {
    base: *mut libc::c_void,
}

/// Usable stack: the confinement steps use a few KiB (one 4 KiB path buffer); pages
/// never touched cost nothing.
const STACK_SIZE: usize = 256 * 1024;
/// Below the stack; a multiple of every page size.
const GUARD_SIZE: usize = 64 * 1024;

impl Stack {
    fn new() -> Result<Stack, String> {
        // SAFETY: a fresh anonymous private mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                GUARD_SIZE + STACK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!("stack: {}", std::io::Error::last_os_error()));
        }
        let stack = Stack { base };
        // SAFETY: the lowest part of the mapping just made.
        if unsafe { libc::mprotect(base, GUARD_SIZE, libc::PROT_NONE) } != 0 {
            return Err(format!("stack guard: {}", std::io::Error::last_os_error()));
        }
        Ok(stack)
    }

    /// The usable part: lowest address and size (clone3's `stack`, `stack_size`).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn usable(&self) -> (u64, u64) {
        (self.base as u64 + GUARD_SIZE as u64, STACK_SIZE as u64)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer used (see `InFlight`).
        unsafe { libc::munmap(self.base, GUARD_SIZE + STACK_SIZE) };
    }
}

/// Clones the child: into this memory on `stack` if given (the child runs
/// [`child_entry`] there and never comes back here), else as fork(2) (returns twice:
/// 0 in the child). The pid, or the errno.
///
/// # Safety
/// `launch` and `stack` must stay allocated and unchanged while the child may run in
/// this memory; a forked child must run only `child_main`.
unsafe fn clone_child(
    args: &mut CloneArgs,
    launch: NonNull<Launch>,
    stack: Option<&Stack>,
) -> Result<i32, i32> {
    // Only a CLONE_VM child (x86_64) starts from the Launch itself.
    #[cfg(not(target_arch = "x86_64"))]
    let _ = launch;
    match stack {
        #[cfg(target_arch = "x86_64")]
        Some(stack) => {
            let (low, size) = stack.usable();
            args.flags |= libc::CLONE_VM as u64;
            args.stack = low;
            args.stack_size = size;
            // SAFETY: the caller keeps `launch` and the stack alive.
            let pid = unsafe { clone3_vm(args, launch.as_ptr()) };
            args.flags &= !(libc::CLONE_VM as u64);
            args.stack = 0;
            args.stack_size = 0;
            pid
        }
        // SAFETY: clone3(2) without CLONE_VM and with no stack behaves as fork(2): the
        // child gets a copy of this address space and returns 0; the kernel reads
        // `args`, of the size given.
        _ => unsafe {
            raw::call(
                libc::SYS_clone3,
                &[
                    args as *mut CloneArgs as usize,
                    std::mem::size_of::<CloneArgs>(),
                ],
            )
        }
        .map(|p| p as i32),
    }
}

/// clone3(2) with `CLONE_VM` and a stack: the child starts on that stack with this
/// thread's registers, so it must not return into this function's frame (zedinit's
/// stack, in use by the parent). The asm sends it straight to [`child_entry`].
///
/// # Safety
/// `args` holds CLONE_VM and a stack that stays mapped; `launch` stays valid and
/// unchanged until the child has exec'd or exited.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_vm(args: &mut CloneArgs, launch: *const Launch) -> Result<i32, i32> {
    let ret: isize;
    // SAFETY: in the parent this is a plain syscall (clobbers rcx, r11; result in
    // rax). In the child (rax = 0) the stack pointer is the top of the new stack,
    // 16-byte aligned (mmap'd, sizes multiples of 16): the call leaves it as the ABI
    // wants at a function's entry; r12 (callee-saved, copied into the child) holds the
    // argument; `child_entry` never returns (ud2 if it did).
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r12",
            "call {entry}",
            "ud2",
            "2:",
            entry = sym child_entry,
            inlateout("rax") libc::SYS_clone3 as isize => ret,
            in("rdi") args as *mut CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") launch,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if (-4095..0).contains(&ret) {
        Err(-ret as i32)
    } else {
        Ok(ret as i32)
    }
}

/// Where a `CLONE_VM` child starts, on its own stack.
///
/// # Safety
/// Only from [`clone3_vm`]'s child side.
#[cfg(target_arch = "x86_64")]
unsafe extern "C" fn child_entry(launch: *const Launch) -> ! {
    // SAFETY: the parent keeps the Launch alive and unchanged until this child execs
    // or exits (`InFlight`); a CLONE_VM child was never the one to move into its cgroup.
    unsafe { (*launch).child_main(false) }
}

/// A child just cloned.
pub struct Started {
    pub pid: i32,
    /// The exec report pipe's read end.
    pub report: OwnedFd,
    pub in_cgroup: bool,
    /// The child runs in zedinit's memory: keep this until its exec report says it
    /// exec'd, or until it is reaped.
    pub in_flight: Option<InFlight>,
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
