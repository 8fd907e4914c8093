//! How a process ended: `Exited(code)` or `Signaled(signal)`, never a made-up number.

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Exited(i32),
    Signaled(Signal),
}

impl Exit {
    /// True for exit code 0 only; a signal is never a success.
    pub fn success(self) -> bool {
        self == Exit::Exited(0)
    }

    pub fn to_wire(self) -> ExitWire {
        match self {
            Exit::Exited(code) => ExitWire {
                code: Some(code),
                signal: None,
            },
            Exit::Signaled(sig) => ExitWire {
                code: None,
                signal: Some(sig.as_str().to_string()),
            },
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Exited(code) => write!(f, "exit {code}"),
            Exit::Signaled(sig) => write!(f, "{}", sig.as_str()),
        }
    }
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
