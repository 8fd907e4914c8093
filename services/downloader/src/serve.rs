//! `downloader serve`: request files in, status files and verified files out.
//!
//! One event loop owns the table of requests (key → running job). It wakes on a change
//! in the request directory (then rescans it whole), on the heartbeat tick, and on
//! shutdown; it never polls. Each request runs as its own task that writes its own
//! status file; a semaphore bounds how many transfer at once, and requests for the same
//! sha256 take turns (they share one target and one `.part`).
//!
//! - A new request starts; a malformed one gets an `error` status naming file and field.
//! - A changed request restarts (its `.part` kept when the sha256 is unchanged); a failed
//!   request whose file is rewritten or touched is retried.
//! - A removed request is cancelled, its `.part` deleted (unless another request wants
//!   the same file) and its status file removed.
//! - SIGTERM: every job is cancelled and its `.part` kept, so the next start resumes.

use crate::engine::{self, Job, Settings};
use crate::error::DownloadError;
use crate::heartbeat;
use crate::part::part_path;
use crate::request::{self, Request, RequestError};
use crate::status::{self, Reporter};
use crate::watch::DirWatch;
use anyhow::Context;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Everything `serve` is told on its command line.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub config_dir: PathBuf,
    pub status_dir: PathBuf,
    pub download_dir: PathBuf,
    pub max_concurrent: usize,
    pub settings: Settings,
    pub heartbeat_file: Option<PathBuf>,
    pub heartbeat_interval: Duration,
}

/// What the job tasks share.
struct Shared {
    opts: ServeOptions,
    permits: Semaphore,
    /// One lock per sha256: requests for the same file take turns.
    same_file: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Shared {
    fn file_lock(&self, sha256: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.same_file.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(sha256.to_string()).or_default().clone()
    }
}

/// A request being worked on (or finished: its task may have ended).
struct Running {
    bytes: Vec<u8>,
    mtime: Option<SystemTime>,
    sha256: Option<String>,
    cancel: CancellationToken,
    failed: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

/// Runs until `shutdown` resolves (or the request directory can't be watched).
pub async fn run(opts: ServeOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    for dir in [&opts.config_dir, &opts.status_dir, &opts.download_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Watch before the first scan: a request written in between is then not missed.
    let watch = DirWatch::new(&opts.config_dir)
        .with_context(|| format!("cannot watch {}", opts.config_dir.display()))?;
    info!(
        "serving requests from {} (status in {}, files in {}, {} at a time)",
        opts.config_dir.display(),
        opts.status_dir.display(),
        opts.download_dir.display(),
        opts.max_concurrent
    );
    let shared = Arc::new(Shared {
        permits: Semaphore::new(opts.max_concurrent.max(1)),
        same_file: Mutex::new(HashMap::new()),
        opts,
    });
    let mut jobs: HashMap<String, Running> = HashMap::new();
    rescan(&shared, &mut jobs).await;
    remove_orphans(&shared.opts, &jobs);

    let mut beat = tokio::time::interval(shared.opts.heartbeat_interval);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            changed = watch.changed() => match changed {
                Ok(()) => rescan(&shared, &mut jobs).await,
                Err(e) => break Err(anyhow::Error::new(e).context("watching the request directory")),
            },
            _ = beat.tick() => {
                if let Some(file) = &shared.opts.heartbeat_file {
                    if let Err(e) = heartbeat::touch(file) {
                        warn!(file = %file.display(), "heartbeat: {e}");
                    }
                }
            }
        }
    };
    // Cancel everything, keep every `.part`: the next start resumes.
    for running in jobs.values() {
        running.cancel.cancel();
    }
    for (_, running) in jobs.drain() {
        let _ = running.task.await;
    }
    info!("stopped");
    result
}

/// Brings the job table in line with the request directory.
async fn rescan(shared: &Arc<Shared>, jobs: &mut HashMap<String, Running>) {
    let found = match read_requests(&shared.opts.config_dir) {
        Ok(found) => found,
        Err(e) => {
            // Not "every request was removed": a directory we can't read says nothing.
            warn!(dir = %shared.opts.config_dir.display(), "cannot read: {e}");
            return;
        }
    };
    let removed: Vec<String> = jobs
        .keys()
        .filter(|k| !found.contains_key(*k))
        .cloned()
        .collect();
    for key in removed {
        if let Some(running) = jobs.remove(&key) {
            info!(key = %key, "request removed; cancelling");
            stop(shared, jobs, running, true).await;
            remove_quietly(&shared.opts.status_dir.join(format!("{key}.json")));
        }
    }
    for (key, (bytes, mtime)) in found {
        if let Some(running) = jobs.get(&key) {
            let same = running.bytes == bytes;
            let retry = running.failed.load(Ordering::SeqCst) && running.mtime != mtime;
            if same && !retry {
                continue;
            }
            if let Some(old) = jobs.remove(&key) {
                info!(
                    key = %key,
                    "request {}; restarting",
                    if same {
                        "touched after an error"
                    } else {
                        "changed"
                    }
                );
                let file_changed = request::parse(Path::new(&key), &bytes)
                    .map(|r| Some(r.sha256) != old.sha256)
                    .unwrap_or(true);
                stop(shared, jobs, old, file_changed).await;
            }
        }
        let running = start(shared, &key, bytes, mtime);
        jobs.insert(key, running);
    }
}

/// Cancels a job and waits for it; with `discard`, deletes its `.part` unless another
/// request still wants the same file.
async fn stop(shared: &Shared, jobs: &HashMap<String, Running>, running: Running, discard: bool) {
    running.cancel.cancel();
    let _ = running.task.await;
    if !discard {
        return;
    }
    if let Some(sha) = &running.sha256 {
        if jobs.values().any(|r| r.sha256.as_ref() == Some(sha)) {
            return;
        }
        remove_quietly(&part_path(&shared.opts.download_dir.join(sha)));
    }
}

fn start(shared: &Arc<Shared>, key: &str, bytes: Vec<u8>, mtime: Option<SystemTime>) -> Running {
    let file = shared.opts.config_dir.join(format!("{key}.json"));
    let parsed = request::parse(&file, &bytes);
    let sha256 = parsed.as_ref().ok().map(|r| r.sha256.clone());
    let cancel = CancellationToken::new();
    let failed = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(job(
        shared.clone(),
        key.to_string(),
        parsed,
        cancel.clone(),
        failed.clone(),
    ));
    Running {
        bytes,
        mtime,
        sha256,
        cancel,
        failed,
        task,
    }
}

/// One request's life: status `initial`, wait for its turn, download, final status.
async fn job(
    shared: Arc<Shared>,
    key: String,
    parsed: Result<Request, RequestError>,
    cancel: CancellationToken,
    failed: Arc<AtomicBool>,
) {
    let opts = &shared.opts;
    if key.len() > status::MAX_KEY_BYTES {
        // No status can be written for it (`status::MAX_KEY_BYTES`): say so where zedinit
        // keeps our log, and don't download what nobody could be told about.
        error!(
            key = %key,
            "request refused: its name is {} bytes, at most {} (the status file could not be written); use a shorter <key>.json",
            key.len(),
            status::MAX_KEY_BYTES
        );
        failed.store(true, Ordering::SeqCst);
        return;
    }
    let req = match parsed {
        Ok(req) => req,
        Err(e) => {
            let name = e.name.clone().unwrap_or_else(|| key.clone());
            let mut rep = Reporter::new(&opts.status_dir, &key, &name, None, 0);
            error!(key = %key, "invalid request: {e}");
            rep.fail(&format!("invalid request: {e}"));
            failed.store(true, Ordering::SeqCst);
            return;
        }
    };
    let mut rep = Reporter::new(
        &opts.status_dir,
        &key,
        &req.name,
        Some(&req.sha256),
        req.size,
    );
    let target = opts.download_dir.join(&req.sha256);
    info!(
        key = %key,
        "{} ({} bytes) -> {}",
        req.url,
        req.size,
        target.display()
    );
    let job = Job {
        url: req.url,
        sha256: req.sha256,
        size: Some(req.size),
        ca_chain: req.ca_chain,
        target,
    };
    // Wait for our turn (same file, then a transfer slot), cancellable. The download
    // itself watches `cancel` on its own, so it can flush its `.part` before returning.
    let file_lock = shared.file_lock(&job.sha256);
    let turn = tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        turn = async {
            let same_file = file_lock.lock().await;
            let permit = shared.permits.acquire().await.ok()?;
            Some((same_file, permit))
        } => turn,
    };
    let result = match turn {
        None => Err(DownloadError::Cancelled),
        Some(_turn) => engine::download(&job, &opts.settings, &mut rep, &cancel).await,
    };
    // With no transfer left, neither is their heap (`heap.rs`); a moment later, as the
    // connection's task and its buffers are dropped by the runtime after the transfer.
    let idle = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(crate::heap::SETTLE).await;
        if idle.permits.available_permits() >= idle.opts.max_concurrent.max(1) {
            crate::heap::give_back();
        }
    });
    match result {
        Ok(outcome) => {
            info!(
                key = %key,
                "{} {} ({} bytes{})",
                if outcome.already_present {
                    "already verified:"
                } else {
                    "downloaded"
                },
                outcome.path.display(),
                outcome.size,
                if outcome.resumed_from > 0 {
                    format!(", resumed at {}", outcome.resumed_from)
                } else {
                    String::new()
                }
            );
            rep.downloaded(&outcome.path, outcome.size);
        }
        Err(DownloadError::Cancelled) => {}
        Err(e) => {
            let message = e.to_string();
            error!(key = %key, "{message}");
            rep.fail(&message);
            failed.store(true, Ordering::SeqCst);
        }
    }
}

