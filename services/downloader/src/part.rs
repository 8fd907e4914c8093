//! The `.part` file: bytes received so far for one target, next to it (same filesystem,
//! so the final rename is atomic), locked while a download owns it.
//!
//! Invariants: the target name is only ever produced by [`PartFile::commit`], after the
//! caller checked the digest, and after the data and then the directory entry are on
//! disk (fsync file, rename, fsync directory: rename(2) alone may reach the disk before
//! the data does). The lock is flock(2) on the `.part` itself, so a second process (a
//! `fetch` into the download directory, a second `serve`) cannot interleave writes.

use crate::error::DownloadError;
use crate::pipeline::Pipeline;
use bytes::Bytes;
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `<target>.part`.
pub fn part_path(target: &Path) -> PathBuf {
    let mut name = target
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".part");
    target.with_file_name(name)
}

/// An open, locked `.part` and the digest of what it holds.
///
/// Appends go to a [`Pipeline`] (a hashing and a writing thread) started at the first
/// append; [`PartFile::settle`] waits for it to finish and takes the hasher back. `len`
/// counts every appended byte, written or still queued; everything that needs the digest
/// or the file as appended (digest, re-hash, truncate, commit, remove) settles first.
/// The file always holds a prefix of what was appended (writes go in order and stop at
/// the first failure); after a failed write the digest is unknown until a re-hash or a
/// truncate.
pub struct PartFile {
    path: PathBuf,
    target: PathBuf,
    /// The locked file, shared with the writer thread and blocking tasks: the lock is
    /// released (nix's `Flock` unlocks on drop) only when the last of them is done, so a
    /// dropped download's queued writes or a cancelled commit's rename never run after
    /// a new owner has taken the lock.
    lock: Arc<Locked>,
    /// While appending: the threads, which hold the hasher until [`Self::settle`].
    pipeline: Option<Pipeline>,
    len: u64,
    hasher: Sha256,
    /// A write failed: `len` and `hasher` no longer describe the file.
    stale: bool,
}

