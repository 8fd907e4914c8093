//! Whether to feed the watchdog this round: plain data in, a verdict with its reasons
//! out. Feeding is the claim "this device is fine"; every doubt withholds it:
//! - with zedinit: it must answer `health` within the deadline and say healthy (a
//!   wedged or overloaded PID 1 is exactly what a watchdog is for);
//! - without it (`--without-zedinit`: each service its own container): every heartbeat
//!   file named on the command line must have been touched within its budget; one
//!   that does not exist yet is a reason only once the grace after start has passed
//!   (its service may still be starting in its own container);
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

/// Who says whether the services are well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Services {
    /// zedinit's `health`.
    Zedinit(Health),
    /// No zedinit: the services' heartbeat files, and whether the grace after start
    /// (when a file not made yet is not a reason) still runs.
    Heartbeats {
        beats: Vec<Heartbeat>,
        in_grace: bool,
    },
}

/// One service's heartbeat file (zedinit's `[heartbeat]`: `<dir>/<service>.touch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub service: String,
    pub path: String,
    /// Time since its last modification; `None` when it does not exist.
    pub age: Option<Duration>,
    /// Older than this withholds.
    pub budget: Duration,
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

pub fn decide(services: &Services, touches: &[Touch], pids: &[Pid], budget: Duration) -> Verdict {
    let mut reasons = Vec::new();
    let mut notes = Vec::new();
    match services {
        Services::Zedinit(health) => zedinit(health, &mut reasons),
        Services::Heartbeats { beats, in_grace } => {
            heartbeats(beats, *in_grace, &mut reasons, &mut notes)
        }
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

fn zedinit(health: &Health, reasons: &mut Vec<String>) {
    match health {
        Health::Healthy => {}
        Health::Unhealthy(why) if why.is_empty() => reasons.push("zedinit: unhealthy".to_string()),
        Health::Unhealthy(why) => reasons.extend(why.iter().map(|r| format!("zedinit: {r}"))),
        Health::NoAnswer(why) => reasons.push(format!("zedinit did not answer: {why}")),
    }
}

/// zedinit's `[heartbeat]` check, made by the watchdog itself: stale is older than the
/// budget; missing is stale once the grace has passed (until then only noted, once).
fn heartbeats(
    beats: &[Heartbeat],
    in_grace: bool,
    reasons: &mut Vec<String>,
    notes: &mut Vec<String>,
) {
    for beat in beats {
        let Heartbeat {
            service,
            path,
            age,
            budget,
        } = beat;
        match age {
            None if in_grace => notes.push(format!(
                "{service}: no heartbeat file {path} yet (within the grace after start)"
            )),
            None => reasons.push(format!("{service}: no heartbeat file {path}")),
            Some(age) if age > budget => reasons.push(format!(
                "{service}: heartbeat {path} not touched for {}s (budget {}s)",
                age.as_secs(),
                budget.as_secs_f64()
            )),
            Some(_) => {}
        }
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
            &Services::Zedinit(Health::Healthy),
            &[touch("/run/a.touch", Some(10))],
            &[],
            BUDGET,
        );
        assert!(v.feed && v.reasons.is_empty(), "{v:?}");
    }

    #[test]
    fn every_doubt_withholds_with_its_reason() {
        let v = decide(
            &Services::Zedinit(Health::Unhealthy(vec!["ticker: failed".into()])),
            &[],
            &[],
            BUDGET,
        );
        assert_eq!(v.reasons, vec!["zedinit: ticker: failed"]);
        assert!(!v.feed);
        let v = decide(
            &Services::Zedinit(Health::NoAnswer("timed out after 2s".into())),
            &[],
            &[],
            BUDGET,
        );
        assert_eq!(
            v.reasons,
            vec!["zedinit did not answer: timed out after 2s"]
        );
        let v = decide(
            &Services::Zedinit(Health::Healthy),
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
        let v = decide(&Services::Zedinit(Health::Healthy), &[], &pids, BUDGET);
        assert!(v.feed, "{v:?}");
        assert_eq!(v.notes.len(), 2);
        let v = decide(
            &Services::Zedinit(Health::Healthy),
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
            &Services::Zedinit(Health::Healthy),
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

    fn beat(service: &str, age: Option<u64>, budget: u64) -> Heartbeat {
        Heartbeat {
            service: service.into(),
            path: format!("/run/zedctr/heartbeats/{service}.touch"),
            age: age.map(Duration::from_secs),
            budget: Duration::from_secs(budget),
        }
    }

    #[test]
    fn without_zedinit_every_heartbeat_must_be_fresher_than_its_own_budget() {
        let beats = Services::Heartbeats {
            beats: vec![
                beat("downloader", Some(29), 30),
                beat("agent", Some(100), 120),
            ],
            in_grace: false,
        };
        let v = decide(&beats, &[], &[], BUDGET);
        assert!(v.feed && v.notes.is_empty(), "{v:?}");
        let beats = Services::Heartbeats {
            beats: vec![
                beat("downloader", Some(31), 30),
                beat("agent", Some(100), 120),
            ],
            in_grace: false,
        };
        let v = decide(&beats, &[], &[], BUDGET);
        assert!(!v.feed);
        assert_eq!(
            v.reasons,
            vec![
                "downloader: heartbeat /run/zedctr/heartbeats/downloader.touch not touched \
                 for 31s (budget 30s)"
            ]
        );
        // No zedinit is asked, so none is a reason; registrations still count.
        let v = decide(
            &Services::Heartbeats {
                beats: vec![],
                in_grace: false,
            },
            &[touch("/run/a.touch", Some(301))],
            &[],
            BUDGET,
        );
        assert_eq!(
            v.reasons,
            vec!["/run/a.touch: not touched for 301s (budget 300s)"]
        );
    }

    #[test]
    fn a_heartbeat_file_not_made_yet_withholds_only_after_the_grace() {
        let missing = |in_grace| Services::Heartbeats {
            beats: vec![beat("downloader", None, 30)],
            in_grace,
        };
        let v = decide(&missing(true), &[], &[], BUDGET);
        assert!(v.feed, "{v:?}");
        assert_eq!(
            v.notes,
            vec![
                "downloader: no heartbeat file /run/zedctr/heartbeats/downloader.touch yet \
                 (within the grace after start)"
            ]
        );
        let v = decide(&missing(false), &[], &[], BUDGET);
        assert!(!v.feed);
        assert_eq!(
            v.reasons,
            vec!["downloader: no heartbeat file /run/zedctr/heartbeats/downloader.touch"]
        );
        // A stale file is stale, grace or not: its service did beat, and stopped.
        let v = decide(
            &Services::Heartbeats {
                beats: vec![beat("downloader", Some(31), 30)],
                in_grace: true,
            },
            &[],
            &[],
            BUDGET,
        );
        assert!(!v.feed);
    }
}
