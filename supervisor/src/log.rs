//! zedinit's own messages, to stderr, without ever blocking PID 1.
//!
//! What "non-blocking" takes depends on what fd 2 is (fstat at [`init`]):
//! - a pipe or FIFO (a container runtime's log pipe): a second, non-blocking open file
//!   description of the same pipe via `/proc/self/fd/2`, so children that inherit fd 2
//!   keep a blocking one; a line that does not fit is dropped and counted;
//! - a socket (journald): `send(MSG_DONTWAIT)` on fd 2;
//! - a regular file or a terminal: fd 2 itself (a regular file never blocks; reopening
//!   it would start a new offset and overwrite what is there).

use std::fmt::Arguments;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

enum Sink {
    Pipe(File),
    Socket,
    Direct,
}

static SINK: OnceLock<Sink> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
static PREFIX: OnceLock<&'static str> = OnceLock::new();

/// Picks the sink for fd 2. Before this (and in tests) messages go to plain stderr.
pub fn init(prefix: &'static str) {
    let _ = PREFIX.set(prefix);
    let kind = std::fs::metadata("/proc/self/fd/2").map(|m| m.file_type());
    let sink = match kind {
        Ok(t) if t.is_fifo() => std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
            .open("/proc/self/fd/2")
            .map(Sink::Pipe)
            .unwrap_or(Sink::Direct),
        Ok(t) if t.is_socket() => Sink::Socket,
        _ => Sink::Direct,
    };
    let _ = SINK.set(sink);
}

/// Lines dropped because stderr was full.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

fn emit(level: &str, args: Arguments<'_>) {
    let prefix = PREFIX.get().copied().unwrap_or("zedinit");
    let line = format!("{prefix}: {level}{args}\n");
    let complete = match SINK.get() {
        Some(Sink::Pipe(file)) => (&*file)
            .write(line.as_bytes())
            .is_ok_and(|n| n == line.len()),
        Some(Sink::Socket) => {
            let fd = std::io::stderr().as_raw_fd();
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
