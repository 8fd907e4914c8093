//! `--supervise`: the `Control` that runs the `dnsmasq@<bridge>` definitions itself,
//! for when there is no zedinit (dnsmasq-render in its own container, where bridges
//! come and go at run time and no container per bridge can be declared ahead). The
//! decisions are `children::Table`'s; this spawns, signals and reaps.
//!
//! What runs is each definition's `command`, read back from the file written (the one
//! place it is rendered, so what runs is what zedinit would run); its `[run]`
//! confinement is not applied: the container is the confinement (its capabilities,
//! network and binds are the export's). Children are reaped with `waitpid(-1)`, so as
//! PID 1 of a container it reaps orphans too.

use crate::apply::Control;
use crate::children::{Action, Refusal, Table};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};
use zedctr_proto::protocol::{ErrorKind, Request, Response, Verb};

/// The generated definitions' file names: `dnsmasq@<bridge>.toml`.
const PREFIX: &str = "dnsmasq@";

pub struct Supervisor {
    services_dir: PathBuf,
    /// SIGTERM, then SIGKILL after this (the definition's `[stop] timeout`).
    stop_timeout: Duration,
    table: Table,
}

/// The definitions in `dir`: service → command, and the files that could not be read
/// (as zedinit's `definition_errors`: `<file>: <why>`).
pub fn definitions(dir: &Path) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let mut defined = BTreeMap::new();
    let mut errors = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (defined, errors);
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Some(service) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".toml"))
            .filter(|n| n.starts_with(PREFIX))
        else {
            continue;
        };
        match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| command_of(&text))
        {
            Ok(command) => {
                defined.insert(service.to_string(), command);
            }
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
    (defined, errors)
}

/// A definition's `command`: a non-empty array of strings.
pub fn command_of(definition: &str) -> Result<Vec<String>, String> {
    let table: toml::Table = definition.parse().map_err(|e| format!("{e}"))?;
    let command: Option<Vec<String>> = table
        .get("command")
        .and_then(|c| c.as_array())
        .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect());
    command
        .filter(|c| !c.is_empty())
        .ok_or_else(|| "command: expected a non-empty array of strings".into())
}

impl Supervisor {
    pub fn new(services_dir: PathBuf, stop_timeout: Duration) -> Supervisor {
        Supervisor {
            services_dir,
            stop_timeout,
            table: Table::default(),
        }
    }

    /// Reconciles the running dnsmasq with the definitions on disk; returns the files
    /// that could not be read.
    pub fn rescan(&mut self) -> Vec<String> {
        let (defined, errors) = definitions(&self.services_dir);
        for error in &errors {
            warn!("{error}");
        }
        let actions = self.table.rescan(&defined);
        self.execute(actions);
        errors
    }

    /// Reaps every child that has exited (any process, as PID 1 would have to), and
    /// schedules the restart of ours.
    pub fn reap(&mut self) {
        loop {
            let (pid, how) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, format!("exited {code}")),
                Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, format!("killed by {signal}")),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    warn!("waitpid: {e}");
                    return;
                }
            };
            if let Some((service, wait)) = self.table.exited(pid.as_raw(), Instant::now()) {
                warn!(
                    service = %service,
                    pid = pid.as_raw(),
                    "{service} (pid {pid}) {how}: started again in {}s",
                    wait.as_secs_f64()
                );
            }
        }
    }

    /// Starts what is due after its backoff.
    pub fn tick(&mut self) {
        let actions = self.table.due(Instant::now());
        self.execute(actions);
    }

    /// When `tick` has something to do next.
    pub fn next_due(&self) -> Option<Instant> {
        self.table.next_due()
    }

    /// SIGTERM: every dnsmasq stopped (and reaped), none restarted.
    pub fn stop_all(&mut self) {
        let actions = self.table.stop_all();
        self.execute(actions);
        self.reap();
    }

    /// Carries out the table's actions in order; a spawn that fails is retried by the
    /// table's backoff. A stop that fails (no permission to signal) leaves the process
    /// tracked as running and skips that service's further actions (a second dnsmasq
    /// would find its ports taken). Returns the first failure.
    fn execute(&mut self, actions: Vec<Action>) -> Option<String> {
        let mut failed = None;
        let mut held: Vec<String> = Vec::new();
        for action in actions {
            match action {
                Action::Stop { service, .. } | Action::Spawn { service, .. }
                    if held.contains(&service) => {}
                Action::Stop { service, pid } => match stop(pid, self.stop_timeout) {
                    Ok(()) => info!(service = %service, pid, "stopped {service} (pid {pid})"),
                    Err(e) => {
                        let e = format!("{service}: stopping pid {pid}: {e}");
                        error!("{e}");
                        self.table.spawned(&service, pid, Instant::now());
                        held.push(service);
                        failed.get_or_insert(e);
                    }
                },
                Action::Spawn { service, command } => match spawn(&command) {
                    Ok(pid) => {
                        self.table.spawned(&service, pid, Instant::now());
                        info!(service = %service, pid, "started {service} (pid {pid})");
                    }
                    Err(e) => {
                        let wait = self.table.spawn_failed(&service, Instant::now());
                        let e = format!("{service}: {}: {e}", command[0]);
                        warn!(
                            "{e}; tried again in {}s",
                            wait.unwrap_or_default().as_secs_f64()
                        );
                        failed.get_or_insert(e);
                    }
                },
            }
        }
        failed
    }

    fn acted(&mut self, actions: Result<Vec<Action>, Refusal>, service: &str) -> Response {
        match actions {
            Ok(actions) => match self.execute(actions) {
                None => Response::ok(serde_json::json!({})),
                Some(e) => Response::error(ErrorKind::Failed, e),
            },
            Err(refusal) => refused(refusal, service),
        }
    }

    fn signal(&mut self, service: &str, name: Option<&str>) -> Response {
        let Ok(signal) = name.unwrap_or("SIGTERM").parse::<Signal>() else {
            return Response::error(ErrorKind::BadRequest, format!("signal {name:?}"));
        };
        match self.table.pid(service) {
            Ok(pid) => match signal_child(Pid::from_raw(pid), signal) {
                Ok(()) => Response::ok(serde_json::json!({})),
                Err(e) => Response::error(ErrorKind::PermissionDenied, format!("{service}: {e}")),
            },
            Err(refusal) => refused(refusal, service),
        }
    }
}

