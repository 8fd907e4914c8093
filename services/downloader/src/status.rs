//! `<status-dir>/<key>.json`: what `serve` tells the rest of the device about a request.
//!
//! Written whole to a temporary file in the same directory and renamed over the old one,
//! so a reader sees the previous or the next version, never a mix. State changes,
//! endpoints and errors are written at once; progress alone is written when 500 ms have
//! passed or progress moved by 1 % since the last write, whichever comes first (so at
//! most ~100 writes for progress plus two a second, however fast the link).

use crate::engine::Observer;
use crate::error::DownloadError;
use crate::resolve::Endpoint;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

pub const VERSION: u32 = 1;
const MIN_INTERVAL: Duration = Duration::from_millis(500);
const MIN_STEP_PERCENT: f64 = 1.0;

/// Where a request is. `Initial`: accepted, waiting for a download slot (or for another
/// request with the same sha256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Initial,
    Resolving,
    Downloading,
    Downloaded,
    Error,
}

/// An error and when it happened (RFC 3339, UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    pub message: String,
    pub time: String,
}

/// The status file's content. Fields are only ever added (`version` says the format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: u32,
    pub key: String,
    pub name: String,
    pub sha256: Option<String>,
    pub state: State,
    /// 0..=100; 0 while the total is unknown.
    pub progress: u8,
    pub current_size: u64,
    pub total_size: u64,
    /// Attempts made after the first one, over the request's life in this `serve`.
    pub retries: u32,
    pub first_error: Option<ErrorRecord>,
    pub last_error: Option<ErrorRecord>,
    /// `ip:port` the last attempt connected to.
    pub endpoint: Option<String>,
    /// The network-instance bridge the endpoint was found on (`.local` only).
    pub bridge: Option<String>,
    /// How a `.local` host was found (`.local` only).
    pub resolved_by: Option<String>,
    /// The verified file, once `downloaded`.
    pub path: Option<String>,
    pub updated: String,
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Percent done, rounded down, 0 when the total is unknown.
pub fn percent(current: u64, total: u64) -> u8 {
    if total == 0 {
        return 0;
    }
    ((u128::from(current.min(total)) * 100) / u128::from(total)) as u8
}

/// Whether a progress-only update is due (see the module header).
pub fn progress_due(since_last: Duration, last_written: u64, current: u64, total: u64) -> bool {
    if current == last_written {
        return false;
    }
    if since_last >= MIN_INTERVAL {
        return true;
    }
    total > 0
        && (current.abs_diff(last_written) as f64) * 100.0 / (total as f64) >= MIN_STEP_PERCENT
}

/// The longest request key whose status file can be written. `confkit::replace_file`
/// writes `.<key>.json.<pid>.tmp` first; a file name has at most 255 bytes (NAME_MAX)
/// and a pid at most 7 digits (PID_MAX_LIMIT, 4194304): 255 - 18 = 237. A longer key
/// (the request file's own name allows 250) would download with no status ever written.
pub const MAX_KEY_BYTES: usize = 237;

/// The request key a file of the status directory belongs to: `<key>.json`, or the
/// temporary `.<key>.json.<pid>.tmp` a crash left behind. None for anything else.
pub fn key_of(file_name: &str) -> Option<&str> {
    if let Some(tmp) = file_name.strip_prefix('.') {
        let (name, pid) = tmp.strip_suffix(".tmp")?.rsplit_once('.')?;
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return name.strip_suffix(".json").filter(|k| !k.is_empty());
    }
    file_name.strip_suffix(".json").filter(|k| !k.is_empty())
}

/// Writes `status` to `<dir>/<key>.json` atomically.
pub fn write_atomic(dir: &Path, status: &Status) -> std::io::Result<()> {
    let path = dir.join(format!("{}.json", status.key));
    let mut text = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    text.push(b'\n');
    // A leading dot: readers globbing `*.json` never pick up the temporary file.
    confkit::replace_file(&path, &text)
}

/// One request's status file, kept up to date from engine events.
pub struct Reporter {
    dir: PathBuf,
    status: Status,
    last_write: Option<Instant>,
    last_written_size: u64,
}

impl Reporter {
    /// Writes the `initial` status at once.
    pub fn new(dir: &Path, key: &str, name: &str, sha256: Option<&str>, total: u64) -> Self {
        let mut r = Reporter {
            dir: dir.to_path_buf(),
            status: Status {
                version: VERSION,
                key: key.to_string(),
                name: name.to_string(),
                sha256: sha256.map(str::to_string),
                state: State::Initial,
                progress: 0,
                current_size: 0,
                total_size: total,
                retries: 0,
                first_error: None,
                last_error: None,
                endpoint: None,
                bridge: None,
                resolved_by: None,
                path: None,
                updated: String::new(),
            },
            last_write: None,
            last_written_size: 0,
        };
        r.write();
        r
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The request can't be acted on (a malformed file) or the download failed for good.
    pub fn fail(&mut self, message: &str) {
        self.record_error(message);
        self.status.state = State::Error;
        self.write();
    }

    /// The verified file is in place.
    pub fn downloaded(&mut self, path: &Path, size: u64) {
        self.status.state = State::Downloaded;
        self.status.current_size = size;
        if self.status.total_size == 0 {
            self.status.total_size = size;
        }
        self.status.progress = 100;
        self.status.path = Some(path.display().to_string());
        self.write();
    }

    fn record_error(&mut self, message: &str) {
        let record = ErrorRecord {
            message: message.to_string(),
            time: now_rfc3339(),
        };
        if self.status.first_error.is_none() {
            self.status.first_error = Some(record.clone());
        }
        self.status.last_error = Some(record);
    }

    fn write(&mut self) {
        self.status.updated = now_rfc3339();
        if let Err(e) = write_atomic(&self.dir, &self.status) {
            // A status we can't write must not stop the download; say so where zedinit
            // keeps our log.
            tracing::warn!(
                key = %self.status.key,
                dir = %self.dir.display(),
                "cannot write status: {e}"
            );
        }
        self.last_write = Some(Instant::now());
        self.last_written_size = self.status.current_size;
    }
}

impl Observer for Reporter {
    fn state(&mut self, state: State) {
        if self.status.state != state {
            self.status.state = state;
            self.write();
        }
    }

