//! How a process ended: `Exited(code)` or `Signaled(signal)`, never a made-up number.

use nix::sys::signal::Signal;
use std::fmt;
use zedctr_proto::status::ExitWire;

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
