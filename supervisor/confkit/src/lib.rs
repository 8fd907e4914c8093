//! zedctr's config-file conventions, shared by every parser and binary (service
//! definitions in zedinit, network instances in netinst, the services' flags): an error
//! that names file, line and key, the line of a byte offset, the listing of a
//! directory's `*.toml` files, the spanned TOML reader both parsers build on
//! ([`toml_reader`]), one syntax for durations ([`durations`]) and the atomic
//! replacement of a file.

pub mod durations;
pub mod toml_reader;

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; `None` when the problem is the file as a whole (unreadable, say).
    pub line: Option<usize>,
    /// Dotted key (`restart.policy`, `dhcp-hosts[0].mac`); `None` for syntax errors and
    /// whole-file problems.
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    /// A problem with the file (or directory) as a whole.
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: None,
            key: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    /// `file:line: key: message`, leaving out what is not known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The 1-based line holding byte `offset` of `text`.
pub fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The `*.toml` files of `dir` in file-name order, skipping hidden ones (`.x.toml`: a
/// writer's temporary name before it renames into place, or an editor's lock file).
/// `Ok(None)` when the directory does not exist (a generated one may not yet).
pub fn toml_files(dir: &Path) -> std::io::Result<Option<Vec<PathBuf>>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(Some(files))
}

/// What [`each_config_file`] finds, in order.
pub enum ConfigEntry<'p> {
    /// A config file: the index of its directory in `dirs`, its name (the file's stem).
    File {
        dir_index: usize,
        name: String,
        path: &'p Path,
    },
    /// A directory that exists but cannot be read: its files keep whatever they gave
    /// before (a reload must not take them for removed).
    Unreadable { dir: &'p Path, error: ConfigError },
}

/// Visits every config file of `dirs` in order (each directory's `*.toml` in file-name
/// order, see [`toml_files`]) and every directory that cannot be read; a missing
/// directory holds nothing.
pub fn each_config_file(dirs: &[PathBuf], mut visit: impl FnMut(ConfigEntry<'_>)) {
    for (dir_index, dir) in dirs.iter().enumerate() {
        let files = match toml_files(dir) {
            Ok(Some(files)) => files,
            Ok(None) => continue,
            Err(e) => {
                let error = ConfigError::whole_file(dir, format!("cannot read directory: {e}"));
                visit(ConfigEntry::Unreadable { dir, error });
                continue;
            }
        };
        for path in &files {
            // toml_files keeps UTF-8 names only.
            if let Some(name) = path.file_stem().and_then(|s| s.to_str()) {
                let name = name.to_string();
                visit(ConfigEntry::File {
                    dir_index,
                    name,
                    path,
                });
            }
        }
    }
}

/// Replaces `path` with `bytes` atomically: written to a hidden temporary beside it
/// (`.<name>.<pid>.tmp`: dot files are skipped by every directory reader here, and the
/// pid keeps two writers apart), then renamed over it, so a reader sees the old file or
/// the new one, never half of one. No fsync: what must survive a power cut says so
/// itself. The directory must exist.
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}

/// The text of a config file, read so that no file planted in a config directory can
/// block or exhaust its reader (zedinit is PID 1; audit finding 4): the name is opened
/// without following a symlink (a symlink is refused: see README, "Service
/// definitions"), without blocking (a FIFO would wait for a writer) and without becoming
/// a controlling terminal; the opened file must be a regular file (a device such as
/// /dev/zero never ends) of at most `max_bytes`, and at most that many bytes plus one are
/// read (the file may grow after the fstat).
pub fn read_config_file(file: &Path, max_bytes: u64) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // std adds O_CLOEXEC itself; it is named here because a spawn must never inherit it.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(file);
    let definition = match opened {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(
                "refused: a symlink (config files are read only from regular files in the \
                 directory itself; copy the file there instead)"
                    .into(),
            );
        }
        Err(e) => return Err(format!("cannot open: {e}")),
    };
    let meta = definition
        .metadata()
        .map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(format!(
            "refused: {}, not a regular file",
            file_kind(&meta.file_type())
        ));
    }
    let too_large = || format!("refused: larger than {max_bytes} bytes");
    if meta.len() > max_bytes {
        return Err(too_large());
    }
    // Room for the whole file and one byte more: two reads (the file, then end of file)
    // rather than a series of growing small ones, each a syscall on PID 1's start path.
    let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
    definition
        .take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| "cannot read: not UTF-8".into())
}

/// "a FIFO", "a character device"... for a refused file.
fn file_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_replaced_file_holds_the_new_bytes_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.json");
        replace_file(&path, b"old").expect("first");
        replace_file(&path, b"new").expect("second");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }

    use super::*;

    #[test]
    fn errors_print_what_is_known() {
        let mut e = ConfigError::whole_file(Path::new("/d/a.toml"), "cannot read: EIO");
        assert_eq!(e.to_string(), "/d/a.toml: cannot read: EIO");
        e.line = Some(3);
        e.key = Some("stop.timeout".into());
        assert_eq!(e.to_string(), "/d/a.toml:3: stop.timeout: cannot read: EIO");
    }

    #[test]
    fn lines_are_one_based() {
        let text = "a = 1\nb = 2\n\nc = 3";
        assert_eq!(
            (
                line_at(text, 0),
                line_at(text, 6),
                line_at(text, 13),
                line_at(text, 999)
            ),
            (1, 2, 4, 4)
        );
    }

    #[test]
    fn lists_visible_toml_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.toml", "a.toml", ".hidden.toml", "notes.txt", "c.toml~"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let names: Vec<String> = toml_files(dir.path())
            .unwrap()
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["a.toml", "b.toml"]);
        assert!(toml_files(&dir.path().join("missing")).unwrap().is_none());
    }
}
