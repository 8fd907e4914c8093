//! The OS side: read back what the last pass wrote and what it still owes, and carry out
//! the steps (atomic file replacement, lease pruning, zedinit's control socket).

use crate::changes::{OnDisk, Owed, Reservation, Step, prune_leases};
use crate::render::{HEADER, Layout};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zedctr_proto::client::Client;
use zedctr_proto::protocol::{ErrorKind, Request, Response, Verb};

/// What the last pass left in the output directory: every `<bridge>.conf` that starts
/// with our header, with its companions (a missing one reads as empty, so it is written
/// again).
pub fn read_on_disk(layout: &Layout) -> Vec<OnDisk> {
    let Ok(entries) = fs::read_dir(&layout.out_dir) else {
        return Vec::new();
    };
    let mut found: Vec<OnDisk> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let path = e.path();
            let bridge = path
                .file_name()?
                .to_str()?
                .strip_suffix(".conf")?
                .to_string();
            let conf = fs::read_to_string(&path).ok()?;
            let instance_file = PathBuf::from(conf.lines().next()?.strip_prefix(HEADER)?);
            let files = layout.files(&bridge);
            let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
            Some(OnDisk {
                hosts: read(&files.hosts),
                dhcp_hosts: read(&files.dhcp_hosts),
                definition: read(&files.definition),
                bridge,
                instance_file,
                conf,
            })
        })
        .collect();
    found.sort_by(|a, b| a.bridge.cmp(&b.bridge));
    found
}

/// The markers of unfinished sequences: (bridge, what is still owed).
pub fn read_owed(layout: &Layout) -> Vec<(String, Owed)> {
    let dir = layout.marker("x");
    let Some(dir) = dir.parent() else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut owed: Vec<(String, Owed)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if name.starts_with('.') {
                return None;
            }
            Some((name, Owed::parse(&fs::read_to_string(e.path()).ok()?)))
        })
        .collect();
    owed.sort_by(|a, b| a.0.cmp(&b.0));
    owed
}

/// How the steps reach zedinit.
pub trait Control {
    /// Sends `request` and returns zedinit's answer; an error is a failure to get one.
    fn call(&mut self, request: Request) -> Result<Response, String>;
}

/// zedinit's control socket.
pub struct Socket {
    pub path: PathBuf,
    /// How long a stop/start/restart may take to reach its state.
    pub wait: Duration,
}

impl Control for Socket {
    fn call(&mut self, mut request: Request) -> Result<Response, String> {
        if matches!(
            request.known_verb(),
            Some(Verb::Stop | Verb::Start | Verb::Restart)
        ) {
            request.wait_ms = Some(self.wait.as_millis() as u64);
        }
        let mut client = Client::connect(&self.path).map_err(|e| e.to_string())?;
        client
            .call(&request, self.wait + Duration::from_secs(5))
            .map_err(|e| e.to_string())
    }
}

/// Carries out each bridge's sequence in order. A failed step ends its bridge's sequence
/// (its marker stays, so the next pass does what is still owed) and the other bridges go
/// on; but once the sequence has stopped dnsmasq, its start (or restart) is still tried,
/// so a failure half-way never leaves the bridge without one. True when every step of
/// every sequence was done.
pub fn apply(
    sequences: Vec<Vec<Step>>,
    control: &mut dyn Control,
    report: &mut dyn FnMut(String),
) -> bool {
    let mut all_done = true;
    for steps in sequences {
        let mut stopped = false;
        for (i, step) in steps.iter().enumerate() {
            match run(step, control) {
                Ok(()) => stopped |= matches!(step, Step::Stop { .. }),
                Err(e) => {
                    report(e);
                    all_done = false;
                    let up = steps[i + 1..]
                        .iter()
                        .find(|s| matches!(s, Step::Start { .. } | Step::Restart { .. }));
                    if let (true, Some(up)) = (stopped, up)
                        && let Err(e) = run(up, control)
                    {
                        report(e);
                    }
                    break;
                }
            }
        }
    }
    all_done
}

