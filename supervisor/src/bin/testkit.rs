//! zedctr-testkit: small, predictable service programs for tests, the demo and benches.
//!
//!   orphans N          fork N children that each fork a grandchild and exit at once,
//!                      leaving N orphans (re-parented to the nearest reaper); then exit 0
//!   stamp FILE [sleep] append "<pid> <CLOCK_MONOTONIC ns>\n" to FILE at start, then
//!                      optionally sleep forever (`sleep`) or exit 0
//!   ignore-term        ignore SIGTERM and sleep forever
//!   on-term FILE NAME  sleep until SIGTERM, then append NAME to FILE and exit 0
//!   exit CODE          exit with CODE at once

use std::io::Write;

fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn append(file: &str, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .expect("open file");
    f.write_all(line.as_bytes()).expect("append");
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["orphans", n] => {
            let n: usize = n.parse().expect("orphans N");
            for _ in 0..n {
                // SAFETY: single-threaded; the children only call fork and _exit.
                match unsafe { libc::fork() } {
                    0 => {
                        // SAFETY: as above; the grandchild exits at once, its parent too.
                        unsafe {
                            libc::fork();
                            libc::_exit(0);
                        }
                    }
                    -1 => {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    _ => {}
                }
            }
            // Reap our own children so only the grandchildren are orphans.
            // SAFETY: plain waitpid loop on our own children.
            while unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) } > 0 {}
        }
        ["stamp", file, rest @ ..] => {
            append(
                file,
                &format!("{} {}\n", std::process::id(), monotonic_ns()),
            );
            if rest.first() == Some(&"sleep") {
                sleep_forever();
            }
        }
        ["ignore-term"] => {
            // SAFETY: setting a signal disposition to SIG_IGN.
            unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
            sleep_forever();
        }
        ["on-term", file, name] => {
            let mut set = nix::sys::signal::SigSet::empty();
            set.add(nix::sys::signal::Signal::SIGTERM);
            set.thread_block().expect("block SIGTERM");
            let _ = set.wait();
            append(file, &format!("{name}\n"));
        }
        ["exit", code] => std::process::exit(code.parse().expect("exit CODE")),
        _ => {
            eprintln!(
                "usage: zedctr-testkit orphans N | stamp FILE [sleep] | ignore-term | on-term FILE NAME | exit CODE"
            );
            std::process::exit(2);
        }
    }
}
