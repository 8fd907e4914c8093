//! Shared harness for the integration tests: zedinit runs as PID 1 of its own pid and
//! mount namespace (`unshare --pid --fork --mount-proc`), with definitions in a temp dir.
//! Every wait has a deadline; whatever a test started is killed when its `Lab` drops,
//! even when the test panics.

#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use zedctr::client::Client;
use zedctr::protocol::{Request, Response};
use zedctr::status::StatusReport;

pub const ZEDINIT: &str = env!("CARGO_BIN_EXE_zedinit");
pub const SUPCTL: &str = env!("CARGO_BIN_EXE_supctl");
pub const TESTKIT: &str = env!("CARGO_BIN_EXE_zedctr-testkit");

/// Generous: these assert order and outcome, never speed.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// True if the test may go on. Without root it skips loudly, except under CI=true,
/// where a missing prerequisite is a failure.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: needs root (CI=true, so this is a failure, not a skip)");
    }
    eprintln!(
        "\n!!!!! SKIPPED {test}: needs root (unshare --pid). Run as root to test this. !!!!!\n"
    );
    false
}

/// Polls `condition` until it holds or `DEADLINE` passes.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        if start.elapsed() > DEADLINE {
            panic!("timed out after {DEADLINE:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub services: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
}

impl Lab {
    pub fn new() -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let services = dir.path().join("services");
        std::fs::create_dir(&services).expect("services dir");
        let socket = dir.path().join("control.sock");
        Lab {
            dir,
            services,
            socket,
            child: None,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write_service(&self, name: &str, toml: &str) {
        std::fs::write(self.services.join(format!("{name}.toml")), toml).expect("write definition");
    }

    pub fn remove_service(&self, name: &str) {
        std::fs::remove_file(self.services.join(format!("{name}.toml")))
            .expect("remove definition");
    }

    /// Starts zedinit as PID 1 of a new pid namespace and waits for its socket.
    pub fn start(&mut self) {
        self.start_after("");
    }

    /// Like `start`, but runs the shell `setup` first inside zedinit's new mount
    /// namespace (to give zedinit mounts of its own, as a container runtime would).
    pub fn start_after(&mut self, setup: &str) {
        self.start_with(setup, "");
    }

    /// Like `start_after`, with more zedinit arguments (shell words, as written).
    pub fn start_with(&mut self, setup: &str, more_args: &str) {
        let log = std::fs::File::create(self.path("zedinit.log")).expect("log file");
        let script = format!(
            "{setup}\nexec \"$0\" --services-dir \"$1\" --control-socket \"$2\" --log-dir \"$3\" --heartbeat-dir \"$4\" {more_args}"
        );
        let child = Command::new("unshare")
            .args([
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
                "sh",
                "-ec",
                &script,
            ])
            .arg(ZEDINIT)
            .arg(&self.services)
            .arg(&self.socket)
            .arg(self.dir.path().join("logs"))
            .arg(self.dir.path().join("heartbeat"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("unshare zedinit");
        self.child = Some(child);
        wait_until("zedinit's control socket answers", || {
            Client::connect(&self.socket).is_ok_and(|mut c| {
                c.call(&Request::new("status"), Duration::from_secs(5))
                    .is_ok()
            })
        });
    }

    /// zedinit's pid as seen from here (the `unshare` process's only child).
    pub fn zedinit_host_pid(&self) -> i32 {
        let unshare = self.child.as_ref().expect("started").id();
        let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .unwrap_or_default();
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("zedinit pid")
    }

    pub fn call(&self, request: &Request) -> Response {
        let mut client = Client::connect(&self.socket).expect("connect");
        client.call(request, DEADLINE).expect("answer")
    }

    pub fn status(&self) -> StatusReport {
        let response = self.call(&Request::new("status"));
        assert!(response.ok, "{response:?}");
        serde_json::from_value(response.data.expect("data")).expect("status report")
    }

    pub fn state(&self, service: &str) -> String {
        self.status()
            .service(service)
            .map(|s| s.state.clone())
            .unwrap_or_else(|| "absent".into())
    }

    pub fn pid_of(&self, service: &str) -> Option<i32> {
        self.status().service(service).and_then(|s| s.pid)
    }

    pub fn wait_state(&self, service: &str, state: &str) {
        wait_until(
            &format!("{service} to be {state} (log: {})", self.log_tail()),
            || self.state(service) == state,
        );
    }

    /// Runs supctl against this lab; returns (exit code, stdout, stderr).
    pub fn supctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(SUPCTL)
            .arg("--control-socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("supctl");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.zedinit_host_pid()), signal)
            .expect("signal zedinit");
    }

    /// Waits for zedinit (and so `unshare`) to exit and returns how.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("started");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            if start.elapsed() > DEADLINE {
                panic!(
                    "zedinit did not exit within {DEADLINE:?}; log: {}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.path("zedinit.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL to zedinit ends its whole pid namespace; then reap unshare.
            let unshare = child.id();
            if let Ok(children) =
                std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            {
                for pid in children
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Zombie children of `parent` right now.
pub fn zombies_of(parent: i32) -> Vec<i32> {
    zedctr::sys::proc::children_of(parent)
        .into_iter()
        .filter(|pid| zedctr::sys::proc::stat_of(*pid).is_some_and(|(state, _)| state == 'Z'))
        .collect()
}

/// A shell command line quoted as a TOML array.
pub fn sh(script: &str) -> String {
    format!("[\"/bin/sh\", \"-c\", {}]", toml_string(script))
}

pub fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn testkit(args: &[&str]) -> String {
    let mut parts = vec![toml_string(TESTKIT)];
    parts.extend(args.iter().map(|a| toml_string(a)));
    format!("[{}]", parts.join(", "))
}

pub fn append_line(path: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    writeln!(f, "{line}").expect("write");
}

/// The directory of the test binaries; confined services bind it read-only at the same
/// path so they can run them inside their own root.
pub fn bin_dir() -> String {
    Path::new(TESTKIT)
        .parent()
        .expect("bin dir")
        .display()
        .to_string()
}
