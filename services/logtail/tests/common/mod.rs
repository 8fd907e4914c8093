//! The real `logtail` binary on real files, shared by the integration tests: its stdout
//! and stderr collected line by line, every wait with a deadline, and the process killed
//! when the test ends, even when it panics.

#![allow(dead_code)]

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

#[allow(unused_imports)]
pub use lab::{DEADLINE, require_root, wait_until};

/// Lines a stream gave, shared with the thread reading it.
#[derive(Clone, Default)]
pub struct Lines(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Lines {
    pub fn collect(stream: impl std::io::Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let shared = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let (all, changed) = &*shared.0;
                all.lock().expect("lines").push(line);
                changed.notify_all();
            }
        });
        lines
    }

    pub fn all(&self) -> Vec<String> {
        self.0.0.lock().expect("lines").clone()
    }

    /// Waits until `done` holds for the lines so far; panics with them at the deadline.
    pub fn wait_for(&self, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        let (all, changed) = &*self.0;
        let mut lines = all.lock().expect("lines");
        while !done(&lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; lines so far: {lines:#?}"
            );
            lines = changed.wait_timeout(lines, left).expect("lines").0;
        }
    }

    pub fn wait_line(&self, line: &str) {
        self.wait_for(line, |lines| lines.iter().any(|l| l == line));
    }

    pub fn wait_containing(&self, text: &str) {
        self.wait_for(text, |lines| lines.iter().any(|l| l.contains(text)));
    }
}

/// A log directory, a state file, and a running logtail.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub logs: PathBuf,
    pub state: PathBuf,
}

pub struct Running {
    pub child: Child,
    pub out: Lines,
    pub err: Lines,
}

impl Lab {
    pub fn new() -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = dir.path().join("log");
        fs::create_dir(&logs).expect("log dir");
        let state = dir.path().join("run/state.json");
        Lab { dir, logs, state }
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.logs.join(name)
    }

    pub fn label(&self, name: &str, text: &str) -> String {
        format!("{}: {text}", self.log(name).display())
    }

    pub fn start(&self, extra: &[&str]) -> Running {
        self.start_as(&[], extra)
    }

    /// logtail run through `launcher` (e.g. `setpriv` and its options), with `extra`
    /// arguments.
    pub fn start_as(&self, launcher: &[&str], extra: &[&str]) -> Running {
        let mut child = self
            .command(launcher, extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("logtail starts");
        let out = Lines::collect(child.stdout.take().expect("stdout"));
        let err = Lines::collect(child.stderr.take().expect("stderr"));
        Running { child, out, err }
    }

    /// logtail following this lab's `*.log`, run through `launcher`, with `extra`
    /// arguments; its stdio as the caller sets it.
    pub fn command(&self, launcher: &[&str], extra: &[&str]) -> Command {
        let logtail = env!("CARGO_BIN_EXE_logtail");
        let (program, args): (&str, Vec<&str>) = match launcher.split_first() {
            Some((program, options)) => (program, [options, &[logtail]].concat()),
            None => (logtail, Vec::new()),
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .arg(format!("{}/*.log", self.logs.display()))
            .arg("--state")
            .arg(&self.state)
            .args(["--grace", "1s"])
            .args(extra)
            // Its messages as text, as a person reads them (the JSON shape is svclog's,
            // tested there and under zedinit).
            .env(svclog::FORMAT_ENV, "text");
        command
    }
}

/// Voluntary context switches of process `pid` so far: how often it went to sleep by
/// itself (waiting, napping), not counting preemption by a busy machine.
pub fn voluntary_switches(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find(|l| l.starts_with("voluntary_ctxt_switches"))
        .and_then(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .expect("voluntary_ctxt_switches")
}

impl Running {
    pub fn signal(&mut self, signal: Signal) -> ExitStatus {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("kill");
        self.child.wait().expect("wait")
    }

    /// Voluntary plus involuntary context switches so far: how often it woke up.
    pub fn switches(&self) -> u64 {
        let status =
            fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Empties the file in place, as copytruncate does after its copy.
pub fn truncate(path: &Path) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open")
        .set_len(0)
        .expect("truncate");
}

pub fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    file.write_all(text.as_bytes()).expect("append");
}

pub fn state(lab: &Lab) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(&lab.state).expect("state")).expect("state parses")
}
