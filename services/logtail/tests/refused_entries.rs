//! Entries of a followed directory that logtail must not read, whoever put them there:
//! a symbolic link to a root-only file, a FIFO (swapped in between logtail's look at the
//! directory and its open), another user's file. logtail runs as the image runs it
//! (nobody, with CAP_DAC_READ_SEARCH ambient) where that matters; the directory belongs
//! to an unprivileged log writer (uid 4242), who may create anything in it.

mod common;

use common::*;
use nix::libc;
use nix::sys::signal::{SigHandler, Signal, signal};
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The log writer owning the directory, and another unprivileged user.
const WRITER: u32 = 4242;
const STRANGER: u32 = 4343;
const NOBODY: u32 = 65534;

/// rootfs/etc/zedctr/services/logtail.toml's credentials, as setpriv gives them.
const SHIPPED_CREDENTIALS: &[&str] = &[
    "setpriv",
    "--reuid",
    "65534",
    "--regid",
    "65534",
    "--clear-groups",
    "--inh-caps",
    "+dac_read_search",
    "--ambient-caps",
    "+dac_read_search",
];

/// What a root-only file holds: never on the console.
const SECRET: &str = "root:$y$j9T$SECRETHASH:19000:0:99999:7:::";

/// Root, and setpriv to run logtail with the shipped credentials; skips loudly without
/// them, except under CI=true.
fn require_root_and_setpriv(test: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    let found = Command::new("setpriv")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: needs setpriv (util-linux) (CI=true, so this is a failure)"
        );
        eprintln!("\n!!!!! SKIPPED {test}: needs setpriv (util-linux). !!!!!\n");
    }
    found
}

/// A lab whose log directory belongs to the writer, whose state directory nobody may
/// write, and which holds a root-only file (`shadow`, outside the log directory).
fn writers_lab() -> (Lab, PathBuf) {
    let lab = Lab::new();
    std::os::unix::fs::chown(&lab.logs, Some(WRITER), Some(WRITER)).expect("chown logs");
    let run = lab.state.parent().expect("state dir");
    fs::create_dir(run).expect("state dir");
    std::os::unix::fs::chown(run, Some(NOBODY), Some(NOBODY)).expect("chown state dir");
    let shadow = lab.dir.path().join("shadow");
    fs::write(&shadow, format!("{SECRET}\n")).expect("shadow");
    fs::set_permissions(&shadow, fs::Permissions::from_mode(0o600)).expect("chmod");
    (lab, shadow)
}

