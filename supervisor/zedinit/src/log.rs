//! zedinit's own messages, to stderr, and services' output copied to stdout/stderr
//! (`--service-output stdout`), without ever blocking PID 1.
//!
//! What "non-blocking" takes depends on what fd 2 (or 1) is (fstat at [`init`]):
//! - a pipe or FIFO (a container runtime's log pipe): a second, non-blocking open file
//!   description of the same pipe via `/proc/self/fd/2`, so children that inherit fd 2
//!   keep a blocking one; a line that does not fit is dropped and counted;
//! - a socket (journald): `send(MSG_DONTWAIT)` on fd 2;
//! - a regular file or a terminal: fd 2 itself (a regular file never blocks; reopening
//!   it would start a new offset and overwrite what is there).

use std::fmt::Arguments;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

enum Sink {
    Pipe(File),
    Socket,
    Direct,
}

static SINK: OnceLock<Sink> = OnceLock::new();
static OUT_SINK: OnceLock<Sink> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
static PREFIX: OnceLock<&'static str> = OnceLock::new();

fn sink_for(fd: i32) -> Sink {
    // fstat(2) of the fd, not a stat of /proc/self/fd/N: the same answer without a
    // path lookup in /proc (~30 µs on zedinit's start path, before its first service).
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: fstat(2) fills `st` for an fd number (EBADF if it is not open).
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return Sink::Direct;
    }
    // SAFETY: filled by the successful call.
    match unsafe { st.assume_init() }.st_mode & libc::S_IFMT {
        libc::S_IFIFO => std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
            .open(format!("/proc/self/fd/{fd}"))
            .map(Sink::Pipe)
            .unwrap_or(Sink::Direct),
        libc::S_IFSOCK => Sink::Socket,
        _ => Sink::Direct,
    }
}

/// Picks the sinks for fd 2 and fd 1. Before this (and in tests) messages go to plain
/// stderr.
pub fn init(prefix: &'static str) {
    let _ = PREFIX.set(prefix);
    let _ = SINK.set(sink_for(2));
    let _ = OUT_SINK.set(sink_for(1));
}

/// Lines dropped because stderr was full.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

fn emit(level: &str, args: Arguments<'_>) {
    let prefix = PREFIX.get().copied().unwrap_or("zedinit");
    let line = format!("{prefix}: {level}{args}\n");
    write_to(SINK.get(), 2, &line);
}

/// A service's output line (already tagged, escaped and newline-terminated) to
/// zedinit's stdout (`to_stderr`: stderr), never blocking: dropped and counted when the
/// reader does not keep up.
pub fn service_line(line: &str, to_stderr: bool) {
    if to_stderr {
        write_to(SINK.get(), 2, line);
    } else {
        write_to(OUT_SINK.get(), 1, line);
    }
}

fn write_to(sink: Option<&Sink>, fd: i32, line: &str) {
    let complete = match sink {
        Some(Sink::Pipe(file)) => (&*file)
            .write(line.as_bytes())
            .is_ok_and(|n| n == line.len()),
        Some(Sink::Socket) => {
            // SAFETY: sending from a buffer we own on our own fd, without waiting.
            let n = unsafe {
                libc::send(
                    fd,
                    line.as_ptr().cast(),
                    line.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            n == line.len() as isize
        }
        Some(Sink::Direct) | None if fd == 1 => {
            std::io::stdout().write_all(line.as_bytes()).is_ok()
        }
        Some(Sink::Direct) | None => std::io::stderr().write_all(line.as_bytes()).is_ok(),
    };
    if !complete {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

pub fn info(args: Arguments<'_>) {
    emit("", args);
}

pub fn warn(args: Arguments<'_>) {
    emit("warning: ", args);
}
