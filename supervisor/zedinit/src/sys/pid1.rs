//! The signals zedinit handles, delivered through a signalfd so they are ordinary
//! events in the loop (no async handlers, no `static mut` flags).

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// SIGCHLD: reap. SIGTERM, SIGINT: ordered shutdown. SIGHUP: rescan definitions.
pub const HANDLED: [Signal; 4] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
];

/// Blocks the handled signals (so they queue for the signalfd) and opens the signalfd.
/// Children get an empty mask back before exec (see `spawn`).
pub fn block_and_open() -> nix::Result<SignalFd> {
    let mut set = SigSet::empty();
    for signal in HANDLED {
        set.add(signal);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

/// Reads every queued signal. Several SIGCHLDs may coalesce into one: the reaper loops.
pub fn drain(fd: &SignalFd) -> Vec<Signal> {
    let mut got = Vec::new();
    while let Ok(Some(info)) = fd.read_signal() {
        if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
            got.push(signal);
        }
    }
    got
}

/// zedinit's real and saved uid after [`shield`]: one no service runs as.
pub const SHIELD_UID: u32 = 0x7fff_fffe;

/// Keeps root services without CAP_KILL from signalling zedinit: kill(2) lets a sender
/// through when its real or effective uid equals the target's *real or saved* uid, or
/// when it has CAP_KILL. zedinit keeps effective uid 0 (its files, its capabilities) and
/// moves its real and saved uid to [`SHIELD_UID`]; a uid-0 service without CAP_KILL
/// then gets EPERM. The container runtime and root shells hold CAP_KILL and still can.
/// Children get uid 0 back before anything else (`launch`). Without root (development)
/// or where that uid is not mapped (a user namespace), nothing changes and it says why.
pub fn shield() -> Result<(), String> {
    // SAFETY: reading the caller's credentials.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    // SAFETY: setresuid(2) keeps effective uid 0, so no capability is lost
    // (capabilities(7), "Effect of user ID changes on capabilities"); glibc applies it to
    // every thread, and zedinit has none yet.
    if unsafe { libc::setresuid(SHIELD_UID, 0, SHIELD_UID) } != 0 {
        return Err(format!(
            "cannot move zedinit's real uid to {SHIELD_UID} ({}): services running as root \
             without capabilities can signal it",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Makes this process the reaper of its orphaned descendants when it is not PID 1
/// (development, or a container with `pid: host`). See prctl(2), PR_SET_CHILD_SUBREAPER.
pub fn become_subreaper() -> bool {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 }
}

/// What std's start-up did before `main` that zedinit needs, for a binary without std's
/// `main` (`#![no_main]`, src/bin/zedinit.rs): descriptors 0–2 open (on /dev/null when
/// the parent closed them, so nothing zedinit opens later, a socket, a log file, takes
/// their place and gets its messages or a child's stdin), and SIGPIPE ignored (a write to
/// a client or pipe that went away is an error, not zedinit's death). An fd that cannot
/// be opened stays closed, as nothing better is left to do.
pub fn std_start() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll(2) on our own array, timeout 0: it only reports which fds are closed.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } >= 0;
    for p in fds {
        let closed = if polled {
            p.revents & libc::POLLNVAL != 0
        } else {
            // SAFETY: F_GETFD reads the fd's flags; EBADF means it is closed.
            unsafe { libc::fcntl(p.fd, libc::F_GETFD) == -1 }
        };
        if closed {
            // SAFETY: open(2) of a constant path; the lowest free fd is this one.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
    // SAFETY: ignoring a signal installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Undoes what zedinit's parent may have left: ignored signals (an ignored SIGCHLD makes
/// the kernel reap children itself, and every exit would be lost) are set back to their
/// default, except SIGPIPE, which zedinit keeps ignored for its sockets ([`std_start`];
/// children get SIGPIPE back before exec). See signal(7), "Signal dispositions".
pub fn reset_dispositions() {
    for signo in 1..=31 {
        if signo == libc::SIGKILL || signo == libc::SIGSTOP || signo == libc::SIGPIPE {
            continue;
        }
        // SAFETY: setting a default disposition installs no handler code.
        unsafe { libc::signal(signo, libc::SIG_DFL) };
    }
}

/// Marks every inherited descriptor above stderr close-on-exec, so services never get
/// fds that zedinit's parent leaked (close_range(2), CLOSE_RANGE_CLOEXEC).
pub fn cloexec_inherited_fds() {
    // SAFETY: close_range only changes flags on our own descriptors.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
}
