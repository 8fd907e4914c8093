//! What the zedwatchdog tests share beyond the workspace harness (`tests/lab`: root
//! checks, waiting, the real zedinit in its own pid namespace): the FIFO that stands for
//! the watchdog device (this machine has no
//! watchdog driver: no /dev/watchdog, and softdog can't be loaded; a FIFO takes writes
//! the way the kernel's interface does: any write pings, `V` before close disarms).

// Each test file uses a part of it.
#![allow(dead_code, unused_imports)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// What a test sees of a running zedwatchdog: the bytes written to its device and the
/// lines it said on stderr.
#[derive(Clone, Default)]
pub struct Watched {
    pub fed: Shared<Vec<u8>>,
    pub said: Shared<Vec<String>>,
}

/// Adds zedwatchdog's paths, all in `dir`: the FIFO `watchdog` as its device, zedinit's
/// `control.sock`, EVE's `registry` and its own `run` directory.
pub fn in_dir<'a>(command: &'a mut Command, dir: &Path) -> &'a mut Command {
    command
        .arg("--device")
        .arg(dir.join("watchdog"))
        .arg("--control-socket")
        .arg(dir.join("control.sock"))
        .arg("--registry")
        .arg(dir.join("registry"))
        .arg("--run-dir")
        .arg(dir.join("run"))
}

impl Watched {
    /// Spawns `command` (a zedwatchdog) with its stderr recorded line by line.
    pub fn spawn(&self, command: &mut Command) -> Child {
        let mut child = command.stderr(Stdio::piped()).spawn().expect("zedwatchdog");
        let said = self.said.clone();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                said.0.lock().expect("lock").push(line);
            }
        });
        child
    }

    pub fn feeds(&self) -> usize {
        self.fed.get().len()
    }

    pub fn said_count(&self, text: &str) -> usize {
        self.said.get().iter().filter(|l| l.contains(text)).count()
    }

    pub fn wait_said(&self, text: &str) {
        wait_until(
            &format!("zedwatchdog to say {text:?} (said: {:#?})", self.said.get()),
            || self.said_count(text) > 0,
        );
    }

    /// It is being fed: more bytes arrive.
    pub fn wait_feeding(&self) {
        let before = self.feeds();
        wait_until("feeding", || self.feeds() >= before + 3);
    }

    /// How many times it has said it stopped feeding: take this before causing a stop.
    pub fn withheld_count(&self) -> usize {
        self.said_count("NOT feeding")
    }

    /// The last "NOT feeding" line, once there is one after `count` (taken before the
    /// cause); it must give `because`.
    pub fn wait_withheld(&self, count: usize, because: &str) -> String {
        wait_until(
            &format!("a new NOT feeding line ({:#?})", self.said.get()),
            || self.withheld_count() > count,
        );
        let last = self
            .said
            .get()
            .into_iter()
            .rfind(|l| l.contains("NOT feeding"))
            .expect("line");
        assert!(
            last.contains(because),
            "{last:?} gives the reason {because:?}"
        );
        last
    }

    /// [`Watched::wait_withheld`], then no feed for many intervals.
    pub fn assert_withholding(&self, count: usize, because: &str) -> String {
        let last = self.wait_withheld(count, because);
        let before = self.feeds();
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(
            self.feeds(),
            before,
            "no feed while withholding ({because})"
        );
        last
    }
}
