//! The OS side of a round: ask zedinit for its health within the deadline (or, without
//! zedinit, look at the services' heartbeat files), and look at what is registered
//! under `/run/watchdog/{file,pid}/` (the names come from `registry`).

use crate::verdict::{Health, Heartbeat, Pid, Touch};
use std::path::Path;
use std::time::{Duration, SystemTime};
use zedctr_proto::client::Client;
use zedctr_proto::protocol::{Request, Verb};

/// zedinit's `health`, or why there was none within `deadline`.
pub fn health(socket: &Path, deadline: Duration) -> Health {
    let mut client = match Client::connect(socket) {
        Ok(client) => client,
        Err(e) => return Health::NoAnswer(e.to_string()),
    };
    let answer = match client.call(&Request::new(Verb::Health), deadline) {
        Ok(answer) => answer,
        Err(e) => return Health::NoAnswer(format!("{e} (deadline {}ms)", deadline.as_millis())),
    };
    let report: Option<zedctr_proto::status::Health> =
        answer.data.and_then(|d| serde_json::from_value(d).ok());
    match report {
        Some(h) if h.healthy => Health::Healthy,
        Some(h) => Health::Unhealthy(h.reasons),
        None => Health::NoAnswer(format!(
            "an answer without a health report ({})",
            answer.message.unwrap_or_else(|| "no message".into())
        )),
    }
}

/// Whose pids the registered pid files hold, as far as our /proc can show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidNamespace {
    /// Ours is the host's (the kernel's initial one, where EVE's agents run): every
    /// registered process is visible, so one not found is dead.
    Host,
    /// Ours is another (zedinit's own with `pid: new`, a container's): a pid not found
    /// may be a live process we can't see.
    Private,
}

/// The inode of the kernel's initial pid namespace (`PROC_PID_INIT_INO` in
/// include/linux/proc_ns.h, fixed since Linux 3.8): `/proc/self/ns/pid` of a process
/// in the host's pid namespace.
pub const INITIAL_PID_NAMESPACE: u64 = 0xEFFF_FFFC;

/// Ours, and how we know. Anything uncertain (no /proc, or a /proc of another
/// namespace, where `self` does not resolve) is `Private`: never reboot on a guess.
pub fn pid_namespace() -> (PidNamespace, String) {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self/ns/pid") {
        Ok(m) if m.ino() == INITIAL_PID_NAMESPACE => (
            PidNamespace::Host,
            "the host's (the initial pid namespace): a registered pid not found is dead".into(),
        ),
        Ok(m) => (
            PidNamespace::Private,
            format!(
                "not the host's (pid:[{}]): a registered pid not found may live elsewhere, \
                 and is only noted",
                m.ino()
            ),
        ),
        Err(e) => (
            PidNamespace::Private,
            format!("unknown (/proc/self/ns/pid: {e}): a registered pid not found is only noted"),
        ),
    }
}

/// A service whose heartbeat is checked without zedinit, and its budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub service: String,
    pub budget: Duration,
}

impl std::str::FromStr for Expected {
    type Err = String;

    /// `NAME=MAX-AGE` (`downloader=30s`): the file is `<heartbeat dir>/NAME.touch`.
    fn from_str(text: &str) -> Result<Expected, String> {
        let (service, age) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?}: expected NAME=MAX-AGE (downloader=30s)"))?;
        let valid = !service.is_empty()
            && !service.starts_with('.')
            && !service.contains('/')
            && service != "..";
        if !valid {
            return Err(format!("{service:?}: not a service name"));
        }
        let budget = confkit::durations::parse_duration(age)?;
        Ok(Expected {
            service: service.to_string(),
            budget,
        })
    }
}

/// Each expected service's heartbeat file `<dir>/<service>.touch`, as found now.
pub fn heartbeats(expected: &[Expected], dir: &Path, now: SystemTime) -> Vec<Heartbeat> {
    expected
        .iter()
        .map(|e| {
            let path = dir.join(format!("{}.touch", e.service));
            Heartbeat {
                service: e.service.clone(),
                age: age_of(&path, now),
                path: path.display().to_string(),
                budget: e.budget,
            }
        })
        .collect()
}

/// Time since the file's last modification (a touch, or a write); `None` if missing.
fn age_of(path: &Path, now: SystemTime) -> Option<Duration> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| now.duration_since(t).unwrap_or_default())
}

pub fn touches(names: &[String], run_dir: &Path, now: SystemTime) -> Vec<Touch> {
    names
        .iter()
        .map(|name| {
            let path = run_dir.join(name);
            Touch {
                age: age_of(&path, now),
                path: path.display().to_string(),
            }
        })
        .collect()
}

pub fn pids(names: &[String], run_dir: &Path, namespace: PidNamespace) -> Vec<Pid> {
    names
        .iter()
        .map(|name| pid_of(&run_dir.join(name), namespace))
        .collect()
}

fn pid_of(path: &Path, namespace: PidNamespace) -> Pid {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            return Pid::Unreadable {
                path: shown,
                why: e.to_string(),
            };
        }
    };
    let Some(pid) = text
        .split_whitespace()
        .next()
        .and_then(|t| t.parse::<i32>().ok())
        .filter(|p| *p > 0)
    else {
        return Pid::Unreadable {
            path: shown,
            why: "holds no pid".into(),
        };
    };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's closing parenthesis.
        Ok(stat)
            if stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z')) =>
        {
            Pid::Zombie { path: shown, pid }
        }
        Ok(_) => Pid::Running { path: shown, pid },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && namespace == PidNamespace::Host => {
            Pid::Gone { path: shown, pid }
        }
        Err(_) => Pid::NotVisible { path: shown, pid },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expected_heartbeat_is_a_name_and_a_duration() {
        let e: Expected = "downloader=30s".parse().expect("parses");
        assert_eq!(
            e,
            Expected {
                service: "downloader".into(),
                budget: Duration::from_secs(30)
            }
        );
        assert_eq!(
            "x=90".parse::<Expected>().map(|e| e.budget),
            Ok(Duration::from_secs(90))
        );
        for bad in ["downloader", "=30s", "../x=30s", ".x=1s", "x=soon"] {
            assert!(bad.parse::<Expected>().is_err(), "{bad}");
        }
    }

    #[test]
    fn heartbeat_files_are_found_by_service_name_and_aged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = SystemTime::now();
        std::fs::write(dir.path().join("a.touch"), "").expect("a");
        std::fs::File::options()
            .write(true)
            .open(dir.path().join("a.touch"))
            .and_then(|f| f.set_modified(now - Duration::from_secs(40)))
            .expect("age it");
        let expected: Vec<Expected> = ["a=30s", "b=30s"]
            .iter()
            .map(|e| e.parse().expect("parses"))
            .collect();
        let beats = heartbeats(&expected, dir.path(), now);
        assert_eq!(beats[0].age.map(|a| a.as_secs()), Some(40));
        assert!(beats[0].path.ends_with("/a.touch"));
        assert_eq!(beats[1].age, None, "b.touch was never made");
    }
}
