//! What can go wrong with one download, worded for the status file and the terminal,
//! and which failures are worth another attempt ([`DownloadError::is_retryable`]).

use std::path::PathBuf;
use std::time::Duration;

/// One download's failure. Messages are complete sentences a person can act on: they
/// name the URL, path or sizes involved.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("cannot resolve {host}: {message}")]
    Resolve { host: String, message: String },
    /// Connect refused, reset, TLS failure, a body cut by an error: the network's fault.
    #[error("{0}")]
    Transport(String),
    #[error("HTTP {status} from {url}")]
    HttpStatus {
        status: reqwest::StatusCode,
        url: String,
    },
    #[error("stalled: no data for {}", humantime::format_duration(*.0))]
    Stalled(Duration),
    #[error("connection closed after {received} of {expected} bytes")]
    Truncated { received: u64, expected: u64 },
    #[error("server sent more bytes than the declared {declared} (at least {received})")]
    Oversize { declared: u64, received: u64 },
    #[error("server says the file is {server} bytes, the request declares {declared}")]
    SizeMismatch { declared: u64, server: u64 },
    #[error("sha256 mismatch: expected {expected}, got {actual}")]
    HashMismatch {
        expected: String,
        actual: String,
        /// Part of the data came from a kept `.part`: one fresh try is worth it, in case
        /// the kept bytes were what was bad (e.g. a crash after the size grew but before
        /// the data reached the disk).
        resumed: bool,
    },
    #[error(
        "not enough space in {}: {needed} more bytes needed, {available} available",
        dir.display()
    )]
    NoSpace {
        dir: PathBuf,
        needed: u64,
        available: u64,
    },
    #[error("disk full: no space left on device writing {}", path.display())]
    DiskFull { path: PathBuf },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad CA chain: {0}")]
    CaChain(String),
    #[error("{} is locked by another download of the same file", .0.display())]
    Busy(PathBuf),
    /// The server answered something we can't use as is (a wrong `Content-Range`...).
    #[error("unexpected response: {0}")]
    Protocol(String),
    #[error("cancelled")]
    Cancelled,
}

impl DownloadError {
    /// An I/O error, with a full disk told apart: it is the one a person must act on.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::StorageFull
            || source.raw_os_error() == Some(libc_edquot())
        {
            DownloadError::DiskFull { path }
        } else {
            DownloadError::Io { op, path, source }
        }
    }

    /// Whether another attempt may succeed without anyone changing anything. A 404, a
    /// wrong hash, a size the server contradicts, a full disk or a bad CA chain will not
    /// fix themselves within a backoff; rewriting the request (or freeing space) retries.
    pub fn is_retryable(&self) -> bool {
        match self {
            DownloadError::Resolve { .. }
            | DownloadError::Transport(_)
            | DownloadError::Stalled(_)
            | DownloadError::Truncated { .. }
            | DownloadError::Busy(_)
            | DownloadError::Protocol(_) => true,
            DownloadError::HttpStatus { status, .. } => {
                status.is_server_error()
                    || *status == reqwest::StatusCode::REQUEST_TIMEOUT
                    || *status == reqwest::StatusCode::TOO_MANY_REQUESTS
            }
            DownloadError::HashMismatch { resumed, .. } => *resumed,
            DownloadError::Oversize { .. }
            | DownloadError::SizeMismatch { .. }
            | DownloadError::NoSpace { .. }
            | DownloadError::DiskFull { .. }
            | DownloadError::Io { .. }
            | DownloadError::CaChain(_)
            | DownloadError::Cancelled => false,
        }
    }

    /// Whether the kept `.part` must go: its bytes are wrong, or it holds space a full
    /// disk needs back.
    pub fn discards_part(&self) -> bool {
        matches!(
            self,
            DownloadError::HashMismatch { .. }
                | DownloadError::Oversize { .. }
                | DownloadError::SizeMismatch { .. }
                | DownloadError::NoSpace { .. }
                | DownloadError::DiskFull { .. }
        )
    }
}

/// EDQUOT (quota exceeded) reads like a full disk to the person who must fix it.
fn libc_edquot() -> i32 {
    nix::errno::Errno::EDQUOT as i32
}

/// `err` and its sources, joined: reqwest's own message ("error sending request") says
/// little without the cause underneath ("Connection refused").
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classification() {
        let not_found = DownloadError::HttpStatus {
            status: reqwest::StatusCode::NOT_FOUND,
            url: "http://x/".into(),
        };
        assert!(!not_found.is_retryable());
        let unavailable = DownloadError::HttpStatus {
            status: reqwest::StatusCode::SERVICE_UNAVAILABLE,
            url: "http://x/".into(),
        };
        assert!(unavailable.is_retryable());
        assert!(DownloadError::Stalled(Duration::from_secs(1)).is_retryable());
        assert!(
            !DownloadError::HashMismatch {
                expected: "a".into(),
                actual: "b".into(),
                resumed: false
            }
            .is_retryable()
        );
    }

    #[test]
    fn full_disk_is_named() {
        let e = DownloadError::io(
            "write",
            "/dl/x.part",
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        assert!(e.to_string().contains("no space left"), "{e}");
        assert!(e.discards_part());
    }

    #[test]
    fn messages_name_what_matters() {
        let e = DownloadError::HttpStatus {
            status: reqwest::StatusCode::NOT_FOUND,
            url: "http://10.0.0.1/img".into(),
        };
        assert_eq!(e.to_string(), "HTTP 404 Not Found from http://10.0.0.1/img");
        let e = DownloadError::Stalled(Duration::from_secs(2));
        assert_eq!(e.to_string(), "stalled: no data for 2s");
    }
}