fn run(step: &Step, control: &mut dyn Control) -> Result<(), String> {
    let on = |path: &Path, e: io::Error| format!("{}: {e}", path.display());
    let (request, verb) = match step {
        Step::Write { path, text } => return write_atomically(path, text).map_err(|e| on(path, e)),
        Step::Remove { path } => return remove(path).map_err(|e| on(path, e)),
        Step::Touch { path } => return touch(path).map_err(|e| on(path, e)),
        Step::PruneLeases {
            lease_file,
            removed,
        } => return prune(lease_file, removed),
        Step::Rescan { .. } => (Request::new(Verb::Rescan), "rescan"),
        Step::Stop { service } => (Request::for_service(Verb::Stop, service), "stop"),
        Step::Start { service } => (Request::for_service(Verb::Start, service), "start"),
        Step::Restart { service } => (Request::for_service(Verb::Restart, service), "restart"),
        Step::Hup { service } => (
            Request {
                signal: Some("SIGHUP".into()),
                ..Request::for_service(Verb::Signal, service)
            },
            "signal SIGHUP to",
        ),
    };
    let what = match &request.service {
        Some(service) => format!("{verb} {service}"),
        None => verb.to_string(),
    };
    let answer = control.call(request).map_err(|e| format!("{what}: {e}"))?;
    judge(step, &what, &answer)
}

/// Whether zedinit's answer means the step is done.
fn judge(step: &Step, what: &str, answer: &Response) -> Result<(), String> {
    if !answer.ok {
        // Already true: a service zedinit does not have is not running; a SIGHUP to a
        // dnsmasq with no process is not needed (its next start reads the files).
        let moot = matches!(
            (step, answer.error),
            (Step::Stop { .. }, Some(ErrorKind::UnknownService))
                | (Step::Hup { .. }, Some(ErrorKind::InvalidState))
        );
        if moot {
            return Ok(());
        }
        return Err(format!(
            "{what}: zedinit said {}: {}",
            answer.error.map_or("error", |e| e.as_str()),
            answer.message.clone().unwrap_or_default()
        ));
    }
    // A rescan succeeds even when definitions are bad: the one we wrote must not be
    // among them (errors name their file).
    if let Step::Rescan {
        definition: Some(definition),
    } = step
    {
        let ours = definition.display().to_string();
        let rejected: Vec<&str> = answer
            .data
            .as_ref()
            .and_then(|d| d.get("definition_errors"))
            .and_then(|e| e.as_array())
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e.as_str())
                    .filter(|e| e.starts_with(&ours))
                    .collect()
            })
            .unwrap_or_default();
        if !rejected.is_empty() {
            return Err(format!(
                "{what}: zedinit rejected {ours}: {}",
                rejected.join("; ")
            ));
        }
    }
    Ok(())
}

fn prune(lease_file: &Path, removed: &[Reservation]) -> Result<(), String> {
    let text = match fs::read_to_string(lease_file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", lease_file.display())),
    };
    let pruned = prune_leases(&text, removed);
    if pruned == text {
        return Ok(());
    }
    write_atomically(lease_file, &pruned).map_err(|e| format!("{}: {e}", lease_file.display()))
}

/// Makes its directory, then replaces the file atomically (`confkit::replace_file`: a
/// reader, dnsmasq's inotify or zedinit's rescan, sees the old file or the new one; the
/// hidden, pid-named temporary is skipped by both and never shared by two renderers).
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    fs::create_dir_all(path.parent().unwrap_or(Path::new("/")))?;
    confkit::replace_file(path, text.as_bytes())
}

