//! The OS side: read back what the last run wrote, carry out the steps (atomic file
//! replacement, lease pruning, zedinit's control socket).

use crate::changes::{OnDisk, Step, prune_leases};
use crate::render::{HEADER, Layout};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zedctr::client::Client;
use zedctr::protocol::Request;

/// What the last run left in the output directory: every `<bridge>.conf` that starts
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

/// How the steps reach zedinit.
pub trait Control {
    /// Sends `request` and waits for its answer; an error says what failed.
    fn call(&mut self, request: Request) -> Result<(), String>;
}

/// zedinit's control socket.
pub struct Socket {
    pub path: PathBuf,
    /// How long a stop/start/restart may take to reach its state.
    pub wait: Duration,
}

impl Control for Socket {
    fn call(&mut self, mut request: Request) -> Result<(), String> {
        if request.verb != "rescan" {
            request.wait_ms = Some(self.wait.as_millis() as u64);
        }
        let what = match &request.service {
            Some(service) => format!("{} {service}", request.verb),
            None => request.verb.clone(),
        };
        let mut client = Client::connect(&self.path).map_err(|e| format!("{what}: {e}"))?;
        let answer = client
            .call(&request, self.wait + Duration::from_secs(5))
            .map_err(|e| format!("{what}: {e}"))?;
        if answer.ok {
            Ok(())
        } else {
            Err(format!(
                "{what}: zedinit said {}: {}",
                answer.error.map_or("error", |e| e.as_str()),
                answer.message.unwrap_or_default()
            ))
        }
    }
}

/// Carries out `steps` in order. A failed file step is reported and the rest go on (the
/// next change retries: what is on disk is what the next run compares with). A failed
/// control step is returned, with the ones after it, for the caller to retry.
pub fn apply(
    steps: Vec<Step>,
    control: &mut dyn Control,
    report: &mut dyn FnMut(String),
) -> Vec<Step> {
    let mut steps = steps.into_iter();
    while let Some(step) = steps.next() {
        let result = match &step {
            Step::Write { path, text } => {
                write_atomically(path, text).map_err(|e| format!("{}: {e}", path.display()))
            }
            Step::Remove { path } => remove(path).map_err(|e| format!("{}: {e}", path.display())),
            Step::PruneLeases {
                lease_file,
                removed,
            } => prune(lease_file, removed),
            Step::Rescan => control.call(Request::new("rescan")),
            Step::Stop { service } => control.call(Request::for_service("stop", service)),
            Step::Start { service } => control.call(Request::for_service("start", service)),
            Step::Restart { service } => control.call(Request::for_service("restart", service)),
        };
        if let Err(e) = result {
            report(e);
            if matches!(
                step,
                Step::Rescan | Step::Stop { .. } | Step::Start { .. } | Step::Restart { .. }
            ) {
                let mut left = vec![step];
                left.extend(steps);
                return left;
            }
        }
    }
    Vec::new()
}

fn prune(lease_file: &Path, removed: &[crate::changes::Reservation]) -> Result<(), String> {
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

/// Writes next to `path`, then renames: a reader (dnsmasq's inotify, zedinit's rescan)
/// sees the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    // Hidden: dnsmasq's hostsdir and zedinit skip dot files, so the temporary is never read.
    let temporary = dir.join(format!(".{name}.tmp"));
    fs::write(&temporary, text)?;
    fs::rename(&temporary, path)
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
        fn call(&mut self, request: Request) -> Result<(), String> {
            let what = format!("{} {}", request.verb, request.service.unwrap_or_default());
            self.0.push(what.trim().to_string());
            match self.1 {
                Some(failing) if failing == request.verb => Err(format!("{failing} failed")),
                _ => Ok(()),
            }
        }
    }

    #[test]
    fn files_are_written_and_a_failed_control_step_is_kept_with_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b1.hosts/hosts");
        let steps = vec![
            Step::Write {
                path: path.clone(),
                text: "x".into(),
            },
            Step::Rescan,
            Step::Start {
                service: "dnsmasq@b1".into(),
            },
        ];
        let mut control = Recorder(Vec::new(), Some("rescan"));
        let mut reports = Vec::new();
        let left = apply(steps.clone(), &mut control, &mut |e| reports.push(e));
        assert_eq!(fs::read_to_string(&path).expect("written"), "x");
        assert_eq!(
            left,
            steps[1..].to_vec(),
            "the rescan and what follows it are retried"
        );
        assert_eq!(reports, vec!["rescan failed".to_string()]);
        let left = apply(left, &mut Recorder(Vec::new(), None), &mut |e| {
            reports.push(e)
        });
        assert!(left.is_empty());
        // Removing the file takes its emptied directory too.
        apply(
            vec![Step::Remove { path: path.clone() }],
            &mut control,
            &mut |_| {},
        );
        assert!(!path.parent().expect("dir").exists());
    }
}
