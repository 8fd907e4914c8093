//! What can go wrong with one download, worded for the status file and the terminal,
//! and which failures are worth another attempt ([`DownloadError::verdict`]).

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
    /// A 3xx. Redirects are never followed: a datastore, or an app answering for a
    /// `.local` name, could otherwise send the device to its own loopback or bridge
    /// services, and their answer would come back in the status (audit finding 5).
    #[error(
        "HTTP {status} from {url}: redirect to {location} refused (redirects are not followed; put the final URL in the request)"
    )]
    Redirect {
        status: reqwest::StatusCode,
        url: String,
        /// The `Location` header, quoted and escaped (it is the server's text), or `none`.
        location: String,
    },
    /// The server's certificate was refused. `time_related`: expired or not yet valid,
    /// which a device whose clock is not set yet (no RTC, NTP still pending) also sees,
    /// and which a renewed certificate fixes: worth waiting for.
    #[error("certificate refused: {message}")]
    Certificate { message: String, time_related: bool },
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
    /// The retry limit was reached; `last` is the last attempt's failure.
    #[error("gave up after {retries} retries: {last}")]
    GaveUp {
        retries: u32,
        last: Box<DownloadError>,
    },
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

    /// What to do after this failure (see [`Verdict`]). `from_local`: the endpoint that
    /// answered was found by mDNS (a `.local` host), so the answer may have come from an
    /// app impersonating the datastore.
    ///
    /// Waiting fixes: a lookup that found nothing yet, connects refused or timing out,
    /// stalls, cut bodies, a `.part` locked by another download, odd `Content-Range`s,
    /// 5xx, 408, 429, and certificates that are expired or not yet valid (a device clock
    /// not set yet; a certificate being renewed).
    ///
    /// Waiting can't fix (a person must change the request or the server): other 4xx
    /// (404, 410, 401, 403...), a redirect, a certificate refused for another reason, a
    /// size the server contradicts or exceeds, a wrong hash from a fresh start, a full
    /// disk, other local I/O errors, a bad CA chain. From a `.local` endpoint, the
    /// server's answers among these (status, redirect, certificate, size, hash) are not
    /// final: another app may have answered for the name, so that endpoint is set aside
    /// and the lookup is made again.
    pub fn verdict(&self, from_local: bool) -> Verdict {
        if self.waiting_may_fix() {
            Verdict::Retry
        } else if from_local && self.is_the_servers_answer() {
            Verdict::RetryElsewhere
        } else {
            Verdict::Final
        }
    }

    /// Whether another attempt may succeed without anyone changing anything.
    fn waiting_may_fix(&self) -> bool {
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
            DownloadError::Certificate { time_related, .. } => *time_related,
            // Part of the data came from a kept `.part`: one fresh try (the engine
            // allows one) in case the kept bytes were what was bad.
            DownloadError::HashMismatch { resumed, .. } => *resumed,
            DownloadError::Redirect { .. }
            | DownloadError::Oversize { .. }
            | DownloadError::SizeMismatch { .. }
            | DownloadError::NoSpace { .. }
            | DownloadError::DiskFull { .. }
            | DownloadError::Io { .. }
            | DownloadError::CaChain(_)
            | DownloadError::Cancelled
            | DownloadError::GaveUp { .. } => false,
        }
    }

    /// What the server said or sent about the file (as opposed to the network or the
    /// disk): what an impostor can make up.
    fn is_the_servers_answer(&self) -> bool {
        matches!(
            self,
            DownloadError::HttpStatus { .. }
                | DownloadError::Redirect { .. }
                | DownloadError::Certificate { .. }
                | DownloadError::Oversize { .. }
                | DownloadError::SizeMismatch { .. }
                | DownloadError::HashMismatch { .. }
        )
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

/// What the engine does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Stop: waiting can't fix it.
    Final,
    /// Try again after a backoff (within the retry limit).
    Retry,
    /// Set the endpoint that answered aside (the next lookup prefers any other answer),
    /// then try again after a backoff (within the retry limit).
    RetryElsewhere,
}

/// EDQUOT (quota exceeded) reads like a full disk to the person who must fix it.
fn libc_edquot() -> i32 {
    nix::errno::Errno::EDQUOT as i32
}

