//! One download from start to a verified file: attempts, resume, retries with backoff.
//!
//! An attempt resolves the host ([`Resolver`]), re-hashes what the `.part` keeps, asks
//! for the rest with `Range`, streams into the `.part` while hashing, and stops on a
//! stall (no byte for `stall_timeout`) or on more bytes than declared. Only a complete
//! body whose sha256 matches is committed ([`PartFile::commit`]). Failures that may go
//! away by themselves are retried after a jittered exponential delay, capped
//! ([`DownloadError::verdict`] says which); `retries` bounds the consecutive attempts
//! that made no progress, or is unlimited (an attempt whose transfer broke after
//! receiving bytes resets the count: a flaky link that keeps moving is not given up on).
//! A `.local` endpoint whose answer failed the download is set aside for the next
//! lookups ([`SetAside`]): another app may have answered for the name.
//!
//! The engine reports through an [`Observer`] (status files for `serve`, a progress bar
//! for `fetch`) and stops promptly when its `CancellationToken` fires, keeping the
//! `.part` (whoever cancelled decides whether it goes).

use crate::backoff::{Backoff, XorShift};
use crate::client;
use crate::error::{DownloadError, Verdict, chain, from_send};
use crate::part::{PartFile, available_space, hash_file};
use crate::resolve::{Endpoint, Resolver, SetAside};
use crate::status::State;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_RANGE, HeaderMap, LOCATION, RANGE};
use reqwest::{Certificate, StatusCode, Url};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// What to download and where it goes.
#[derive(Debug, Clone)]
pub struct Job {
    pub url: Url,
    /// Expected digest, lowercase hex.
    pub sha256: String,
    /// Declared size: the body must be exactly this long. `None` (fetch without
    /// `--size`): the server's `Content-Length`, when it sends one, is the limit.
    pub size: Option<u64>,
    /// Trust only these roots for HTTPS (instead of the system's).
    pub ca_chain: Option<Vec<Certificate>>,
    /// Final path; the `.part` is next to it.
    pub target: PathBuf,
}

/// How hard to try.
#[derive(Debug, Clone)]
pub struct Settings {
    /// No byte (or no connect, no response headers) for this long ends the attempt.
    pub stall_timeout: Duration,
    /// Consecutive attempts without progress allowed after the first.
    pub retries: RetryLimit,
    pub backoff: Backoff,
    pub resolver: Resolver,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            stall_timeout: Duration::from_secs(30),
            retries: RetryLimit::Unlimited,
            backoff: Backoff::default(),
            resolver: Resolver::System,
        }
    }
}

/// How many consecutive attempts without progress may follow a failed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryLimit {
    /// For as long as the download is wanted (a service: someone removes the request).
    Unlimited,
    AtMost(u32),
}

impl RetryLimit {
    /// Whether `failures` consecutive failed retries already used the allowance.
    pub fn reached(self, failures: u32) -> bool {
        match self {
            RetryLimit::Unlimited => false,
            RetryLimit::AtMost(n) => failures >= n,
        }
    }
}

impl std::str::FromStr for RetryLimit {
    type Err = String;

    /// `unlimited` or a number.
    fn from_str(text: &str) -> Result<Self, String> {
        if text == "unlimited" {
            return Ok(RetryLimit::Unlimited);
        }
        text.parse()
            .map(RetryLimit::AtMost)
            .map_err(|_| format!("{text:?}: a number of retries, or `unlimited`"))
    }
}

/// How a download ended well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub path: PathBuf,
    pub size: u64,
    /// The target was already there and verified: no transfer.
    pub already_present: bool,
    /// Bytes taken from a kept `.part` by the last attempt (0: from the start).
    pub resumed_from: u64,
}

/// Receives what happens, in order. All methods default to nothing.
pub trait Observer: Send {
    /// `Resolving` before each attempt's lookup, `Downloading` once connected.
    fn state(&mut self, _state: State) {}
    fn endpoint(&mut self, _endpoint: &Endpoint) {}
    /// After every chunk (throttling is the observer's business).
    fn progress(&mut self, _current: u64, _total: Option<u64>) {}
    /// An attempt failed and another follows after `delay`; `retries` counts them all.
    fn retrying(&mut self, _error: &DownloadError, _retries: u32, _delay: Duration) {}
}