    fn endpoint(&mut self, endpoint: &Endpoint) {
        let text = endpoint.addr.to_string();
        let changed = self.status.endpoint.as_deref() != Some(text.as_str())
            || self.status.bridge != endpoint.bridge
            || self.status.resolved_by != endpoint.resolved_by;
        self.status.endpoint = Some(text);
        self.status.bridge = endpoint.bridge.clone();
        self.status.resolved_by = endpoint.resolved_by.clone();
        if changed {
            self.write();
        }
    }

    fn progress(&mut self, current: u64, total: Option<u64>) {
        self.status.current_size = current;
        if let Some(t) = total {
            self.status.total_size = t;
        }
        self.status.progress = percent(current, self.status.total_size);
        let since = self
            .last_write
            .map(|t| t.elapsed())
            .unwrap_or(Duration::MAX);
        // Going backwards (a server that ignored Range) is news too.
        if current < self.last_written_size
            || progress_due(
                since,
                self.last_written_size,
                current,
                self.status.total_size,
            )
        {
            self.write();
        }
    }

    fn retrying(&mut self, error: &DownloadError, retries: u32, delay: Duration) {
        self.status.retries = retries;
        let message = format!(
            "{error} (retry {retries} in {})",
            humantime::format_duration(Duration::from_millis(delay.as_millis() as u64))
        );
        tracing::warn!(key = %self.status.key, "{message}");
        self.record_error(&message);
        self.write();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounds_down_and_handles_unknown() {
        assert_eq!(percent(0, 0), 0);
        assert_eq!(percent(5, 10), 50);
        assert_eq!(percent(999, 1000), 99);
        assert_eq!(percent(1000, 1000), 100);
        assert_eq!(percent(u64::MAX, u64::MAX), 100);
    }

    #[test]
    fn status_files_and_leftover_temporaries_name_their_key() {
        assert_eq!(key_of("img.json"), Some("img"));
        assert_eq!(key_of(".img.json.4321.tmp"), Some("img"));
        assert_eq!(key_of(".a.b.json.7.tmp"), Some("a.b"));
        for other in [
            ".json",
            "img.txt",
            ".img.json.tmp",
            ".img.json.x1.tmp",
            "..json.1.tmp",
        ] {
            assert_eq!(key_of(other), None, "{other}");
        }
        // The temporary confkit writes is the one recognised.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.json");
        confkit::replace_file(&path, b"{}").expect("write");
        let tmp = format!(".k.json.{}.tmp", std::process::id());
        assert_eq!(key_of(&tmp), Some("k"));
    }

    #[test]
    fn progress_throttle() {
        let ms = Duration::from_millis;
        // Nothing new: never.
        assert!(!progress_due(ms(10_000), 5, 5, 100));
        // 1 % of the total: at once.
        assert!(progress_due(ms(1), 0, 10, 1000));
        // Less than 1 %: only after 500 ms.
        assert!(!progress_due(ms(100), 0, 9, 1000));
        assert!(progress_due(ms(500), 0, 9, 1000));
        // Unknown total: by time alone.
        assert!(!progress_due(ms(100), 0, 1 << 30, 0));
        assert!(progress_due(ms(600), 0, 1, 0));
    }

    #[test]
    fn written_atomically_and_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = Reporter::new(dir.path(), "k1", "image", Some("ab"), 100);
        r.state(State::Downloading);
        r.progress(50, Some(100));
        let err = DownloadError::Stalled(Duration::from_secs(1));
        r.retrying(&err, 1, Duration::from_millis(1500));
        r.fail("gave up");
        let text = std::fs::read_to_string(dir.path().join("k1.json")).expect("read");
        let s: Status = serde_json::from_str(&text).expect("parse");
        assert_eq!(s.state, State::Error);
        assert_eq!(s.progress, 50);
        assert_eq!(s.retries, 1);
        assert!(s.first_error.expect("first").message.contains("stalled"));
        assert_eq!(s.last_error.expect("last").message, "gave up");
        // The fields the next issue fills are there, as null.
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert!(v["bridge"].is_null() && v["resolved_by"].is_null());
        // No temporary file left over.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("k1.json")]);
    }
}
