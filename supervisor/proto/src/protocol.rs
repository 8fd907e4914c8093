//! The control protocol: newline-delimited JSON over a Unix socket, one request per
//! line, one response per request, each carrying `version`.

use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;
/// Longest request line accepted; longer lines get `too-large` and are discarded.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// What a request asks. On the wire a verb is its name (`"status"`), and the wire keeps
/// a string: a name no variant has must reach zedinit, which answers `unknown-verb`
/// naming it (a typed field would turn it into `bad-request`). Clients build requests
/// from a `Verb`, so a misspelt verb does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Status,
    Health,
    Start,
    Stop,
    Restart,
    Reload,
    Signal,
    Rescan,
    Logs,
    Shutdown,
}

impl Verb {
    pub const ALL: [Verb; 10] = [
        Verb::Status,
        Verb::Health,
        Verb::Start,
        Verb::Stop,
        Verb::Restart,
        Verb::Reload,
        Verb::Signal,
        Verb::Rescan,
        Verb::Logs,
        Verb::Shutdown,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Status => "status",
            Verb::Health => "health",
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Restart => "restart",
            Verb::Reload => "reload",
            Verb::Signal => "signal",
            Verb::Rescan => "rescan",
            Verb::Logs => "logs",
            Verb::Shutdown => "shutdown",
        }
    }

    /// The verb a wire name stands for; `None` for a name zedinit does not know.
    pub fn parse(name: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.as_str() == name)
    }
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub version: u32,
    /// A [`Verb`]'s wire name (see there why a string).
    pub verb: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// For `signal`: the signal to send (`SIGUSR1`, `USR1`, `10`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// For state-changing verbs: wait up to this long for the new state before
    /// answering; 0 or absent answers at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// For `logs`: how many of the last lines (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<usize>,
    /// For `logs`: keep the connection and stream new lines as they come.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow: Option<bool>,
}

impl Request {
    pub fn new(verb: Verb) -> Self {
        Request {
            version: PROTOCOL_VERSION,
            verb: verb.as_str().into(),
            service: None,
            signal: None,
            wait_ms: None,
            lines: None,
            follow: None,
        }
    }

    pub fn for_service(verb: Verb, service: &str) -> Self {
        Request {
            service: Some(service.into()),
            ..Request::new(verb)
        }
    }
}

/// Typed errors: the `error` field of a failed response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Not JSON, or JSON of the wrong shape.
    BadRequest,
    /// The request line exceeded [`MAX_REQUEST_BYTES`].
    TooLarge,
    UnsupportedVersion,
    UnknownVerb,
    UnknownService,
    /// The service is not in a state where the verb makes sense (signal to a stopped one).
    InvalidState,
    /// The awaited state was not reached before `wait_ms` ran out.
    Timeout,
    /// The service failed while we waited for it to start.
    Failed,
    PermissionDenied,
    /// A feature whose issue has not landed yet.
    NotSupported,
    ShuttingDown,
    /// Too many clients at once.
    Busy,
}

impl Request {
    /// The verb asked, if zedinit knows it.
    pub fn known_verb(&self) -> Option<Verb> {
        Verb::parse(&self.verb)
    }
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad-request",
            ErrorKind::TooLarge => "too-large",
            ErrorKind::UnsupportedVersion => "unsupported-version",
            ErrorKind::UnknownVerb => "unknown-verb",
            ErrorKind::UnknownService => "unknown-service",
            ErrorKind::InvalidState => "invalid-state",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Failed => "failed",
            ErrorKind::PermissionDenied => "permission-denied",
            ErrorKind::NotSupported => "not-supported",
            ErrorKind::ShuttingDown => "shutting-down",
            ErrorKind::Busy => "busy",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Response {
    pub version: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The verb's answer: a status report, a health verdict, a service's new state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Response {
    pub fn ok(data: serde_json::Value) -> Self {
        Response {
            version: PROTOCOL_VERSION,
            ok: true,
            error: None,
            message: None,
            data: Some(data),
        }
    }

    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Response {
            version: PROTOCOL_VERSION,
            ok: false,
            error: Some(kind),
            message: Some(message.into()),
            data: None,
        }
    }

    /// One line of JSON with its newline, ready to send.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"version":1,"ok":false,"error":"bad-request","message":"unserialisable response"}"#.to_vec()
        });
        line.push(b'\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verb_goes_on_the_wire_as_its_documented_name_and_back() {
        let names: Vec<&str> = Verb::ALL.iter().map(|v| v.as_str()).collect();
        // DESIGN.md "Control protocol": the wire names clients have always sent.
        assert_eq!(
            names,
            [
                "status", "health", "start", "stop", "restart", "reload", "signal", "rescan",
                "logs", "shutdown"
            ]
        );
        for verb in Verb::ALL {
            assert_eq!(Verb::parse(verb.as_str()), Some(verb));
            let line = serde_json::to_string(&Request::new(verb)).expect("json");
            assert!(line.contains(&format!("\"verb\":\"{verb}\"")), "{line}");
        }
        assert_eq!(Verb::parse("dance"), None);
        assert_eq!(Verb::parse("Status"), None, "names are exact");
    }
}
