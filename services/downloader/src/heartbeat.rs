//! The heartbeat zedinit's `[heartbeat]` watches: touching `$ZEDCTR_HEARTBEAT_FILE`.
//! `serve` touches it from its event loop, so a wedged loop stops the beats.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The file named by `ZEDCTR_HEARTBEAT_FILE`, when zedinit set one.
pub fn from_env() -> Option<PathBuf> {
    std::env::var_os("ZEDCTR_HEARTBEAT_FILE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Sets the file's mtime to now (creating it if needed), as touch(1) does: zedinit
/// sees the inotify event and the new age.
pub fn touch(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?
        .set_modified(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_creates_and_refreshes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("svc.touch");
        touch(&f).expect("touch");
        let old = SystemTime::now() - std::time::Duration::from_secs(100);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .expect("open")
            .set_modified(old)
            .expect("age it");
        touch(&f).expect("touch again");
        let age = std::fs::metadata(&f)
            .expect("meta")
            .modified()
            .expect("mtime")
            .elapsed()
            .unwrap_or_default();
        assert!(age.as_secs() < 50, "{age:?}");
    }
}