/// Puts a 0600 file owned by `uid` at `name` in one step (made under a name logtail does
/// not follow, then renamed), so logtail never sees it with another owner.
fn put_file(lab: &Lab, name: &str, text: &str, uid: u32) {
    let staged = lab.log(&format!(".{name}.new"));
    fs::write(&staged, text).expect("write");
    fs::set_permissions(&staged, fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::chown(&staged, Some(uid), Some(uid)).expect("chown");
    fs::rename(&staged, lab.log(name)).expect("rename into place");
}

/// The writer's symbolic link `name` -> `target`, put in place in one step.
fn put_symlink(lab: &Lab, name: &str, target: &Path) {
    let staged = lab.log(&format!(".{name}.new"));
    symlink(target, &staged).expect("symlink");
    lchown(&staged, Some(WRITER), Some(WRITER)).expect("lchown");
    fs::rename(&staged, lab.log(name)).expect("rename into place");
}

fn assert_never_printed(run: &Running, text: &str) {
    let printed = run.out.all();
    assert!(
        !printed.iter().any(|l| l.contains(text)),
        "{text:?} must never reach the console: {printed:#?}"
    );
}

#[test]
fn a_symlink_to_a_root_only_file_is_not_printed() {
    if !require_root_and_setpriv("a_symlink_to_a_root_only_file_is_not_printed") {
        return;
    }
    let (lab, shadow) = writers_lab();
    put_file(&lab, "app.log", "start\n", WRITER);
    put_symlink(&lab, "early.log", &shadow);
    let run = lab.start_as(SHIPPED_CREDENTIALS, &[]);
    run.out.wait_line(&lab.label("app.log", "start"));

    // Planted while logtail runs (the audit's case), then a file after it: once that
    // file's line is out, logtail has looked at the directory with the link in it.
    put_symlink(&lab, "x.log", &shadow);
    put_file(&lab, "later.log", "after the link\n", WRITER);
    run.out.wait_line(&lab.label("later.log", "after the link"));
    assert_never_printed(&run, "SECRETHASH");
    for name in ["early.log", "x.log"] {
        run.err.wait_containing(&format!(
            "{}: not followed: a symbolic link",
            lab.log(name).display()
        ));
    }
    assert_never_printed(&run, "SECRETHASH");
}

#[test]
fn a_file_owned_by_another_user_is_refused_and_said_once() {
    if !require_root_and_setpriv("a_file_owned_by_another_user_is_refused_and_said_once") {
        return;
    }
    let (lab, _) = writers_lab();
    // Root's and the directory owner's files are followed, 0600 or not.
    put_file(&lab, "root.log", "root's line\n", 0);
    put_file(&lab, "app.log", "the writer's line\n", WRITER);
    let run = lab.start_as(SHIPPED_CREDENTIALS, &[]);
    run.out.wait_line(&lab.label("root.log", "root's line"));
    run.out
        .wait_line(&lab.label("app.log", "the writer's line"));

    put_file(&lab, "other.log", "another user's line\n", STRANGER);
    put_file(&lab, "later.log", "after it\n", WRITER);
    run.out.wait_line(&lab.label("later.log", "after it"));
    assert_never_printed(&run, "another user's line");
    let refusal = format!(
        "{}: not followed: owned by uid {STRANGER}, neither root nor the directory's owner \
         (uid {WRITER})",
        lab.log("other.log").display()
    );
    run.err.wait_containing(&refusal);

    // Another look at the directory (a new file): the refusal is not said again.
    put_file(&lab, "last.log", "last\n", 0);
    run.out.wait_line(&lab.label("last.log", "last"));
    let said = run
        .err
        .all()
        .iter()
        .filter(|l| l.contains("other.log: not followed"))
        .count();
    assert_eq!(said, 1, "said once: {:#?}", run.err.all());
    assert_never_printed(&run, "another user's line");
}

/// A write lease (fcntl(2) F_SETLEASE) on a file: anyone's open of it waits until the
/// holder lets go (an open with O_NONBLOCK fails at once instead), and the holder can
/// see that one is waiting.
struct WriteLease(File);

impl WriteLease {
    fn take(path: &Path) -> WriteLease {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .expect("open for the lease");
        // The holder is told of an open by SIGIO, whose default action would end this
        // test process: ignored (breaking() asks instead).
        // SAFETY: SIG_IGN runs no handler code; nothing in these tests uses SIGIO.
        unsafe { signal(Signal::SIGIO, SigHandler::SigIgn) }.expect("ignore SIGIO");
        // SAFETY: fcntl on a descriptor `file` owns, with integer arguments.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) };
        assert_eq!(rc, 0, "F_SETLEASE: {}", std::io::Error::last_os_error());
        WriteLease(file)
    }

    /// Someone is opening the file: the lease is to be downgraded or given up.
    fn breaking(&self) -> bool {
        // SAFETY: fcntl on a descriptor this lease owns, without a pointer argument.
        let lease = unsafe { libc::fcntl(self.0.as_raw_fd(), libc::F_GETLEASE) };
        lease != libc::F_WRLCK
    }
}

#[test]
fn a_fifo_swapped_in_for_a_log_does_not_block_the_other_files() {
    let lab = Lab::new();
    fs::write(lab.log("a.log"), "a first\n").expect("a.log");
    fs::write(lab.log("other.log"), "other first\n").expect("other.log");
    fs::write(lab.log("y.log"), "y first\n").expect("y.log");
    let fifo = lab.log(".y.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    // logtail looks at the directory (y.log is a regular file), then opens the files in
    // name order: the lease on a.log holds (or, never blocking, marks) the open of
    // a.log, so the FIFO takes y.log's place exactly between the look and y.log's open.
    let lease = WriteLease::take(&lab.log("a.log"));
    let run = lab.start(&[]);
    wait_until("logtail opening a.log", || lease.breaking());
    fs::rename(&fifo, lab.log("y.log")).expect("the FIFO replaces y.log");
    drop(lease);

    // No writer ever opens the FIFO: a blocking open of it would wait for ever.
    fs::write(lab.log("b.log"), "b first\n").expect("b.log");
    run.out.wait_line(&lab.label("b.log", "b first"));
    run.out.wait_line(&lab.label("other.log", "other first"));
    append(&lab.log("other.log"), "other second\n");
    run.out.wait_line(&lab.label("other.log", "other second"));
    // a.log was busy when first opened: opened on the next look at the directory.
    run.out.wait_line(&lab.label("a.log", "a first"));
    run.err.wait_containing(&format!(
        "{}: not followed: not a regular file but a FIFO",
        lab.log("y.log").display()
    ));
}
