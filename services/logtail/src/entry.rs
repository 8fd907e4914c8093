//! Which entries of a followed directory logtail reads, and opening them so that what was
//! checked is what is read.
//!
//! logtail reads with CAP_DAC_READ_SEARCH (any file on the system), while whoever may
//! create entries in a followed directory chooses what is there. So an entry is followed
//! only when it is a regular file owned by root or by the directory's owner:
//! - not a symbolic link: `x.log -> /etc/shadow` would print a root-only file;
//! - not a FIFO or a device: opening or reading one can block logtail's only thread;
//! - not another user's file: it is neither the system's nor the directory owner's log.
//!
//! The scan looks with `lstat` (nothing is opened that is not a regular file by then), and
//! [`open`] decides again on the opened descriptor: `O_NOFOLLOW` refuses a symlink put in
//! place since, `O_NONBLOCK` makes opening a FIFO swapped in return at once, and `fstat`
//! on the descriptor is about the very file that will be read (no window between a look
//! by name and the open).

use nix::fcntl::OFlag;
use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Why an entry is not followed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Refusal {
    Symlink,
    /// A FIFO, socket or device (named).
    NotRegular(&'static str),
    /// Owned by neither root nor the directory's owner.
    Owner {
        uid: u32,
        dir_owner: u32,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Symlink => write!(f, "a symbolic link"),
            Refusal::NotRegular(kind) => write!(f, "not a regular file but {kind}"),
            Refusal::Owner { uid, dir_owner } => write!(
                f,
                "owned by uid {uid}, neither root nor the directory's owner (uid {dir_owner})"
            ),
        }
    }
}

/// Why a file could not be opened for following.
#[derive(Debug)]
pub enum OpenError {
    Refused(Refusal),
    Io(io::Error),
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> OpenError {
        OpenError::Io(e)
    }
}

/// Whether the entry `meta` describes (from `lstat` or from `fstat` on the opened file)
/// may be followed, in a directory owned by `dir_owner`.
pub fn check(meta: &Metadata, dir_owner: u32) -> Result<(), Refusal> {
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(Refusal::Symlink);
    }
    if !kind.is_file() {
        let name = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "a directory"
        };
        return Err(Refusal::NotRegular(name));
    }
    let uid = meta.uid();
    if uid != 0 && uid != dir_owner {
        return Err(Refusal::Owner { uid, dir_owner });
    }
    Ok(())
}

/// The owner of the directory holding `path`.
pub fn dir_owner(path: &Path) -> io::Result<u32> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    Ok(std::fs::metadata(dir)?.uid())
}

/// Opens `path` for reading if, as opened, it may be followed (see [`check`]); its
/// metadata comes from the descriptor. Never blocks: a FIFO opens at once (and is
/// refused), and so does a file whose lease is being broken (`EWOULDBLOCK`, an error).
pub fn open(path: &Path, dir_owner: u32) -> Result<(File, Metadata), OpenError> {
    let flags = OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
    {
        Ok(file) => file,
        // open(2): O_NOFOLLOW on a symbolic link fails with ELOOP.
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(OpenError::Refused(Refusal::Symlink));
        }
        Err(e) => return Err(OpenError::Io(e)),
    };
    // fstat (statx on the descriptor): the file that will be read.
    let meta = file.metadata()?;
    check(&meta, dir_owner).map_err(OpenError::Refused)?;
    Ok((file, meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn owner_of(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").uid()
    }

    #[test]
    fn a_regular_file_of_the_directory_owner_opens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        std::fs::write(&path, "x\n").expect("a.log");
        let owner = dir_owner(&path).expect("dir owner");
        assert_eq!(owner, owner_of(dir.path()));
        let (_, meta) = open(&path, owner).expect("opens");
        assert_eq!(meta.len(), 2);
    }

    #[test]
    fn a_symlink_a_fifo_and_a_directory_are_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let owner = owner_of(dir.path());
        let target = dir.path().join("target");
        std::fs::write(&target, "secret\n").expect("target");
        let link = dir.path().join("x.log");
        symlink(&target, &link).expect("symlink");
        assert!(matches!(
            open(&link, owner),
            Err(OpenError::Refused(Refusal::Symlink))
        ));
        let lstat = std::fs::symlink_metadata(&link).expect("lstat");
        assert_eq!(check(&lstat, owner), Err(Refusal::Symlink));

        // No writer: a blocking open would wait for one forever.
        let fifo = dir.path().join("y.log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644))
            .expect("mkfifo");
        assert!(matches!(
            open(&fifo, owner),
            Err(OpenError::Refused(Refusal::NotRegular("a FIFO")))
        ));

        let sub = dir.path().join("z.log");
        std::fs::create_dir(&sub).expect("dir");
        assert!(matches!(
            open(&sub, owner),
            Err(OpenError::Refused(Refusal::NotRegular("a directory")))
        ));
    }

    #[test]
    fn another_users_file_is_refused_unless_it_is_roots_or_the_directory_owners() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        std::fs::write(&path, "x\n").expect("a.log");
        let meta = std::fs::symlink_metadata(&path).expect("lstat");
        let uid = meta.uid();
        assert_eq!(check(&meta, uid), Ok(()), "the directory owner's");
        if uid != 0 {
            let other = uid + 1;
            let refusal = Refusal::Owner {
                uid,
                dir_owner: other,
            };
            assert_eq!(check(&meta, other), Err(refusal));
            return;
        }
        assert_eq!(check(&meta, 4242), Ok(()), "root's, in anyone's directory");
        std::os::unix::fs::chown(&path, Some(4343), None).expect("chown");
        let meta = std::fs::symlink_metadata(&path).expect("lstat");
        let refusal = Refusal::Owner {
            uid: 4343,
            dir_owner: 4242,
        };
        assert_eq!(check(&meta, 4242), Err(refusal));
        assert!(matches!(
            open(&path, 4242),
            Err(OpenError::Refused(Refusal::Owner { uid: 4343, .. }))
        ));
        assert!(open(&path, 4343).is_ok(), "the directory owner's");
    }
}
