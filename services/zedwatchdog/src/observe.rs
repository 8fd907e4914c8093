//! The OS side of a round: ask zedinit for its health within the deadline, and look at
//! what is registered under `/run/watchdog/{file,pid}/`.

use crate::verdict::{Health, Pid, Touch};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use zedctr::client::Client;
use zedctr::protocol::Request;

/// zedinit's `health`, or why there was none within `deadline`.
pub fn health(socket: &Path, deadline: Duration) -> Health {
    let mut client = match Client::connect(socket) {
        Ok(client) => client,
        Err(e) => return Health::NoAnswer(e.to_string()),
    };
    let answer = match client.call(&Request::new("health"), deadline) {
        Ok(answer) => answer,
        Err(e) => return Health::NoAnswer(format!("{e} (deadline {}ms)", deadline.as_millis())),
    };
    let report: Option<zedctr::status::Health> =
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

/// The names registered in `registry/<kind>/` (EVE's convention: the file's name is
/// that of the file in the run directory to check), sorted.
fn registered(registry: &Path, kind: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(registry.join(kind)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

pub fn touches(registry: &Path, run_dir: &Path, now: SystemTime) -> Vec<Touch> {
    registered(registry, "file")
        .into_iter()
        .map(|name| {
            let path = run_dir.join(&name);
            let age = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .map(|t| now.duration_since(t).unwrap_or_default());
            Touch {
                path: path.display().to_string(),
                age,
            }
        })
        .collect()
}

pub fn pids(registry: &Path, run_dir: &Path) -> Vec<Pid> {
    registered(registry, "pid")
        .into_iter()
        .map(|name| pid_of(&run_dir.join(name)))
        .collect()
}

fn pid_of(path: &PathBuf) -> Pid {
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
        Err(_) => Pid::NotVisible { path: shown, pid },
    }
}
