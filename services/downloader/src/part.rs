//! The `.part` file: bytes received so far for one target, next to it (same filesystem,
//! so the final rename is atomic), locked while a download owns it.
//!
//! Invariants: the target name is only ever produced by [`PartFile::commit`], after the
//! caller checked the digest, and after the data and then the directory entry are on
//! disk (fsync file, rename, fsync directory: rename(2) alone may reach the disk before
//! the data does). The lock is flock(2) on the `.part` itself, so a second process (a
//! `fetch` into the download directory, a second `serve`) cannot interleave writes.

use crate::error::DownloadError;
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

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
pub struct PartFile {
    path: PathBuf,
    target: PathBuf,
    /// Holds the lock; `writer` shares its open file description (dup), so the lock
    /// covers writes made through either.
    _lock: Flock<File>,
    writer: tokio::fs::File,
    len: u64,
    hasher: Sha256,
}

impl PartFile {
    /// Opens (creating if needed) and locks the `.part` for `target`. Does not read it:
    /// call [`PartFile::rehash`] before appending.
    pub async fn open(target: &Path) -> Result<PartFile, DownloadError> {
        let path = part_path(target);
        let p = path.clone();
        let (lock, writer) = tokio::task::spawn_blocking(move || -> Result<_, DownloadError> {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .custom_flags(nix::libc::O_CLOEXEC)
                .open(&p)
                .map_err(|e| DownloadError::io("cannot open", &p, e))?;
            let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
                .map_err(|_| DownloadError::Busy(p.clone()))?;
            let writer = lock
                .try_clone()
                .map_err(|e| DownloadError::io("dup", &p, e))?;
            Ok((lock, writer))
        })
        .await
        .map_err(|e| DownloadError::Protocol(format!("open task failed: {e}")))??;
        Ok(PartFile {
            path,
            target: target.to_path_buf(),
            _lock: lock,
            writer: tokio::fs::File::from_std(writer),
            len: 0,
            hasher: Sha256::new(),
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
    /// hasher must cover the kept bytes before new ones are appended. Positions the
    /// writer at the end.
    pub async fn rehash(&mut self) -> Result<u64, DownloadError> {
        let path = self.path.clone();
        let (len, hasher) = tokio::task::spawn_blocking(move || -> Result<_, DownloadError> {
            let mut file =
                File::open(&path).map_err(|e| DownloadError::io("cannot read", &path, e))?;
            hash_reader(&mut file).map_err(|e| DownloadError::io("cannot read", &path, e))
        })
        .await
        .map_err(|e| DownloadError::Protocol(format!("hash task failed: {e}")))??;
        self.writer
            .seek(SeekFrom::Start(len))
            .await
            .map_err(|e| DownloadError::io("cannot seek", &self.path, e))?;
        self.len = len;
        self.hasher = hasher;
        Ok(len)
    }

    /// Drops everything kept (a server that ignored `Range`, bytes found to be wrong).
    pub async fn truncate(&mut self) -> Result<(), DownloadError> {
        self.writer
            .set_len(0)
            .await
            .map_err(|e| DownloadError::io("cannot truncate", &self.path, e))?;
        self.writer
            .seek(SeekFrom::Start(0))
            .await
            .map_err(|e| DownloadError::io("cannot seek", &self.path, e))?;
        self.len = 0;
        self.hasher = Sha256::new();
        Ok(())
    }

    /// Appends and hashes `data`.
    pub async fn append(&mut self, data: &[u8]) -> Result<(), DownloadError> {
        self.writer
            .write_all(data)
            .await
            .map_err(|e| DownloadError::io("cannot write", &self.path, e))?;
        self.hasher.update(data);
        self.len += data.len() as u64;
        Ok(())
    }

    /// Hex sha256 of the bytes held.
    pub fn digest_hex(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }

    /// Publishes the `.part` under the target name: flush and fsync the data, rename,
    /// fsync the directory. The caller has checked the digest.
    pub async fn commit(mut self) -> Result<PathBuf, DownloadError> {
        // tokio's File hands writes to a thread: flush surfaces the last write's error
        // (ENOSPC included) before we claim the data is there.
        self.writer
            .flush()
            .await
            .map_err(|e| DownloadError::io("cannot write", &self.path, e))?;
        self.writer
            .sync_all()
            .await
            .map_err(|e| DownloadError::io("cannot fsync", &self.path, e))?;
        tokio::fs::rename(&self.path, &self.target)
            .await
            .map_err(|e| DownloadError::io("cannot rename into place", &self.target, e))?;
        sync_dir(&self.target).await?;
        Ok(self.target)
    }

    /// Deletes the `.part` (while still holding its lock, so nobody is appending).
    pub async fn remove(self) -> Result<(), DownloadError> {
        match tokio::fs::remove_file(&self.path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DownloadError::io("cannot remove", &self.path, e)),
        }
    }

    /// Flushes pending writes so that what a later run finds is what we counted.
    pub async fn flush(&mut self) {
        let _ = self.writer.flush().await;
    }
}

/// fsync of the directory holding `path`, so a rename survives a power cut.
async fn sync_dir(path: &Path) -> Result<(), DownloadError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    tokio::task::spawn_blocking(move || {
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| DownloadError::io("cannot fsync directory", &dir, e))
    })
    .await
    .map_err(|e| DownloadError::Protocol(format!("fsync task failed: {e}")))?
}

/// Length and sha256 of everything `reader` yields.
pub fn hash_reader(reader: &mut impl Read) -> std::io::Result<(u64, Sha256)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
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
        part.append(b"hello ").await.expect("append");
        part.flush().await;
        drop(part);

        // A new owner (a restart) picks up the kept bytes and their digest.
        let mut part = PartFile::open(&target).await.expect("reopen");
        assert_eq!(part.rehash().await.expect("rehash"), 6);
        part.append(b"world").await.expect("append");
        let expected = hex(&Sha256::digest(b"hello world"));
        assert_eq!(part.digest_hex(), expected);
        let path = part.commit().await.expect("commit");
        assert_eq!(std::fs::read(&path).expect("read"), b"hello world");
        assert!(!part_path(&target).exists());
        assert_eq!(hash_file(&target).await.expect("hash"), expected);
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
