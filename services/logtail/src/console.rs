//! Printing to the console (stdout) without being woken for every page a slow reader
//! frees.
//!
//! A serial console or any reader slower than a flood keeps stdout's pipe full. A
//! blocking `write` then sleeps until the reader frees a page and copies a page per
//! wake-up: logtail was woken once per read of the reader (18–20k times per million
//! lines in the bench), and half its CPU went into those context switches
//! (BENCHMARKS.md, issue 16). So when stdout is a pipe, logtail writes only what fits
//! (`FIONREAD` says how much is still queued), and when little fits it naps until the
//! reader has taken about half the pipe, at the rate it was seen to drain: each wake-up
//! then writes a large chunk, and the reader always has half a pipe queued.
//!
//! stdout stays blocking: with `log = "console"` it is zedinit's own stdout, shared with
//! zedinit and the other console services, and `O_NONBLOCK` is a flag of that shared
//! file description. A reader that takes nothing during a nap (stopped, or gone quiet)
//! gets a blocking write instead, so logtail sleeps in the kernel until it moves: no
//! timer runs against a stuck console.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

/// Room left free when counting what fits: the pipe holds pages, and another writer's
/// short line takes a page of its own. A count that is off only makes a write block
/// briefly.
const SLACK: usize = 4 << 12;
/// The shortest and longest nap while the reader drains. The longest bounds how late a
/// reader that sped up finds the pipe refilled; a 1 MiB pipe holds ~90 s of a 115200
/// baud console, so naps this long never leave it idle.
const NAP_MIN: Duration = Duration::from_micros(200);
const NAP_MAX: Duration = Duration::from_millis(250);
/// The first nap, before the reader's rate is known.
const NAP_FIRST: Duration = Duration::from_millis(1);

/// stdout, and what has been seen of its reader.
pub struct Console {
    /// The pipe's size when stdout is a pipe; `None` otherwise (a terminal, a file: a
    /// plain blocking write).
    pipe: Option<usize>,
    /// Bytes per second the reader takes, as fast as it was lately (see `measured`).
    drain: Option<f64>,
}

impl Console {
    /// stdout as it is now (call after `F_SETPIPE_SZ`, which changes its size).
    pub fn stdout() -> Console {
        let fd = io::stdout();
        let pipe = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_GETPIPE_SZ)
            .ok()
            .and_then(|size| usize::try_from(size).ok())
            .filter(|&size| size > 2 * SLACK);
        Console { pipe, drain: None }
    }

    /// Writes all of `data`, coalescing waits for a slow reader (see the module header).
    pub fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        let Some(pipe) = self.pipe else {
            return write_fully(data);
        };
        // The look at the queue before the last nap: when, and how much was queued.
        let mut napped: Option<(Instant, usize)> = None;
        while !data.is_empty() {
            let queued = queued()?;
            let room = pipe.saturating_sub(queued + SLACK);
            if let Some((then, before)) = napped.take() {
                if before <= queued {
                    // Nothing taken during a whole nap: a stopped or stalled reader. Sleep
                    // in the kernel until it takes a page (no timer against a stuck
                    // console), then measure afresh.
                    let n = (room + 4096).min(data.len());
                    write_fully(&data[..n])?;
                    data = &data[n..];
                    continue;
                }
                self.measured(before - queued, then.elapsed(), queued < SLACK);
            }
            let want = data.len().min(pipe / 2);
            if room >= want {
                let n = room.min(data.len());
                write_fully(&data[..n])?;
                data = &data[n..];
                continue;
            }
            // Until about half the pipe is free again, at the rate last seen.
            let nap = match self.drain {
                Some(rate) => Duration::from_secs_f64(
                    ((want - room) as f64 / rate).min(NAP_MAX.as_secs_f64()),
                ),
                None => NAP_FIRST,
            };
            napped = Some((Instant::now(), queued));
            std::thread::sleep(nap.clamp(NAP_MIN, NAP_MAX));
        }
        Ok(())
    }
}

impl Console {
    /// The reader took `taken` bytes in `took`. The estimate follows a faster reader at
    /// once and a slower one gradually (a quarter per nap): a reader that was merely
    /// scheduled late during one nap (a busy machine) does not make the next nap long
    /// enough to leave it without lines. When it emptied the pipe, it may have waited
    /// for part of that time: its rate is at least that and the nap was too long, so the
    /// estimate doubles at least.
    fn measured(&mut self, taken: usize, took: Duration, ran_dry: bool) {
        let seconds = took.as_secs_f64();
        if seconds <= 0.0 {
            return;
        }
        let seen = taken as f64 / seconds;
        self.drain = Some(match self.drain {
            Some(before) if ran_dry => seen.max(2.0 * before),
            Some(before) => seen.max(0.75 * before),
            None => seen,
        });
    }
}

/// Bytes queued in stdout's pipe, not yet read.
fn queued() -> io::Result<usize> {
    let mut n: nix::libc::c_int = 0;
    // SAFETY: FIONREAD on descriptor 1 writes one c_int to the pointer given, which
    // points at `n`, alive and writable for the call.
    let r = unsafe {
        nix::libc::ioctl(
            io::stdout().as_raw_fd(),
            nix::libc::FIONREAD,
            &mut n as *mut nix::libc::c_int,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// A blocking write of all of `data` to stdout (retried on EINTR and short writes).
fn write_fully(mut data: &[u8]) -> io::Result<()> {
    let stdout = io::stdout();
    while !data.is_empty() {
        match nix::unistd::write(stdout.as_fd(), data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
