//! zedinit as PID 1 of its own pid and mount namespace (`unshare --pid --fork
//! --mount-proc`), with definitions in a temp dir, as the tests of zedinit, supctl and
//! the services that talk to it run it. Every wait has a deadline; whatever a test
//! started is killed when its `Lab` drops, even when the test panics.

use crate::{DEADLINE, bin, wait_until};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use zedctr_proto::client::Client;
use zedctr_proto::protocol::{Request, Response, Verb};
use zedctr_proto::status::StatusReport;

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub services: PathBuf,
    pub socket: PathBuf,
    /// The network namespace zedinit runs in (`ip netns` name); the test's own if None.
    netns: Option<String>,
    child: Option<Child>,
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
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
            netns: None,
            child: None,
        }
    }

    /// zedinit will run in network namespace `netns` (a device's, with its bridges).
    pub fn in_netns(mut self, netns: &str) -> Lab {
        self.netns = Some(netns.to_string());
        self
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
        let child = in_new_pid_namespace(self.netns.as_deref())
            .args(["sh", "-ec", &script])
            .arg(bin("zedinit"))
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
                c.call(&Request::new(Verb::Status), Duration::from_secs(5))
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
        let response = self.call(&Request::new(Verb::Status));
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
        let out = Command::new(bin("supctl"))
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

    /// `supctl logs -f ARGS... SERVICE`, its lines read as they come; killed on drop.
    pub fn follow_logs(&self, args: &[&str], service: &str) -> Follower {
        let mut child = Command::new(bin("supctl"))
            .arg("--control-socket")
            .arg(&self.socket)
            .args(["logs", "-f"])
            .args(args)
            .arg(service)
            .stdout(Stdio::piped())
            .spawn()
            .expect("supctl logs -f");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines }
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

/// A shell command line quoted as a TOML array.
pub fn sh(script: &str) -> String {
    format!("[\"/bin/sh\", \"-c\", {}]", toml_string(script))
}

/// `s` as a TOML basic string.
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

/// A `command` array running `zedctr-testkit` with `args`.
pub fn testkit(args: &[&str]) -> String {
    let mut parts = vec![toml_string(&bin("zedctr-testkit").display().to_string())];
    parts.extend(args.iter().map(|a| toml_string(a)));
    format!("[{}]", parts.join(", "))
}

/// Appends `line` and a newline to the file at `path` (made if missing).
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
    bin("zedctr-testkit")
        .parent()
        .expect("bin dir")
        .display()
        .to_string()
}

/// `unshare --pid --fork --mount-proc --kill-child`, in network namespace `netns` if
/// given: what follows runs as PID 1 of a new pid namespace with its own /proc, and dies
/// with unshare.
pub fn in_new_pid_namespace(netns: Option<&str>) -> Command {
    let mut command = match netns {
        Some(ns) => {
            let mut ip = Command::new("ip");
            ip.args(["netns", "exec", ns, "unshare"]);
            ip
        }
        None => Command::new("unshare"),
    };
    command.args(["--pid", "--fork", "--mount-proc", "--kill-child"]);
    command
}

/// A running `supctl logs -f` ([`Lab::follow_logs`]).
pub struct Follower {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Follower {
    /// Its next line, waiting until `deadline` at the latest.
    pub fn next_line_by(&self, deadline: Instant) -> String {
        self.lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the follower prints a line in time")
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