impl PartFile {
    /// Opens (creating if needed) and locks the `.part` for `target`. Does not read it:
    /// call [`PartFile::rehash`] before appending.
    pub async fn open(target: &Path) -> Result<PartFile, DownloadError> {
        let path = part_path(target);
        let p = path.clone();
        let lock = tokio::task::spawn_blocking(move || -> Result<_, DownloadError> {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .custom_flags(nix::libc::O_CLOEXEC)
                .open(&p)
                .map_err(|e| DownloadError::io("cannot open", &p, e))?;
            Flock::lock(file, FlockArg::LockExclusiveNonblock)
                .map(|lock| Arc::new(Locked(lock)))
                .map_err(|_| DownloadError::Busy(p.clone()))
        })
        .await
        .map_err(|e| DownloadError::Protocol(format!("open task failed: {e}")))??;
        Ok(PartFile {
            path,
            target: target.to_path_buf(),
            lock,
            pipeline: None,
            len: 0,
            hasher: Sha256::new(),
            stale: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes held.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Re-reads what is kept and hashes it: after a restart or a dropped connection the
    /// hasher must cover the kept bytes before new ones are appended.
    pub async fn rehash(&mut self) -> Result<u64, DownloadError> {
        self.settle().await?;
        let path = self.path.clone();
        let (len, hasher) = tokio::task::spawn_blocking(move || -> Result<_, DownloadError> {
            let mut file =
                File::open(&path).map_err(|e| DownloadError::io("cannot read", &path, e))?;
            hash_reader(&mut file).map_err(|e| DownloadError::io("cannot read", &path, e))
        })
        .await
        .map_err(|e| DownloadError::Protocol(format!("hash task failed: {e}")))??;
        self.len = len;
        self.hasher = hasher;
        self.stale = false;
        Ok(len)
    }

    /// Drops everything kept (a server that ignored `Range`, bytes found to be wrong,
    /// space a full disk needs back).
    pub async fn truncate(&mut self) -> Result<(), DownloadError> {
        // The bytes go anyway: a write that failed on them (a full disk) doesn't matter.
        let _ = self.settle().await;
        let file = self.lock.clone();
        let path = self.path.clone();
        blocking("truncate", move || {
            file.set_len(0)
                .map_err(|e| DownloadError::io("cannot truncate", &path, e))
        })
        .await?;
        self.len = 0;
        self.hasher = Sha256::new();
        self.stale = false;
        Ok(())
    }

    /// Queues `data` to be hashed and written (the threads start on first use). A write
    /// error surfaces here, at the next append after it, or at [`Self::settle`].
    pub async fn append(&mut self, data: Bytes) -> Result<(), DownloadError> {
        let pipeline = match &mut self.pipeline {
            Some(p) => p,
            none => {
                // The hasher moves to the threads only once they run (a failed start
                // keeps it, and the digest with it).
                let started = Pipeline::start(self.lock.clone(), self.len, self.hasher.clone())
                    .map_err(|e| DownloadError::io("cannot start writing", &self.path, e))?;
                none.insert(started)
            }
        };
        self.len += data.len() as u64;
        if let Err(e) = pipeline.push(data).await {
            // The writer has stopped, and the hasher with it.
            self.pipeline = None;
            self.stale = true;
            return Err(DownloadError::io("cannot write", &self.path, e));
        }
        Ok(())
    }

    /// Waits until every appended byte is in the file and hashed, and the threads have
    /// ended; or returns the write error that stopped them. Cancel-safe.
    pub async fn settle(&mut self) -> Result<(), DownloadError> {
        let Some(pipeline) = self.pipeline.as_mut() else {
            return Ok(());
        };
        let finished = pipeline.finish().await;
        self.pipeline = None;
        match finished {
            Ok(hasher) => {
                self.hasher = hasher;
                Ok(())
            }
            Err(e) => {
                self.stale = true;
                Err(DownloadError::io("cannot write", &self.path, e))
            }
        }
    }

    /// Hex sha256 of the bytes held (after the appends have settled).
    pub async fn digest_hex(&mut self) -> Result<String, DownloadError> {
        self.settle().await?;
        if self.stale {
            return Err(DownloadError::Protocol(
                "internal: the .part's digest is unknown after a failed write".into(),
            ));
        }
        Ok(hex(&self.hasher.clone().finalize()))
    }

    /// Publishes the `.part` under the target name: the last writes (their error, ENOSPC
    /// included, before we claim the data is there), fsync the data, rename, fsync the
    /// directory. The caller has checked the digest.
    pub async fn commit(mut self) -> Result<PathBuf, DownloadError> {
        self.settle().await?;
        let file = self.lock.clone();
        let (path, target) = (self.path.clone(), self.target.clone());
        blocking("commit", move || {
            file.sync_all()
                .map_err(|e| DownloadError::io("cannot fsync", &path, e))?;
            std::fs::rename(&path, &target)
                .map_err(|e| DownloadError::io("cannot rename into place", &target, e))?;
            sync_dir(&target)
        })
        .await?;
        Ok(self.target)
    }

    /// Deletes the `.part` (while still holding its lock, so nobody is appending).
    pub async fn remove(mut self) -> Result<(), DownloadError> {
        // The file goes: a write error on its last bytes doesn't matter.
        let _ = self.settle().await;
        match tokio::fs::remove_file(&self.path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DownloadError::io("cannot remove", &self.path, e)),
        }
    }

    /// Lets queued writes land, so that what a later run finds is what we counted (a
    /// cancelled download: its `.part` is kept, or removed right after by the caller).
    pub async fn flush(&mut self) {
        let _ = self.settle().await;
    }
}

/// The `.part`'s descriptor holding its flock; shared (`Arc`) so the lock lasts as long
/// as anything may still write through it.
pub struct Locked(Flock<File>);

impl std::ops::Deref for Locked {
    type Target = File;
    fn deref(&self) -> &File {
        &self.0
    }
}

impl AsFd for Locked {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Runs `f` on tokio's blocking pool (file system calls that may wait for a disk).
async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, DownloadError> + Send + 'static,
) -> Result<T, DownloadError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DownloadError::Protocol(format!("{what} task failed: {e}")))?
}

