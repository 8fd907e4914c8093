//! After a copy-truncate rotation (logrotate's `copytruncate`): finding the copy, which
//! holds what logtail had not read yet when the file was emptied.
//!
//! The writer's last lines before the copy are in the file until the truncation; a
//! follower that had not read them by then (the copy of a large file takes a moment, a
//! busy machine schedules it late) lost them, GNU `tail -F` as well. They are in the
//! copy, at the same offsets: a file of the same directory that, at the offset logtail
//! had reached, holds the very bytes logtail read last is that copy. What the writer
//! adds between the copy and the truncation is in neither, and stays lost.

use crate::entry;
use crate::state::Identity;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// How many of the last bytes read are kept per file, to recognise its copy by.
pub const TAIL: usize = 256;

/// A copy found.
pub struct Copy {
    pub path: PathBuf,
    pub file: File,
    pub size: u64,
}

/// The copy of a file truncated under logtail: a regular file of `dir` that may be read
/// (`entry::check`: owned by root or the directory's owner), not one of the `followed`,
/// at least `offset` bytes long, whose bytes just before `offset` are `tail` (the last
/// bytes logtail read from the file, all of them when it read fewer than [`TAIL`]). The
/// most recently changed when several match (an older rotation's copy can share the
/// file's beginning). `None` when nothing was read yet (nothing to recognise it by).
pub fn find(dir: &Path, offset: u64, tail: &[u8], followed: &[Identity]) -> Option<Copy> {
    if tail.is_empty() || offset < tail.len() as u64 {
        return None;
    }
    let dir_owner = std::fs::metadata(dir).ok()?.uid();
    let mut best: Option<(i128, Copy)> = None;
    for entry in std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()) {
        let path = entry.path();
        // lstat first: most entries are not it, and a symbolic link never is.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let changed = i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec());
        if entry::check(&meta, dir_owner).is_err()
            || meta.len() < offset
            || followed.contains(&Identity::of(&meta))
            || best.as_ref().is_some_and(|(newest, _)| *newest >= changed)
        {
            continue;
        }
        // Opened as a followed file is (no link, no FIFO, checked on the descriptor).
        let Ok((file, meta)) = entry::open(&path, dir_owner) else {
            continue;
        };
        let mut there = vec![0; tail.len()];
        if file
            .read_exact_at(&mut there, offset - tail.len() as u64)
            .is_ok()
            && there == tail
        {
            let size = meta.len();
            best = Some((changed, Copy { path, file, size }));
        }
    }
    best.map(|(_, copy)| copy)
}

/// Keeps the last [`TAIL`] bytes of what was read: `tail` followed by `read`.
pub fn keep_tail(tail: &mut Vec<u8>, read: &[u8]) {
    if read.len() >= TAIL {
        tail.clear();
        tail.extend_from_slice(&read[read.len() - TAIL..]);
    } else {
        tail.extend_from_slice(read);
        let over = tail.len().saturating_sub(TAIL);
        tail.drain(..over);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn the_copy_is_the_file_holding_the_last_bytes_read_at_that_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let read = &text.as_bytes()[..400];
        let mut tail = Vec::new();
        for piece in read.chunks(7) {
            keep_tail(&mut tail, piece);
        }
        assert_eq!(tail, &read[400 - TAIL..]);
        // Not it: too short, other bytes there, a link to it.
        fs::write(dir.path().join("short"), &text[..300]).expect("short");
        fs::write(dir.path().join("other"), text.replace("line", "LINE")).expect("other");
        std::os::unix::fs::symlink(dir.path().join("app.log.1"), dir.path().join("link"))
            .expect("link");
        assert!(find(dir.path(), 400, &tail, &[]).is_none());
        fs::write(dir.path().join("app.log.1"), &text).expect("copy");
        let copy = find(dir.path(), 400, &tail, &[]).expect("found");
        assert_eq!(copy.path, dir.path().join("app.log.1"));
        assert_eq!(copy.size, text.len() as u64);
        // A followed file is never its own copy; nothing read, nothing to go by.
        let id = Identity::of(&fs::metadata(dir.path().join("app.log.1")).expect("stat"));
        assert!(find(dir.path(), 400, &tail, &[id]).is_none());
        assert!(find(dir.path(), 0, &[], &[]).is_none());
    }
}
