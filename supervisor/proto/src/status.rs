//! `ServiceStatus` and `StatusReport`: what `supctl status` shows, as sent on the wire.
//! Versioned by the protocol; fields are only ever added.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceStatus {
    pub name: String,
    /// Exactly one of: starting, ready, running, backoff, stopping, stopped, done,
    /// skipped, failed.
    pub state: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub pid: Option<i32>,
    /// Milliseconds since the current process started; absent when none runs.
    pub uptime_ms: Option<u64>,
    /// Restarts since zedinit loaded the definition (automatic and requested).
    pub restarts: u32,
    pub last_exit: Option<ExitWire>,
    /// Milliseconds until the next automatic start (state `backoff`).
    pub next_retry_ms: Option<u64>,
    /// Why it is in this state: waiting for X, failure reason, condition false...
    pub note: Option<String>,
    pub critical: bool,
    /// False after `supctl stop` (it stays down until `supctl start`).
    pub wanted: bool,
    /// The service's own `STATUS=` text (notify socket).
    #[serde(default)]
    pub status_text: Option<String>,
    /// Milliseconds since its last heartbeat (services with `[heartbeat]`).
    #[serde(default)]
    pub heartbeat_age_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SupervisorStatus {
    pub pid: i32,
    /// True when not PID 1 and registered as child subreaper.
    pub subreaper: bool,
    /// Exits collected of processes that were not services (orphans re-parented to us).
    pub reaped_orphans: u64,
    pub services_dirs: Vec<String>,
    pub shutting_down: bool,
    /// Definition problems from the last (re)scan, as `file:line: key: message`.
    pub definition_errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatusReport {
    pub version: u32,
    pub supervisor: SupervisorStatus,
    pub services: Vec<ServiceStatus>,
}

impl StatusReport {
    pub fn service(&self, name: &str) -> Option<&ServiceStatus> {
        self.services.iter().find(|s| s.name == name)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Health {
    pub healthy: bool,
    pub reasons: Vec<String>,
}

/// The JSON form: `{"code": 3}` or `{"signal": "SIGKILL"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitWire {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub signal: Option<String>,
}

impl fmt::Display for ExitWire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.code, &self.signal) {
            (Some(code), _) => write!(f, "exit {code}"),
            (None, Some(sig)) => write!(f, "{sig}"),
            (None, None) => write!(f, "-"),
        }
    }
}