/// fsync of the directory holding `path`, so a rename survives a power cut. Blocking.
fn sync_dir(path: &Path) -> Result<(), DownloadError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| DownloadError::io("cannot fsync directory", dir, e))
}

/// Length and sha256 of everything `reader` yields.
pub fn hash_reader(reader: &mut impl Read) -> std::io::Result<(u64, Sha256)> {
    let mut hasher = Sha256::new();
    // 64 KiB: each read's copy stays in the L2 cache for the hash to read back. With 1
    // MiB it went through memory: 1.17 s per GiB against 0.80 (BENCHMARKS.md, issue 5).
    let mut buf = vec![0u8; 64 << 10];
    let mut len = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hasher))
}

/// Hex sha256 of an existing file (a target found in place), off the async threads.
pub async fn hash_file(path: &Path) -> Result<String, DownloadError> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut f = File::open(&p).map_err(|e| DownloadError::io("cannot read", &p, e))?;
        let (_, h) = hash_reader(&mut f).map_err(|e| DownloadError::io("cannot read", &p, e))?;
        Ok(hex(&h.finalize()))
    })
    .await
    .map_err(|e| DownloadError::Protocol(format!("hash task failed: {e}")))?
}

/// Bytes the filesystem holding `dir` can still give an unprivileged writer.
pub fn available_space(dir: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    #[allow(clippy::useless_conversion)] // the widths differ between targets
    Some(u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size())))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_is_next_to_target() {
        assert_eq!(
            part_path(Path::new("/dl/abc")),
            PathBuf::from("/dl/abc.part")
        );
    }

    #[tokio::test]
    async fn append_commit_and_resume() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("t");
        let mut part = PartFile::open(&target).await.expect("open");
        assert_eq!(part.rehash().await.expect("rehash"), 0);
        part.append(Bytes::from_static(b"hello "))
            .await
            .expect("append");
        part.flush().await;
        drop(part);

        // A new owner (a restart) picks up the kept bytes and their digest.
        let mut part = PartFile::open(&target).await.expect("reopen");
        assert_eq!(part.rehash().await.expect("rehash"), 6);
        part.append(Bytes::from_static(b"world"))
            .await
            .expect("append");
        let expected = hex(&Sha256::digest(b"hello world"));
        assert_eq!(part.digest_hex().await.expect("digest"), expected);
        let path = part.commit().await.expect("commit");
        assert_eq!(std::fs::read(&path).expect("read"), b"hello world");
        assert!(!part_path(&target).exists());
        assert_eq!(hash_file(&target).await.expect("hash"), expected);
    }

    #[tokio::test]
    async fn a_dropped_part_keeps_its_lock_until_its_last_write_landed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("t");
        let mut part = PartFile::open(&target).await.expect("open");
        assert_eq!(part.rehash().await.expect("rehash"), 0);
        const MIB: usize = 1 << 20;
        for i in 0..40u8 {
            part.append(Bytes::from(vec![i; MIB]))
                .await
                .expect("append");
        }
        // Dropped with writes still queued (an aborted task): no settle.
        drop(part);
        let path = part_path(&target);
        let mut file = File::options().write(true).open(&path).expect("open");
        let locked = loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => break locked,
                Err((back, _)) => {
                    file = back;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        };
        // Whoever gets the lock finds every queued byte written, and no more to come.
        let len = std::fs::metadata(&path).expect("stat").len();
        assert_eq!(len, 40 * MIB as u64);
        drop(locked);
    }

    #[tokio::test]
    async fn second_owner_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("t");
        let _first = PartFile::open(&target).await.expect("open");
        match PartFile::open(&target).await {
            Err(DownloadError::Busy(_)) => {}
            other => panic!("expected Busy, got {:?}", other.err()),
        }
    }
}