/// `<key>.json` files in `dir` (dotfiles are writers' temporaries): content and mtime.
type Found = BTreeMap<String, (Vec<u8>, Option<SystemTime>)>;

fn read_requests(dir: &Path) -> std::io::Result<Found> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(key) = name.strip_suffix(".json") else {
            continue;
        };
        if key.is_empty() || name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let mtime = entry.metadata().ok().and_then(|m| m.modified().ok());
                found.insert(key.to_string(), (bytes, mtime));
            }
            // Removed between listing and reading: the next event covers it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!(file = %path.display(), "cannot read: {e}"),
        }
    }
    Ok(found)
}

/// At start: status files of requests that are gone, leftover temporaries, and `.part`
/// files no request wants (their request was removed while we were down).
fn remove_orphans(opts: &ServeOptions, jobs: &HashMap<String, Running>) {
    if let Ok(entries) = std::fs::read_dir(&opts.status_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // `<key>.json`, or a temporary a crash left behind (`status::key_of`).
            let orphan = status::key_of(&name).is_some_and(|k| !jobs.contains_key(k));
            if orphan {
                remove_quietly(&entry.path());
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(&opts.download_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(sha) = name.strip_suffix(".part") else {
                continue;
            };
            // Only our own names: anything else in the directory is not ours to judge.
            let ours = sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit());
            if ours && !jobs.values().any(|r| r.sha256.as_deref() == Some(sha)) {
                info!(file = %name, "removing (no request wants it)");
                remove_quietly(&entry.path());
            }
        }
    }
}

fn remove_quietly(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!(file = %path.display(), "cannot remove: {e}"),
    }
}
