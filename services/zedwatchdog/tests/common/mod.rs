//! What the zedwatchdog tests share: root checks, waiting, the real zedinit in its own
//! pid namespace, and the FIFO that stands for the watchdog device (this machine has no
//! watchdog driver: no /dev/watchdog, and softdog can't be loaded; a FIFO takes writes
//! the way the kernel's interface does: any write pings, `V` before close disarms).

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "{test}: needs root (CI=true: a failure)"
    );
    eprintln!("\n!!!!! SKIPPED {test}: needs root (unshare --pid). !!!!!\n");
    false
}

pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn zedinit_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_zedwatchdog")).with_file_name("zedinit");
    assert!(
        path.exists(),
        "{} missing: build zedinit first (cargo build -p zedctr-supervisor --bins)",
        path.display()
    );
    path
}

/// zedinit as PID 1 of a new pid namespace, with its files under `dir`.
pub fn spawn_zedinit(dir: &Path) -> Child {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(zedinit_binary())
        .arg("--services-dir")
        .arg(dir.join("services"))
        .arg("--control-socket")
        .arg(dir.join("control.sock"))
        .arg("--log-dir")
        .arg(dir.join("logs"))
        .arg("--heartbeat-dir")
        .arg(dir.join("heartbeat"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("zedinit")
}

/// zedinit's pid here: the only child of `unshare`.
pub fn zedinit_pid(unshare: &Child) -> Option<nix::unistd::Pid> {
    let id = unshare.id();
    let children = std::fs::read_to_string(format!("/proc/{id}/task/{id}/children")).ok()?;
    Some(nix::unistd::Pid::from_raw(
        children.split_whitespace().next()?.parse().ok()?,
    ))
}

/// Shared with a reader thread.
#[derive(Clone, Default)]
pub struct Shared<T>(pub Arc<Mutex<T>>);

impl<T: Clone> Shared<T> {
    pub fn get(&self) -> T {
        self.0.lock().expect("lock").clone()
    }
}

/// Makes a FIFO at `path` and records every byte written to it, from each writer in turn
/// (a restarted zedwatchdog opens it again).
pub fn fifo_device(path: &Path) -> Shared<Vec<u8>> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let fed: Shared<Vec<u8>> = Shared::default();
    let recorded = fed.clone();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        loop {
            let Ok(mut file) = std::fs::File::open(&path) else {
                return;
            };
            let mut buffer = [0u8; 64];
            while let Ok(n) = file.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                recorded
                    .0
                    .lock()
                    .expect("lock")
                    .extend_from_slice(&buffer[..n]);
            }
        }
    });
    fed
}
