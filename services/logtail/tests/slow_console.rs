//! A console slower than the logs (a serial console, a slow reader of zedinit's
//! stdout) and a stopped one: every line arrives, in order, once; logtail sleeps until
//! the reader has taken a large part of the pipe instead of being woken for every page
//! it frees, and against a reader that takes nothing it sleeps in the kernel (no timer).

mod common;

use common::*;
use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::{ChildStdout, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `lines` numbered lines of about 64 bytes.
fn numbered(lines: usize) -> String {
    (0..lines)
        .map(|i| format!("seq {i:08} {}\n", "x".repeat(50)))
        .collect()
}

/// Reads `stdout` into a shared buffer, `chunk` bytes at a time with `pause` between
/// reads (a slow console), until end of file.
fn slow_reader(mut stdout: ChildStdout, chunk: usize, pause: Duration) -> Arc<Mutex<Vec<u8>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let shared = got.clone();
    std::thread::spawn(move || {
        let mut buffer = vec![0; chunk];
        loop {
            match stdout.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => shared.lock().expect("got").extend_from_slice(&buffer[..n]),
            }
            std::thread::sleep(pause);
        }
    });
    got
}

fn wait_bytes(got: &Arc<Mutex<Vec<u8>>>, what: &str, done: impl Fn(&[u8]) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done(&got.lock().expect("got")) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The console lines `text` gives, as logtail prints them for `app.log`.
fn expected(lab: &Lab, text: &str) -> Vec<u8> {
    let label = lab.log("app.log").display().to_string();
    text.lines()
        .flat_map(|line| format!("{label}: {line}\n").into_bytes())
        .collect()
}

/// logtail following `app.log` (made with `first` in it), its stdout a pipe the test
/// reads as slowly as it likes.
fn follow_app_log(lab: &Lab, first: &str) -> std::process::Child {
    fs::write(lab.log("app.log"), first).expect("app.log");
    lab.command(&[], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("logtail starts")
}

#[test]
fn a_slow_console_gets_every_line_in_order_and_logtail_is_not_woken_per_page() {
    let lab = Lab::new();
    let mut child = follow_app_log(&lab, "ready\n");
    // 4 KiB every millisecond at most: a reader far slower than logtail, freeing a page
    // of the pipe per read.
    let got = slow_reader(
        child.stdout.take().expect("stdout"),
        4096,
        Duration::from_millis(1),
    );
    let ready = expected(&lab, "ready\n");
    wait_bytes(&got, "the first line", |b| b.len() >= ready.len());
    let before = voluntary_switches(child.id());
    // ~5 MiB to print: the pipe (1 MiB) fills at once, then the reader sets the pace.
    let flood = numbered(50_000);
    append(&lab.log("app.log"), &flood);
    let whole = [ready, expected(&lab, &flood)].concat();
    wait_bytes(&got, "every line", |b| b.len() >= whole.len());
    let woken = voluntary_switches(child.id()) - before;
    let _ = child.kill();
    let _ = child.wait();
    let got = got.lock().expect("got").clone();
    assert!(
        got == whole,
        "every line once, in order ({} bytes printed, {} expected)",
        got.len(),
        whole.len()
    );
    // Blocked in `write`, it was woken for every page the reader freed: ~1,000 times for
    // the 4 MiB past the pipe's size. Napping until half the pipe is free: a few dozen.
    let pages = (whole.len() / 4096) as u64;
    assert!(
        woken < pages / 5,
        "woken {woken} times while the reader took {pages} pages"
    );
}

/// Bytes queued in the pipe `fd` reads from.
fn queued(fd: &impl AsRawFd) -> usize {
    let mut n: nix::libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which points at `n`.
    let r = unsafe { nix::libc::ioctl(fd.as_raw_fd(), nix::libc::FIONREAD, &mut n) };
    assert!(r >= 0, "FIONREAD: {}", std::io::Error::last_os_error());
    usize::try_from(n).expect("queued")
}

#[test]
fn against_a_stopped_console_logtail_sleeps_and_then_prints_everything() {
    let lab = Lab::new();
    let mut child = follow_app_log(&lab, "");
    let mut stdout = child.stdout.take().expect("stdout");
    // Nobody reads: 3 MiB to print fill the pipe, and logtail waits with the rest.
    std::thread::sleep(Duration::from_millis(300));
    let flood = numbered(40_000);
    append(&lab.log("app.log"), &flood);
    let deadline = Instant::now() + DEADLINE;
    let mut last = (queued(&stdout), Instant::now());
    // Full: the queue has stopped growing for half a second, past 900 KiB.
    while last.0 < 900 << 10 || last.1.elapsed() < Duration::from_millis(500) {
        assert!(
            Instant::now() < deadline,
            "the pipe never filled: {}",
            last.0
        );
        std::thread::sleep(Duration::from_millis(50));
        let now = queued(&stdout);
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    let before = voluntary_switches(child.id());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        voluntary_switches(child.id()),
        before,
        "no timer runs against a console that takes nothing"
    );
    // The console comes back: everything, in order.
    let whole = expected(&lab, &flood);
    let mut got = vec![0; whole.len()];
    stdout.read_exact(&mut got).expect("every line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(got == whole, "every line once, in order");
}
