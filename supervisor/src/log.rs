//! zedinit's own messages, to stderr, without ever blocking PID 1.
//!
//! stderr is usually a pipe owned by the container runtime; if that reader stalls, a
//! plain write would block PID 1. [`init`] opens a second, non-blocking description of
//! the same pipe (via `/proc/self/fd/2`, which for a pipe gives a new open file
//! description), so children that inherit fd 2 keep a blocking one. A line that does
//! not fit is dropped and counted, never waited for.

use std::fmt::Arguments;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

static SINK: OnceLock<File> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
static PREFIX: OnceLock<&'static str> = OnceLock::new();

/// Opens the non-blocking sink. Before this (and in tests) messages go to plain stderr.
pub fn init(prefix: &'static str) {
    let _ = PREFIX.set(prefix);
    let opened = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/proc/self/fd/2");
    if let Ok(file) = opened {
        let _ = SINK.set(file);
    }
}

/// Lines dropped because stderr was full.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

fn emit(level: &str, args: Arguments<'_>) {
    let prefix = PREFIX.get().copied().unwrap_or("zedinit");
    let line = format!("{prefix}: {level}{args}\n");
    match SINK.get() {
        Some(mut file) => {
            if file.write(line.as_bytes()).is_err() {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

pub fn info(args: Arguments<'_>) {
    emit("", args);
}

pub fn warn(args: Arguments<'_>) {
    emit("warning: ", args);
}
