//! What the zedwatchdog tests share beyond the workspace harness (`tests/lab`: root
//! checks, waiting, the real zedinit in its own pid namespace): the FIFO that stands for
//! the watchdog device (this machine has no
//! watchdog driver: no /dev/watchdog, and softdog can't be loaded; a FIFO takes writes
//! the way the kernel's interface does: any write pings, `V` before close disarms).

// Each test file uses a part of it.
#![allow(dead_code, unused_imports)]

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use lab::{require_root, wait_until};

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