/// A failed send: a refused certificate told apart (a person must read its cause, and
/// whether waiting helps depends on it), anything else the network's fault.
pub fn from_send(err: &reqwest::Error) -> DownloadError {
    match refused_certificate(err) {
        Some(why) => DownloadError::Certificate {
            message: chain(err),
            time_related: matches!(
                why,
                rustls::CertificateError::Expired
                    | rustls::CertificateError::ExpiredContext { .. }
                    | rustls::CertificateError::NotValidYet
                    | rustls::CertificateError::NotValidYetContext { .. }
            ),
        },
        None => DownloadError::Transport(chain(err)),
    }
}

/// The rustls certificate error somewhere in `err`'s sources.
fn refused_certificate<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::CertificateError> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(rustls::Error::InvalidCertificate(why)) = e.downcast_ref::<rustls::Error>() {
            return Some(why);
        }
        // An io::Error's source() is the source of the error it wraps, not that error
        // itself (std's `impl Error for io::Error`): look inside it.
        let wrapped = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        current = wrapped.or_else(|| e.source());
    }
    None
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

    fn status(code: u16) -> DownloadError {
        DownloadError::HttpStatus {
            status: reqwest::StatusCode::from_u16(code).expect("status"),
            url: "http://x/".into(),
        }
    }

    fn mismatch(resumed: bool) -> DownloadError {
        DownloadError::HashMismatch {
            expected: "a".into(),
            actual: "b".into(),
            resumed,
        }
    }

    #[test]
    fn what_waiting_fixes_is_retried_from_any_source() {
        let transient = [
            DownloadError::Resolve {
                host: "ds.local".into(),
                message: "not found by mDNS".into(),
            },
            DownloadError::Transport("Connection refused".into()),
            DownloadError::Stalled(Duration::from_secs(1)),
            DownloadError::Truncated {
                received: 1,
                expected: 2,
            },
            DownloadError::Busy("/dl/x.part".into()),
            DownloadError::Protocol("bad Content-Range".into()),
            status(500),
            status(503),
            status(408),
            status(429),
            DownloadError::Certificate {
                message: "expired".into(),
                time_related: true,
            },
            mismatch(true),
        ];
        for e in &transient {
            assert_eq!(e.verdict(false), Verdict::Retry, "{e}");
            assert_eq!(e.verdict(true), Verdict::Retry, "{e}");
        }
    }

    #[test]
    fn the_servers_word_is_final_from_a_plain_url_and_set_aside_from_a_local_one() {
        let servers_word = [
            status(404),
            status(410),
            status(403),
            DownloadError::Redirect {
                status: reqwest::StatusCode::FOUND,
                url: "http://x/".into(),
                location: "\"http://127.0.0.1/\"".into(),
            },
            DownloadError::Certificate {
                message: "unknown issuer".into(),
                time_related: false,
            },
            DownloadError::SizeMismatch {
                declared: 1,
                server: 2,
            },
            DownloadError::Oversize {
                declared: 1,
                received: 2,
            },
            mismatch(false),
        ];
        for e in &servers_word {
            assert_eq!(e.verdict(false), Verdict::Final, "{e}");
            assert_eq!(e.verdict(true), Verdict::RetryElsewhere, "{e}");
        }
    }

    #[test]
    fn local_trouble_is_final_whatever_the_source() {
        let local = [
            DownloadError::NoSpace {
                dir: "/dl".into(),
                needed: 2,
                available: 1,
            },
            DownloadError::DiskFull {
                path: "/dl/x.part".into(),
            },
            DownloadError::io(
                "open",
                "/dl/x.part",
                std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            ),
            DownloadError::CaChain("no PEM certificate in it".into()),
            DownloadError::Cancelled,
            DownloadError::GaveUp {
                retries: 5,
                last: Box::new(status(503)),
            },
        ];
        for e in &local {
            assert_eq!(e.verdict(false), Verdict::Final, "{e}");
            assert_eq!(e.verdict(true), Verdict::Final, "{e}");
        }
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
        let e = DownloadError::Redirect {
            status: reqwest::StatusCode::FOUND,
            url: "http://ds/img".into(),
            location: "\"http://127.0.0.1:18002/admin\"".into(),
        };
        assert_eq!(
            e.to_string(),
            "HTTP 302 Found from http://ds/img: redirect to \"http://127.0.0.1:18002/admin\" refused (redirects are not followed; put the final URL in the request)"
        );
    }
}