fn refused(refusal: Refusal, service: &str) -> Response {
    match refusal {
        Refusal::UnknownService => Response::error(
            ErrorKind::UnknownService,
            format!("{service}: no such definition"),
        ),
        Refusal::NotRunning => {
            Response::error(ErrorKind::InvalidState, format!("{service}: not running"))
        }
    }
}

impl Control for Supervisor {
    fn call(&mut self, request: Request) -> Result<Response, String> {
        let service = request.service.clone().unwrap_or_default();
        let answer = match request.known_verb() {
            Some(Verb::Rescan) => {
                let errors = self.rescan();
                Response::ok(serde_json::json!({ "definition_errors": errors }))
            }
            Some(Verb::Start) => {
                let actions = self.table.start(&service);
                self.acted(actions, &service)
            }
            Some(Verb::Stop) => {
                let actions = self.table.stop(&service);
                self.acted(actions, &service)
            }
            Some(Verb::Restart) => {
                let actions = self.table.restart(&service);
                self.acted(actions, &service)
            }
            Some(Verb::Signal) => self.signal(&service, request.signal.as_deref()),
            _ => Response::error(
                ErrorKind::UnknownVerb,
                format!("{}: not supervised here", request.verb),
            ),
        };
        Ok(answer)
    }
}

/// Runs `command` with our stdout and stderr (dnsmasq logs to stderr: the container's
/// log) and no stdin. The child is not waited for here: `reap` collects it.
fn spawn(command: &[String]) -> std::io::Result<i32> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty command"))?;
    // std resets the child's signal mask (ours blocks SIGCHLD and SIGTERM for the
    // signalfd), so dnsmasq gets its signals. Dropping the handle neither waits nor kills.
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .spawn()?;
    Ok(child.id() as i32)
}

/// SIGTERM, wait up to `timeout` for it to exit, SIGKILL; reaped either way. Fails
/// only when it may not be signalled: dnsmasq drops to its own user, and root needs
/// CAP_KILL to signal another user's process.
fn stop(pid: i32, timeout: Duration) -> Result<(), String> {
    let pid = Pid::from_raw(pid);
    signal_child(pid, Signal::SIGTERM)?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            // Reaped (or not ours to reap any more).
            _ => return Ok(()),
        }
    }
    signal_child(pid, Signal::SIGKILL)?;
    let _ = waitpid(pid, None);
    Ok(())
}

/// A signal to a child; one already gone (a zombie still takes signals) is no failure.
fn signal_child(pid: Pid, signal: Signal) -> Result<(), String> {
    match kill(pid, signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(Errno::EPERM) => Err(format!(
            "{signal}: not permitted (signalling dnsmasq, which runs as its own user, \
             needs CAP_KILL)"
        )),
        Err(e) => Err(format!("{signal}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_read_back_from_the_definition_written() {
        assert_eq!(
            command_of(
                "# x\ncommand = [\"/usr/sbin/dnsmasq\", \"--keep-in-foreground\"]\n[run]\nreadonly = true\n"
            ),
            Ok(vec![
                "/usr/sbin/dnsmasq".to_string(),
                "--keep-in-foreground".to_string()
            ])
        );
        assert!(command_of("command = []\n").is_err());
        assert!(command_of("command = [1]\n").is_err());
        assert!(command_of("command = [\n").is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("dnsmasq@a.toml"), "command = [\"x\"]\n").expect("a");
        std::fs::write(dir.path().join("dnsmasq@b.toml"), "command = \"x\"\n").expect("b");
        std::fs::write(dir.path().join("other.toml"), "command = [\"y\"]\n").expect("other");
        let (defined, errors) = definitions(dir.path());
        assert_eq!(
            defined.keys().collect::<Vec<_>>(),
            vec!["dnsmasq@a"],
            "only ours, only good ones"
        );
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("dnsmasq@b.toml: command"), "{errors:?}");
    }
}
