//! Loading a directory: file order, skipped files, and the checks between files, each
//! error naming both files.

use super::*;
use std::fs;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

fn instance(bridge: &str, ipv4: &str) -> String {
    format!("bridge = \"{bridge}\"\nipv4 = \"{ipv4}\"\n")
}

fn names(loaded: &Loaded) -> Vec<&str> {
    loaded.instances.iter().map(|i| i.name.as_str()).collect()
}

#[test]
fn instances_come_in_file_name_order_and_bad_ones_hide_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "c.toml", &instance("bn3", "10.3.0.1/24"));
    write(dir.path(), "a.toml", &instance("bn1", "10.1.0.1/24"));
    let bad = write(
        dir.path(),
        "b.toml",
        "bridge = \"bn2\"\nipv4 = \"x\"\nfoo = 1\n",
    );
    write(dir.path(), "notes.txt", "not an instance");
    write(dir.path(), ".d.toml", "half-written");
    write(dir.path(), "e.toml.tmp", "half-written");
    let loaded = load_dir(dir.path());
    assert_eq!(names(&loaded), vec!["a", "c"]);
    assert_eq!(loaded.errors.len(), 2, "{:#?}", loaded.errors);
    assert!(loaded.errors.iter().all(|e| e.file == bad));
    assert_eq!(loaded.rejected, vec![("b".to_string(), bad)]);
    assert_eq!(loaded.get("c").map(|i| i.bridge.as_str()), Some("bn3"));
    assert_eq!(loaded.by_bridge("bn1").map(|i| i.name.as_str()), Some("a"));
    assert_eq!(
        loaded
            .containing(Ipv4Addr::new(10, 3, 0, 9))
            .map(|i| i.name.as_str()),
        Some("c")
    );
    assert!(loaded.containing(Ipv4Addr::new(10, 2, 0, 9)).is_none());
}

#[test]
fn a_missing_directory_holds_no_instances() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load_dir(&dir.path().join("nope"));
    assert!(loaded.instances.is_empty() && loaded.errors.is_empty());
    assert!(loaded.unreadable_dirs.is_empty());
}

#[test]
fn an_unreadable_file_is_an_error_for_that_file() {
    let dir = tempfile::tempdir().unwrap();
    // A directory named like an instance cannot be read as one.
    fs::create_dir(dir.path().join("a.toml")).unwrap();
    write(dir.path(), "b.toml", &instance("bn2", "10.2.0.1/24"));
    let loaded = load_dir(dir.path());
    assert_eq!(names(&loaded), vec!["b"]);
    assert_eq!(loaded.errors.len(), 1);
    assert_eq!(loaded.errors[0].file, dir.path().join("a.toml"));
    assert_eq!(loaded.errors[0].line, None);
    assert!(
        loaded.errors[0]
            .message
            .contains("a directory, not a regular file"),
        "{}",
        loaded.errors[0]
    );
}

#[test]
fn a_fifo_or_a_symlink_to_a_device_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    // With no writer, a blocking open would never return: this test would hang.
    nix::unistd::mkfifo(
        &dir.path().join("a.toml"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    // Read through, /dev/zero never ends.
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("c.toml")).unwrap();
    write(dir.path(), "b.toml", &instance("bn2", "10.2.0.1/24"));
    let loaded = load_dir(dir.path());
    assert_eq!(names(&loaded), vec!["b"]);
    let messages: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].contains("a FIFO, not a regular file"),
        "{messages:?}"
    );
    assert!(messages[1].contains("refused: a symlink"), "{messages:?}");
}

#[test]
fn the_same_bridge_twice_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.toml", &instance("bn1", "10.1.0.1/24"));
    let b = write(
        dir.path(),
        "b.toml",
        "ipv4 = \"10.2.0.1/24\"\nbridge = \"bn1\"\n",
    );
    let loaded = load_dir(dir.path());
    assert_eq!(names(&loaded), vec!["a"]);
    assert_eq!(loaded.errors.len(), 1, "{:#?}", loaded.errors);
    let e = &loaded.errors[0];
    assert_eq!(e.file, b);
    assert_eq!(e.line, Some(2));
    assert_eq!(e.key.as_deref(), Some("bridge"));
    let first = format!("{}:1", a.display());
    assert!(e.message.contains(&first), "{e}");
    assert!(e.message.contains("this instance is ignored"), "{e}");
}

#[test]
fn overlapping_subnets_name_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.toml", &instance("bn1", "10.1.0.1/16"));
    let b = write(dir.path(), "b.toml", &instance("bn2", "10.1.7.1/24"));
    write(dir.path(), "c.toml", &instance("bn3", "10.2.0.1/24"));
    let loaded = load_dir(dir.path());
    assert_eq!(names(&loaded), vec!["a", "c"]);
    assert_eq!(loaded.errors.len(), 1, "{:#?}", loaded.errors);
    let e = &loaded.errors[0];
    assert_eq!((e.file.clone(), e.line), (b, Some(2)));
    assert_eq!(e.key.as_deref(), Some("ipv4"));
    assert!(
        e.message
            .contains("subnet 10.1.7.0/24 overlaps 10.1.0.0/16 of instance \"a\""),
        "{e}"
    );
    assert!(e.message.contains(&format!("{}:2", a.display())), "{e}");
}

#[test]
fn one_instance_can_clash_twice() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.toml", &instance("bn1", "10.1.0.1/24"));
    write(dir.path(), "b.toml", &instance("bn1", "10.1.0.2/24"));
    let loaded = load_dir(dir.path());
    let keys: Vec<_> = loaded
        .errors
        .iter()
        .map(|e| e.key.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(keys, vec!["bridge", "ipv4"]);
}

#[test]
fn the_same_lease_file_twice_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.toml",
        &(instance("bn1", "10.1.0.1/24") + "lease-file = \"/run/l.leases\"\n"),
    );
    let b = write(
        dir.path(),
        "b.toml",
        &(instance("bn2", "10.2.0.1/24") + "lease-file = \"/run/l.leases\"\n"),
    );
    let loaded = load_dir(dir.path());
    assert_eq!(names(&loaded), vec!["a"]);
    let e = &loaded.errors[0];
    assert_eq!((e.file.clone(), e.line), (b, Some(3)));
    assert_eq!(e.key.as_deref(), Some("lease-file"));
    assert!(e.message.contains(&format!("{}:3", a.display())), "{e}");
}

#[test]
fn the_same_name_in_two_directories_names_both_files() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    let first = write(one.path(), "blue.toml", &instance("bn1", "10.1.0.1/24"));
    let second = write(two.path(), "blue.toml", &instance("bn2", "10.2.0.1/24"));
    write(two.path(), "red.toml", &instance("bn3", "10.3.0.1/24"));
    let loaded = load_dirs(&[one.path().to_path_buf(), two.path().to_path_buf()]);
    assert_eq!(names(&loaded), vec!["blue", "red"]);
    assert_eq!(loaded.instances[0].file, first);
    assert_eq!(loaded.errors.len(), 1);
    let e = &loaded.errors[0];
    assert_eq!(
        (e.file.clone(), e.line, e.key.clone()),
        (second, None, None)
    );
    assert!(e.message.contains(&first.display().to_string()), "{e}");
}
