//! The harness every zedctr crate's tests share (youki's `test_framework`): the skip
//! policy, waits with a deadline, the workspace's binaries, zedinit as PID 1 of a
//! namespace ([`zedinit::Lab`]), network namespaces ([`netns`]) and the `.local` lab
//! with real avahi-daemons ([`avahi::Lab`]). A dev-dependency only: no production crate
//! links it.
//!
//! Whatever a lab starts is killed, and whatever it makes is removed, when it drops,
//! even when the test panics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

pub mod avahi;
pub mod dhcp_client;
pub mod netns;
pub mod trace;
pub mod zedinit;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Generous: tests assert order and outcome, never speed.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// True if the test may go on. Without root it skips loudly, except under CI=true,
/// where a missing prerequisite is a failure.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: needs root (CI=true, so this is a failure, not a skip)");
    }
    eprintln!(
        "\n!!!!! SKIPPED {test}: needs root (namespaces, mounts, confinement). \
         Run as root to test this. !!!!!\n"
    );
    false
}

/// Panics naming each of `programs` not on `PATH`: the real components these tests run
/// are prerequisites (`scripts/install-deps`), and a missing one would otherwise show up
/// as a timeout far from its cause. Call after [`require_root`].
pub fn require_programs(test: &str, programs: &[&str]) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| !std::env::split_paths(&path).any(|dir| dir.join(p).is_file()))
        .collect();
    assert!(
        missing.is_empty(),
        "{test}: needs {} on PATH (scripts/install-deps installs them)",
        missing.join(", ")
    );
}

/// Polls `condition` until it holds or [`DEADLINE`] passes, then panics naming `what`.
pub fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    wait_until_within(DEADLINE, what, condition);
}

/// [`wait_until`] with a deadline of the caller's.
pub fn wait_until_within(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a shell command line; panics when it fails.
pub fn sh(cmd: &str) {
    let ok = Command::new("sh")
        .arg("-ec")
        .arg(cmd)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "failed: {cmd}");
}

/// Which package builds each of the workspace's binaries (for [`bin`]).
const PACKAGES: [(&str, &str); 8] = [
    ("zedinit", "zedinit"),
    ("zedctr-testkit", "zedinit"),
    ("supctl", "supctl"),
    ("downloader", "downloader"),
    ("logtail", "logtail"),
    ("dnsmasq-render", "dnsmasq-render"),
    ("zedwatchdog", "zedwatchdog"),
    ("localds", "localds"),
];

/// The path of one of the workspace's binaries, of the profile this test was built
/// with. A test binary only knows its own package's binaries (`CARGO_BIN_EXE_*`); the
/// others sit next to it in the target directory. Under cargo-nextest (which holds no
/// build lock while tests run) the binary is built first, once per run, so that
/// `cargo nextest run -p X` alone tests X against current binaries; under `cargo test`
/// (which holds the lock: a build from here would wait forever) it must exist already.
pub fn bin(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    if let Ok(run) = std::env::var("NEXTEST_RUN_ID") {
        build_once(name, &run);
    }
    assert!(
        path.exists(),
        "{}: not built; run `cargo build --workspace --bins` first (or test with cargo nextest, which builds it)",
        path.display()
    );
    path
}

/// target/<profile>/: test binaries run from target/<profile>/deps/.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("profile dir")
    } else {
        deps
    };
    dir.to_path_buf()
}

/// `cargo build` of the package holding `name`, once per nextest run (a stamp file in
/// the target directory, under a lock: nextest runs each test in its own process).
fn build_once(name: &str, run: &str) {
    let dir = target_dir();
    let stamp = dir.join(format!(".lab-built-{name}"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lab-build.lock"))
        .expect("lab build lock");
    let _guard = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("flock");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == run) {
        return;
    }
    let package = PACKAGES
        .iter()
        .find(|(bin, _)| *bin == name)
        .map(|(_, package)| *package)
        .unwrap_or_else(|| panic!("{name}: not a binary of this workspace"));
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.args(["build", "--quiet", "-p", package, "--bin", name]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cargo.arg("--release");
    }
    if let Some(workspace) = workspace_root() {
        cargo.current_dir(workspace);
    }
    let status = cargo.status().expect("cargo build");
    assert!(
        status.success(),
        "cargo build -p {package} --bin {name} failed"
    );
    std::fs::write(&stamp, run).expect("stamp");
}

fn workspace_root() -> Option<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
}

/// Runs every file of fuzz target `target`'s committed corpus (`fuzz/corpus/<target>/`:
/// seeds, and inputs that once crashed it) through `run`, the target's entry point,
/// naming the file that fails: a fixed crash stays fixed, on the stable toolchain.
pub fn replay_corpus(target: &str, run: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    let dir = workspace_root()
        .expect("workspace root")
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no corpus", dir.display());
    for file in files {
        let data = std::fs::read(&file).expect("corpus file");
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!(
                "{target}: {} fails (run `cargo +nightly fuzz run {target} {}` in fuzz/)",
                file.display(),
                file.display()
            );
        }
    }
}