/// Downloads `job`, retrying per `settings`, until the verified file is in place, a
/// failure is final, or `cancel` fires (→ [`DownloadError::Cancelled`], `.part` kept).
pub async fn download(
    job: &Job,
    settings: &Settings,
    obs: &mut dyn Observer,
    cancel: &CancellationToken,
) -> Result<Outcome, DownloadError> {
    let mut rng = XorShift::from_entropy();
    let mut failures = 0u32;
    let mut retries = 0u32;
    let mut restarted_after_mismatch = false;
    let mut part: Option<PartFile> = None;
    let mut set_aside = SetAside::default();
    loop {
        let mut received = 0u64;
        let mut served_by = None;
        let result = tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(DownloadError::Cancelled),
            r = attempt(job, settings, obs, &mut part, &mut received, &mut served_by, &mut set_aside) => r,
        };
        let err = match result {
            Ok(outcome) => return Ok(outcome),
            Err(e) => e,
        };
        if let DownloadError::Cancelled = err {
            if let Some(p) = part.as_mut() {
                // Let an interrupted write land, so a later run counts what is there.
                p.flush().await;
            }
            return Err(err);
        }
        let err = settle_after(&mut part, err).await;
        if err.discards_part() {
            if let Some(p) = part.as_mut() {
                p.truncate().await?;
            }
        }
        let from_local = served_by.as_ref().is_some_and(|ep| ep.bridge.is_some());
        let verdict = err.verdict(from_local);
        let mut retry = verdict != Verdict::Final;
        if let (Verdict::RetryElsewhere, Some(ep)) = (verdict, &served_by) {
            set_aside.add(ep);
        }
        if let DownloadError::HashMismatch { resumed: true, .. } = err {
            // One fresh start when kept bytes were involved; never a loop.
            retry = retry && !restarted_after_mismatch;
            restarted_after_mismatch = true;
        }
        // Progress resets the count only when the transfer itself broke: bytes that
        // failed the download (a wrong hash, too many) are no progress.
        if received > 0 && verdict == Verdict::Retry && !err.discards_part() {
            failures = 0;
        }
        let limit_reached = retry && settings.retries.reached(failures);
        if !retry || limit_reached {
            if let Some(p) = part.take() {
                if p.is_empty() {
                    // Nothing worth keeping: don't leave an empty `.part` behind.
                    let _ = p.remove().await;
                }
            }
            if limit_reached && retries > 0 {
                return Err(DownloadError::GaveUp {
                    retries,
                    last: Box::new(err),
                });
            }
            return Err(err);
        }
        let delay = settings.backoff.delay(failures, &mut rng);
        failures = failures.saturating_add(1);
        retries = retries.saturating_add(1);
        obs.retrying(&err, retries, delay);
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(DownloadError::Cancelled),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Ends a failed attempt's writes: what it received is in the `.part` before the failure
/// is reported (a retry's status, a `.part` kept for a later run), and the threads end
/// rather than idle through a backoff. A write error found now is the real failure.
async fn settle_after(part: &mut Option<PartFile>, err: DownloadError) -> DownloadError {
    let Some(p) = part.as_mut() else {
        return err;
    };
    match p.settle().await {
        Ok(()) => err,
        Err(write_error) => write_error,
    }
}

/// One try. `part` persists across tries (opened and locked once); `received` counts
/// the body bytes this try got, so the caller can tell progress from a dead end;
/// `served_by` is the endpoint that answered (whose answer a failure is about);
/// `set_aside` gathers the endpoints that refused connections, for the next lookups.
async fn attempt(
    job: &Job,
    settings: &Settings,
    obs: &mut dyn Observer,
    part_slot: &mut Option<PartFile>,
    received: &mut u64,
    served_by: &mut Option<Endpoint>,
    set_aside: &mut SetAside,
) -> Result<Outcome, DownloadError> {
    if part_slot.is_none() {
        let p = PartFile::open(&job.target).await?;
        // Checked under the lock: a concurrent owner may have just committed it.
        if let Some(outcome) = already_in_place(job).await? {
            if p.is_empty() {
                let _ = p.remove().await;
            }
            return Ok(outcome);
        }
        *part_slot = Some(p);
    }
    let stall = settings.stall_timeout;

    obs.state(State::Resolving);
    let endpoint = timeout(stall, settings.resolver.resolve(&job.url, set_aside))
        .await
        .map_err(|_| DownloadError::Resolve {
            host: job.url.host_str().unwrap_or_default().to_string(),
            message: format!("no answer within {}", humantime::format_duration(stall)),
        })??;

    let Some(part) = part_slot.as_mut() else {
        return Err(DownloadError::Protocol("internal: no .part".into()));
    };
    let kept = part.rehash().await?;
    if let Some(size) = job.size {
        if kept > size {
            part.truncate().await?;
        } else if kept == size {
            // Everything is already here (a crash right before the rename): verify only.
            return finish(job, part_slot, kept).await;
        }
        check_space(part.path(), size - part.len())?;
    }

    obs.state(State::Downloading);
    obs.progress(part.len(), job.size);
    let from = part.len();
    // The endpoint, then (a `.local` host answering on several bridges) the others in
    // order: a connect failure moves on to the next; anything else is this attempt's end.
    let mut candidates: Vec<Endpoint> = endpoint.alternates.clone();
    candidates.insert(0, endpoint);
    let mut next = 0;
    let mut response = loop {
        let Some(ep) = candidates.get(next) else {
            return Err(DownloadError::Protocol("internal: no endpoint".into()));
        };
        next += 1;
        obs.endpoint(ep);
        let url = ep.url_for(&job.url);
        let client = client::build(&url, ep, job.ca_chain.as_deref(), stall)?;
        let mut request = client
            .get(url)
            // The hash is over the bytes as stored: no transfer encoding games.
            .header(ACCEPT_ENCODING, "identity");
        if from > 0 {
            request = request.header(RANGE, format!("bytes={from}-"));
        }
        match timeout(stall, request.send()).await {
            Ok(Ok(response)) => {
                *served_by = Some(ep.clone());
                break response;
            }
            Ok(Err(e)) if e.is_connect() => {
                set_aside.add(ep);
                let err = from_send(&e);
                if let DownloadError::Certificate { .. } = err {
                    // A TLS handshake is part of reqwest's connect: this one answered.
                    *served_by = Some(ep.clone());
                    return Err(err);
                }
                if next >= candidates.len() {
                    return Err(err);
                }
                tracing::warn!(
                    addr = %ep.addr,
                    "cannot connect ({}); trying the next bridge",
                    chain(&e)
                );
            }
            Ok(Err(e)) => {
                *served_by = Some(ep.clone());
                return Err(from_send(&e));
            }
            Err(_) => return Err(DownloadError::Stalled(stall)),
        }
    };

    let status = response.status();
    let server_total = if from > 0 && status == StatusCode::PARTIAL_CONTENT {
        let (start, total) = content_range(response.headers())?;
        if start != from {
            part.truncate().await?;
            return Err(DownloadError::Protocol(format!(
                "asked to resume at byte {from}, server answered from byte {start}; starting over"
            )));
        }
        total
    } else if status == StatusCode::OK {
        if from > 0 {
            // The server ignored Range: what it sends is the whole file.
            part.truncate().await?;
            obs.progress(0, job.size);
        }
        response.content_length()
    } else if status == StatusCode::RANGE_NOT_SATISFIABLE && from > 0 {
        part.truncate().await?;
        return Err(DownloadError::Protocol(format!(
            "server refused to resume at byte {from}; starting over"
        )));
    } else if status.is_redirection() {
        return Err(DownloadError::Redirect {
            status,
            url: job.url.to_string(),
            location: location(response.headers()),
        });
    } else {
        return Err(DownloadError::HttpStatus {
            status,
            url: job.url.to_string(),
        });
    };
    if let (Some(declared), Some(server)) = (job.size, server_total) {
        if server != declared {
            return Err(DownloadError::SizeMismatch { declared, server });
        }
    }
    let limit = job.size.or(server_total);

    loop {
        let chunk = match timeout(stall, response.chunk()).await {
            Err(_) => return Err(DownloadError::Stalled(stall)),
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                return Err(match limit {
                    Some(expected) => DownloadError::Truncated {
                        received: part.len(),
                        expected,
                    },
                    None => DownloadError::Transport(chain(&e)),
                });
            }
        };
        let after = part.len() + chunk.len() as u64;
        if let Some(declared) = limit {
            if after > declared {
                // Not one byte past the declared size reaches the disk.
                return Err(DownloadError::Oversize {
                    declared,
                    received: after,
                });
            }
        }
        let n = chunk.len() as u64;
        part.append(chunk).await?;
        *received += n;
        obs.progress(part.len(), limit);
    }
    if let Some(expected) = limit {
        if part.len() < expected {
            return Err(DownloadError::Truncated {
                received: part.len(),
                expected,
            });
        }
    }
    finish(job, part_slot, from).await
}

