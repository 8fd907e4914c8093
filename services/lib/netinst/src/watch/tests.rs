//! The watcher, for real: files written, renamed and removed in a temporary directory.

use super::*;
use std::fs;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(100);

#[test]
fn writes_renames_and_removals_are_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Watcher::new(dir.path()).unwrap();
    assert!(w.is_watching());
    assert_eq!(w.dir(), dir.path());
    assert!(!w.changed(), "nothing happened yet");
    assert!(!w.wait_for_change(QUIET));

    let a = dir.path().join("a.toml");
    fs::write(&a, "bridge = \"bn1\"\n").unwrap();
    assert!(w.wait_for_change(WAIT), "create + close_write");
    assert!(!w.changed(), "drained");

    fs::write(&a, "bridge = \"bn2\"\n").unwrap();
    assert!(w.wait_for_change(WAIT), "rewrite");

    // The atomic way: a hidden file, renamed into place. Only the rename counts.
    let hidden = dir.path().join(".b.toml");
    fs::write(&hidden, "x").unwrap();
    assert!(!w.wait_for_change(QUIET), "hidden files do not count");
    fs::rename(&hidden, dir.path().join("b.toml")).unwrap();
    assert!(w.wait_for_change(WAIT), "moved in");

    fs::rename(dir.path().join("b.toml"), dir.path().join("b.off")).unwrap();
    assert!(w.wait_for_change(WAIT), "moved out");

    fs::write(dir.path().join("notes.txt"), "x").unwrap();
    assert!(!w.wait_for_change(QUIET), "other files do not count");

    fs::remove_file(&a).unwrap();
    assert!(w.wait_for_change(WAIT), "removed");
    assert!(!w.changed());
}

#[test]
fn the_fd_is_readable_when_something_changed() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Watcher::new(dir.path()).unwrap();
    fs::write(dir.path().join("a.toml"), "").unwrap();
    let mut fds = [PollFd::new(w.fd(), PollFlags::POLLIN)];
    let n = poll(&mut fds, PollTimeout::from(5000u16)).unwrap();
    assert_eq!(n, 1);
    assert!(w.changed());
}

#[test]
fn a_directory_that_comes_goes_and_comes_back_is_followed() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("network-instances");
    let mut w = Watcher::new(&dir).unwrap();
    assert!(!w.is_watching(), "waiting for the directory");

    fs::create_dir(&dir).unwrap();
    assert!(w.wait_for_change(WAIT), "the directory appeared");
    assert!(w.is_watching());
    fs::write(dir.join("a.toml"), "").unwrap();
    assert!(w.wait_for_change(WAIT), "a file in the new directory");

    fs::remove_file(dir.join("a.toml")).unwrap();
    fs::remove_dir(&dir).unwrap();
    assert!(w.wait_for_change(WAIT), "the directory went");
    // Drain the rest of the removal (the file's event, IN_IGNORED).
    while w.wait_for_change(QUIET) {}
    assert!(!w.is_watching());

    fs::create_dir(&dir).unwrap();
    assert!(w.wait_for_change(WAIT), "back again");
    assert!(w.is_watching());
    fs::write(dir.join("b.toml"), "").unwrap();
    assert!(w.wait_for_change(WAIT));
}

#[test]
fn no_directory_and_no_parent_is_an_error() {
    let parent = tempfile::tempdir().unwrap();
    let err = Watcher::new(&parent.path().join("x/y")).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}
