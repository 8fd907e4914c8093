//! Whether to feed the watchdog this round: plain data in, a verdict with its reasons
//! out. Feeding is the claim "this device is fine"; every doubt withholds it:
//! - zedinit must answer `health` within the deadline and say healthy (a wedged or
//!   overloaded PID 1 is exactly what a watchdog is for);
//! - every touch file registered the EVE way (`/run/watchdog/file/<name>` for
//!   `/run/<name>`) must have been touched within its budget;
//! - a registered pid file (`/run/watchdog/pid/<name>` for `/run/<name>`) must name a
//!   live process: a zombie withholds, and so does a pid not found when our pid
//!   namespace is the host's (`observe::pid_namespace`: then it is dead, and EVE
//!   reboots for it). In another namespace a pid not found may be a live process we
//!   can't see: it is reported once and ignored, as rebooting for it would be a guess.

use std::time::Duration;

/// What zedinit said (or did not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Healthy,
    Unhealthy(Vec<String>),
    /// No answer within the deadline, or no connection: the message says which.
    NoAnswer(String),
}

/// One registered touch file, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    pub path: String,
    /// Time since its last modification; `None` when it does not exist.
    pub age: Option<Duration>,
}

/// One registered pid file, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pid {
    Running {
        path: String,
        pid: i32,
    },
    Zombie {
        path: String,
        pid: i32,
    },
    /// Not found, and our pid namespace is the host's: dead.
    Gone {
        path: String,
        pid: i32,
    },
    /// Not found in a pid namespace that is not the host's.
    NotVisible {
        path: String,
        pid: i32,
    },
    /// The pid file is missing or holds no pid.
    Unreadable {
        path: String,
        why: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub feed: bool,
    /// Why not (empty when feeding).
    pub reasons: Vec<String>,
    /// Worth saying, not worth a reboot: pids we can't see, unreadable pid files.
    pub notes: Vec<String>,
}

pub fn decide(health: &Health, touches: &[Touch], pids: &[Pid], budget: Duration) -> Verdict {
    let mut reasons = Vec::new();
    let mut notes = Vec::new();
    match health {
        Health::Healthy => {}
        Health::Unhealthy(why) if why.is_empty() => reasons.push("zedinit: unhealthy".to_string()),
        Health::Unhealthy(why) => reasons.extend(why.iter().map(|r| format!("zedinit: {r}"))),
        Health::NoAnswer(why) => reasons.push(format!("zedinit did not answer: {why}")),
    }
    for touch in touches {
        match touch.age {
            None => reasons.push(format!("{}: registered but missing", touch.path)),
            Some(age) if age > budget => reasons.push(format!(
                "{}: not touched for {}s (budget {}s)",
                touch.path,
                age.as_secs(),
                budget.as_secs()
            )),
            Some(_) => {}
        }
    }
    for pid in pids {
        match pid {
            Pid::Running { .. } => {}
            Pid::Zombie { path, pid } => {
                reasons.push(format!("{path}: pid {pid} has exited (a zombie)"))
            }
            Pid::Gone { path, pid } => reasons.push(format!("{path}: pid {pid} is gone")),
            Pid::NotVisible { path, pid } => notes.push(format!(
                "{path}: pid {pid} is not visible in this pid namespace: ignored"
            )),
            Pid::Unreadable { path, why } => notes.push(format!("{path}: {why}: ignored")),
        }
    }
    Verdict {
        feed: reasons.is_empty(),
        reasons,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_secs(300);

    fn touch(path: &str, age: Option<u64>) -> Touch {
        Touch {
            path: path.into(),
            age: age.map(Duration::from_secs),
        }
    }

    #[test]
    fn healthy_and_fresh_feeds() {
        let v = decide(
            &Health::Healthy,
            &[touch("/run/a.touch", Some(10))],
            &[],
            BUDGET,
        );
        assert!(v.feed && v.reasons.is_empty(), "{v:?}");
    }

    #[test]
    fn every_doubt_withholds_with_its_reason() {
        let v = decide(
            &Health::Unhealthy(vec!["ticker: failed".into()]),
            &[],
            &[],
            BUDGET,
        );
        assert_eq!(v.reasons, vec!["zedinit: ticker: failed"]);
        assert!(!v.feed);
        let v = decide(
            &Health::NoAnswer("timed out after 2s".into()),
            &[],
            &[],
            BUDGET,
        );
        assert_eq!(
            v.reasons,
            vec!["zedinit did not answer: timed out after 2s"]
        );
        let v = decide(
            &Health::Healthy,
            &[
                touch("/run/a.touch", Some(301)),
                touch("/run/b.touch", None),
            ],
            &[],
            BUDGET,
        );
        assert_eq!(
            v.reasons,
            vec![
                "/run/a.touch: not touched for 301s (budget 300s)",
                "/run/b.touch: registered but missing"
            ]
        );
    }

    #[test]
    fn pids_we_cannot_see_are_noted_not_taken_as_dead() {
        let pids = [
            Pid::Running {
                path: "/run/a.pid".into(),
                pid: 10,
            },
            Pid::NotVisible {
                path: "/run/b.pid".into(),
                pid: 4242,
            },
            Pid::Unreadable {
                path: "/run/c.pid".into(),
                why: "no pid in it".into(),
            },
        ];
        let v = decide(&Health::Healthy, &[], &pids, BUDGET);
        assert!(v.feed, "{v:?}");
        assert_eq!(v.notes.len(), 2);
        let v = decide(
            &Health::Healthy,
            &[],
            &[Pid::Zombie {
                path: "/run/d.pid".into(),
                pid: 7,
            }],
            BUDGET,
        );
        assert!(!v.feed);
        assert_eq!(v.reasons, vec!["/run/d.pid: pid 7 has exited (a zombie)"]);
    }

    #[test]
    fn a_pid_gone_from_the_hosts_namespace_withholds() {
        let v = decide(
            &Health::Healthy,
            &[],
            &[Pid::Gone {
                path: "/run/zedagent.pid".into(),
                pid: 812,
            }],
            BUDGET,
        );
        assert!(!v.feed);
        assert_eq!(v.reasons, vec!["/run/zedagent.pid: pid 812 is gone"]);
        assert!(v.notes.is_empty());
    }
}