/// Checks the digest of what the `.part` holds and commits it.
async fn finish(
    job: &Job,
    part_slot: &mut Option<PartFile>,
    resumed_from: u64,
) -> Result<Outcome, DownloadError> {
    let Some(part) = part_slot.as_mut() else {
        return Err(DownloadError::Protocol("internal: no .part".into()));
    };
    let actual = part.digest_hex().await?;
    if actual != job.sha256 {
        return Err(DownloadError::HashMismatch {
            expected: job.sha256.clone(),
            actual,
            resumed: resumed_from > 0,
        });
    }
    let size = part.len();
    let Some(part) = part_slot.take() else {
        return Err(DownloadError::Protocol("internal: no .part".into()));
    };
    let path = part.commit().await?;
    Ok(Outcome {
        path,
        size,
        already_present: false,
        resumed_from,
    })
}

/// The target exists: if its digest matches, the job is done; if not, it is not ours to
/// trust (a crash can't produce it: we only rename verified files), so it goes.
async fn already_in_place(job: &Job) -> Result<Option<Outcome>, DownloadError> {
    let meta = match tokio::fs::metadata(&job.target).await {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DownloadError::io("cannot stat", &job.target, e)),
    };
    if hash_file(&job.target).await? == job.sha256 {
        return Ok(Some(Outcome {
            path: job.target.clone(),
            size: meta.len(),
            already_present: true,
            resumed_from: 0,
        }));
    }
    tracing::warn!(
        file = %job.target.display(),
        "does not match its sha256; replacing it"
    );
    tokio::fs::remove_file(&job.target)
        .await
        .map_err(|e| DownloadError::io("cannot remove", &job.target, e))?;
    Ok(None)
}