fn touch(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => {
            // The per-bridge directory, once empty.
            if let Some(dir) = path.parent() {
                let _ = fs::remove_dir(dir);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder(Vec<String>, Option<&'static str>);

    impl Control for Recorder {
        fn call(&mut self, request: Request) -> Result<Response, String> {
            let what = format!("{} {}", request.verb, request.service.unwrap_or_default());
            self.0.push(what.trim().to_string());
            match self.1 {
                Some(failing) if what.trim() == failing => Err(format!("{failing} failed")),
                _ => Ok(Response::ok(serde_json::json!({}))),
            }
        }
    }

    #[test]
    fn a_failed_step_ends_its_bridges_sequence_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.hosts/hosts");
        let b = dir.path().join("b.hosts/hosts");
        let sequences = vec![
            vec![
                Step::Stop {
                    service: "dnsmasq@a".into(),
                },
                Step::Write {
                    path: a.clone(),
                    text: "x".into(),
                },
            ],
            vec![
                Step::Write {
                    path: b.clone(),
                    text: "y".into(),
                },
                Step::Start {
                    service: "dnsmasq@b".into(),
                },
            ],
        ];
        let mut control = Recorder(Vec::new(), Some("stop dnsmasq@a"));
        let mut reports = Vec::new();
        assert!(!apply(sequences, &mut control, &mut |e| reports.push(e)));
        assert!(!a.exists(), "a's sequence stopped at its failed step");
        assert_eq!(fs::read_to_string(&b).expect("b written"), "y");
        assert_eq!(control.0, vec!["stop dnsmasq@a", "start dnsmasq@b"]);
        assert_eq!(
            reports,
            vec!["stop dnsmasq@a: stop dnsmasq@a failed".to_string()]
        );
        // Removing a file takes its emptied directory too; touching makes a missing file.
        apply(
            vec![vec![Step::Remove { path: b.clone() }]],
            &mut control,
            &mut |_| {},
        );
        assert!(!b.parent().expect("dir").exists());
        let lease = dir.path().join("l/x.leases");
        assert!(apply(
            vec![vec![Step::Touch {
                path: lease.clone()
            }]],
            &mut control,
            &mut |_| {}
        ));
        assert!(lease.exists());
    }
}

#[cfg(test)]
mod judging {
    use super::*;

    fn refused(kind: ErrorKind) -> Response {
        Response::error(kind, "no")
    }

    #[test]
    fn a_step_after_a_successful_stop_failing_still_starts_dnsmasq() {
        struct FailWrites(Vec<String>);
        impl Control for FailWrites {
            fn call(&mut self, request: Request) -> Result<Response, String> {
                self.0.push(request.verb.clone());
                Ok(Response::ok(serde_json::json!({})))
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let blocked = dir.path().join("file");
        fs::write(&blocked, "").expect("a file where a directory should be");
        let steps = vec![
            Step::Stop {
                service: "dnsmasq@a".into(),
            },
            Step::Write {
                path: blocked.join("x"),
                text: "x".into(),
            },
            Step::Start {
                service: "dnsmasq@a".into(),
            },
            Step::Remove {
                path: dir.path().join("marker"),
            },
        ];
        let mut control = FailWrites(Vec::new());
        assert!(!apply(vec![steps], &mut control, &mut |_| {}));
        assert_eq!(control.0, vec!["stop", "start"]);
    }

    #[test]
    fn moot_refusals_are_done_and_our_rejected_definition_is_not() {
        let stop = Step::Stop {
            service: "dnsmasq@a".into(),
        };
        assert_eq!(
            judge(&stop, "stop", &refused(ErrorKind::UnknownService)),
            Ok(())
        );
        assert!(judge(&stop, "stop", &refused(ErrorKind::Timeout)).is_err());
        let hup = Step::Hup {
            service: "dnsmasq@a".into(),
        };
        assert_eq!(
            judge(&hup, "hup", &refused(ErrorKind::InvalidState)),
            Ok(())
        );
        let rescan = Step::Rescan {
            definition: Some("/s/dnsmasq@a.toml".into()),
        };
        let answer = |errors: serde_json::Value| {
            Response::ok(serde_json::json!({ "definition_errors": errors }))
        };
        assert_eq!(
            judge(
                &rescan,
                "rescan",
                &answer(serde_json::json!(["/s/dnsmasq@b.toml:3: x: bad"]))
            ),
            Ok(())
        );
        let ours = judge(
            &rescan,
            "rescan",
            &answer(serde_json::json!(["/s/dnsmasq@a.toml:3: x: bad"])),
        );
        assert!(
            ours.expect_err("ours rejected")
                .contains("rejected /s/dnsmasq@a.toml")
        );
    }
}
