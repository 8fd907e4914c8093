//! Where each followed file was left: saved after every batch printed, so a restart
//! goes on from there. The file is replaced atomically (write, then rename), so a kill
//! at any point leaves the old or the new state, never a torn one.
//!
//! `clean` is false while logtail runs and true once it stopped on a signal: after an
//! unclean stop (SIGKILL, a crash) the batch printed after the last save is printed
//! again, and logtail says so.

use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Which file: a rotated file keeps its identity under its new name. The inode number
/// alone is not enough: a file removed while logtail was stopped frees its inode, and
/// the next new file often gets the same number; its birth time tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    /// Birth time in nanoseconds since the epoch (statx), 0 where the filesystem has none.
    #[serde(default)]
    pub born: u64,
}

impl Identity {
    pub fn of(meta: &std::fs::Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt;
        let born = meta
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            born,
        }
    }
}

/// One followed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// The name it is followed as (and printed with).
    pub path: PathBuf,
    #[serde(flatten)]
    pub id: Identity,
    /// Bytes printed: the next line starts here.
    pub offset: u64,
    /// Rotated away from `path` and still being read to its end.
    #[serde(default)]
    pub rotated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub clean: bool,
    pub files: Vec<Saved>,
}

pub const VERSION: u32 = 1;

impl State {
    /// The saved state; `Ok(None)` when there is none (the first start). A file that does
    /// not parse is an error naming it: the caller starts afresh and says so.
    pub fn load(path: &Path) -> Result<Option<State>, String> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        State::parse(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The state in `text` (a state file's content), if it is one this logtail reads.
    pub fn parse(text: &str) -> Result<State, String> {
        let state: State = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if state.version != VERSION {
            return Err(format!(
                "version {} (this logtail reads {VERSION})",
                state.version
            ));
        }
        Ok(state)
    }

    /// Writes the state next to `path` and renames it into place. No fsync: the state
    /// must survive logtail's death, which the page cache does; after a power cut the
    /// console (and /run) start afresh anyway.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let text = serde_json::to_vec(self).map_err(io::Error::other)?;
        confkit::replace_file(path, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        State {
            version: VERSION,
            clean: false,
            files: vec![Saved {
                path: "/var/log/a.log".into(),
                id: Identity {
                    dev: 2049,
                    ino: 77,
                    born: 5,
                },
                offset: 1234,
                rotated: true,
            }],
        }
    }

    #[test]
    fn saved_state_loads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        assert_eq!(State::load(&path), Ok(None));
        sample().save(&path).expect("save");
        assert_eq!(State::load(&path), Ok(Some(sample())));
        // No temporary file left behind.
        assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 1);
    }

    #[test]
    fn a_damaged_state_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        fs::write(&path, "{\"version\": 1, \"clean\": tr").expect("write");
        let error = State::load(&path).expect_err("damaged");
        assert!(error.starts_with(&path.display().to_string()), "{error}");
        fs::write(&path, "{\"version\": 9, \"clean\": true, \"files\": []}").expect("write");
        assert!(
            State::load(&path)
                .expect_err("version")
                .contains("version 9")
        );
    }
}