/// Fails early when the rest of the file can't fit, rather than after filling the disk
/// that other services share.
fn check_space(part: &Path, needed: u64) -> Result<(), DownloadError> {
    let dir = part.parent().unwrap_or(Path::new("."));
    match available_space(dir) {
        Some(available) if available < needed => Err(DownloadError::NoSpace {
            dir: dir.to_path_buf(),
            needed,
            available,
        }),
        _ => Ok(()),
    }
}

/// A redirect's `Location`, for a message: the server's text, so quoted with its
/// control characters escaped, and cut at 200 characters.
fn location(headers: &HeaderMap) -> String {
    let Some(value) = headers.get(LOCATION) else {
        return "none (no Location header)".into();
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let mut shown: String = text.chars().take(200).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// `Content-Range: bytes START-END/TOTAL` (RFC 9110 §14.4) → (START, TOTAL if known).
fn content_range(headers: &HeaderMap) -> Result<(u64, Option<u64>), DownloadError> {
    let bad = |v: &str| DownloadError::Protocol(format!("bad Content-Range {v:?}"));
    let value = headers
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| DownloadError::Protocol("206 without Content-Range".into()))?;
    let rest = value.strip_prefix("bytes ").ok_or_else(|| bad(value))?;
    let (range, total) = rest.split_once('/').ok_or_else(|| bad(value))?;
    let (start, _end) = range.split_once('-').ok_or_else(|| bad(value))?;
    let start = start.trim().parse().map_err(|_| bad(value))?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().map_err(|_| bad(value))?),
    };
    Ok((start, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_RANGE, HeaderValue::from_str(v).expect("header"));
        h
    }

    #[test]
    fn content_range_forms() {
        assert_eq!(
            content_range(&headers("bytes 100-199/200")).expect("ok"),
            (100, Some(200))
        );
        assert_eq!(
            content_range(&headers("bytes 5-9/*")).expect("ok"),
            (5, None)
        );
        assert!(content_range(&headers("items 1-2/3")).is_err());
        assert!(content_range(&HeaderMap::new()).is_err());
    }
}
