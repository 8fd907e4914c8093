//! The real `logtail` binary on real files: rotation by rename and by copy-truncate,
//! files appearing, restarts after SIGTERM and SIGKILL, and an idle logtail that never
//! wakes up. Nothing here needs root.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::fs::{self, File};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_first_start_shows_the_last_lines_then_follows_new_lines_and_new_files() {
    let lab = Lab::new();
    let text: String = (1..=15).map(|i| format!("line {i}\n")).collect();
    fs::write(lab.log("a.log"), text).expect("a.log");
    fs::write(lab.log("notes.txt"), "not a log\n").expect("txt");
    let run = lab.start(&["--lines", "3"]);
    run.out.wait_line(&lab.label("a.log", "line 15"));
    append(&lab.log("a.log"), "line 16\n");
    fs::write(lab.log("b.log"), "b first\nb second\n").expect("b.log");
    append(&lab.log("notes.txt"), "still not a log\n");
    run.out.wait_line(&lab.label("b.log", "b second"));
    run.out.wait_line(&lab.label("a.log", "line 16"));
    let mut printed = run.out.all();
    printed.sort();
    let mut expected: Vec<String> = ["line 13", "line 14", "line 15", "line 16"]
        .iter()
        .map(|t| lab.label("a.log", t))
        .chain(
            ["b first", "b second"]
                .iter()
                .map(|t| lab.label("b.log", t)),
        )
        .collect();
    expected.sort();
    assert_eq!(
        printed, expected,
        "the last 3 lines, then every new line once; no .txt"
    );
}

#[test]
fn rename_rotation_loses_nothing_written_to_the_old_file_after_the_rename() {
    let lab = Lab::new();
    let path = lab.log("app.log");
    let mut writer = File::create(&path).expect("app.log");
    writer.write_all(b"before 1\nbefore 2\n").expect("write");
    let run = lab.start(&[]);
    run.out.wait_line(&lab.label("app.log", "before 2"));
    // logrotate's rename rotation: the writer goes on with the old file until it
    // reopens; its last line has no newline yet.
    fs::rename(&path, lab.log("app.log.1")).expect("rotate");
    writer
        .write_all(b"after rename, old file\nunfinished")
        .expect("write");
    fs::write(&path, "new file 1\n").expect("new app.log");
    run.out.wait_line(&lab.label("app.log", "new file 1"));
    run.out
        .wait_line(&lab.label("app.log", "after rename, old file"));
    // Once the old file has been quiet for the grace time, its unfinished last line
    // goes out and the file is let go.
    run.out.wait_line(&lab.label("app.log", "unfinished"));
    let printed = run.out.all();
    for line in [
        "before 1",
        "before 2",
        "after rename, old file",
        "unfinished",
        "new file 1",
    ] {
        let count = printed
            .iter()
            .filter(|l| **l == lab.label("app.log", line))
            .count();
        assert_eq!(count, 1, "{line:?} printed once: {printed:#?}");
    }
    let deadline = Instant::now() + DEADLINE;
    while state(&lab)["files"].as_array().expect("files").len() != 1 {
        assert!(
            Instant::now() < deadline,
            "the rotated file is let go: {}",
            state(&lab)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(state(&lab)["files"][0]["rotated"], false);
}

#[test]
fn copy_truncate_is_noticed_and_the_file_read_from_its_start() {
    let lab = Lab::new();
    let path = lab.log("copied.log");
    fs::write(&path, "").expect("copied.log");
    let run = lab.start(&[]);
    let text: String = (1..=50).map(|i| format!("old line {i}\n")).collect();
    append(&path, &text);
    run.out.wait_line(&lab.label("copied.log", "old line 50"));
    // copytruncate: the copy is made elsewhere, then the file is emptied in place.
    truncate(&path);
    run.err.wait_containing("truncated");
    append(&path, "after truncation\n");
    run.out
        .wait_line(&lab.label("copied.log", "after truncation"));
    assert!(
        run.err
            .all()
            .iter()
            .any(|l| l.contains("copied.log: truncated") && l.contains("lost")),
        "says what copy-truncate risks: {:#?}",
        run.err.all()
    );
}

#[test]
fn lines_not_read_yet_at_a_copy_truncate_are_printed_from_the_copy() {
    let lab = Lab::new();
    let path = lab.log("app.log");
    fs::write(&path, "").expect("app.log");
    fs::write(lab.log("app.log.2"), "an older rotation\n").expect("older copy");
    let mut run = lab.start(&[]);
    // More than is written after the truncation: a file that grew back past where
    // logtail was before it looked can't be told from one that grew.
    let read: String = (1..=10).map(|i| format!("read {i}\n")).collect();
    append(&path, &read);
    run.out.wait_line(&lab.label("app.log", "read 10"));
    // logtail busy elsewhere (here: stopped) while the writer goes on and logrotate
    // copies and truncates: the last lines are in the copy only.
    let pid = nix::unistd::Pid::from_raw(run.child.id() as i32);
    nix::sys::signal::kill(pid, Signal::SIGSTOP).expect("stop");
    let unread: String = (1..=30).map(|i| format!("unread {i}\n")).collect();
    append(&path, &unread);
    append(&path, "half a li");
    fs::copy(&path, lab.log("app.log.1")).expect("copy");
    truncate(&path);
    append(&path, "ne\nafter truncation\n");
    nix::sys::signal::kill(pid, Signal::SIGCONT).expect("continue");
    run.out.wait_line(&lab.label("app.log", "after truncation"));
    let printed = run.out.all();
    let expected: Vec<String> = (1..=10)
        .map(|i| format!("read {i}"))
        .chain((1..=30).map(|i| format!("unread {i}")))
        .chain(["half a li", "ne", "after truncation"].map(String::from))
        .map(|t| lab.label("app.log", &t))
        .collect();
    assert_eq!(printed, expected, "every line once, in order; none lost");
    // Said on stderr (read by a thread of its own: waited for, not looked at once).
    run.err
        .wait_for("the note on where the unread lines came from", |lines| {
            lines.iter().any(|l| {
                l.contains("app.log: truncated")
                    && l.contains("from its copy")
                    && l.contains("app.log.1")
            })
        });
    assert_eq!(run.signal(Signal::SIGTERM).code(), Some(0));
}

#[test]
fn after_sigterm_a_restart_goes_on_exactly_even_across_a_rotation_while_stopped() {
    let lab = Lab::new();
    let path = lab.log("svc.log");
    fs::write(&path, "one\ntwo\n").expect("svc.log");
    let mut run = lab.start(&[]);
    run.out.wait_line(&lab.label("svc.log", "two"));
    assert!(run.signal(Signal::SIGTERM).success(), "SIGTERM: exit 0");
    assert_eq!(state(&lab)["clean"], true);
    // While stopped: more lines, half a line, then a rename rotation.
    append(&path, "three\nfour\nhal");
    append(&path, "f\n");
    fs::rename(&path, lab.log("svc.log.1")).expect("rotate");
    fs::write(&path, "fresh\n").expect("new svc.log");
    let run = lab.start(&[]);
    run.out.wait_line(&lab.label("svc.log", "fresh"));
    run.out.wait_line(&lab.label("svc.log", "half"));
    let printed = run.out.all();
    let expected: Vec<String> = ["three", "four", "half", "fresh"]
        .iter()
        .map(|t| lab.label("svc.log", t))
        .collect();
    assert_eq!(
        printed, expected,
        "nothing again, nothing missed, the old file first"
    );
    assert!(
        !run.err.all().iter().any(|l| l.contains("unclean")),
        "a clean stop is not reported as unclean: {:#?}",
        run.err.all()
    );
}

#[test]
fn after_sigkill_a_restart_says_so_and_repeats_nothing_printed_before_the_last_save() {
    let lab = Lab::new();
    let path = lab.log("k.log");
    fs::write(&path, "").expect("k.log");
    let mut run = lab.start(&[]);
    for i in 1..=3 {
        append(&path, &format!("batch {i}\n"));
        run.out
            .wait_line(&lab.label("k.log", &format!("batch {i}")));
    }
    // Each batch was saved right after it was printed.
    let deadline = Instant::now() + DEADLINE;
    while state(&lab)["files"][0]["offset"] != 24 {
        assert!(
            Instant::now() < deadline,
            "saved after printing: {}",
            state(&lab)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    run.signal(Signal::SIGKILL);
    assert_eq!(state(&lab)["clean"], false);
    append(&path, "batch 4\n");
    let run = lab.start(&[]);
    run.out.wait_line(&lab.label("k.log", "batch 4"));
    run.err.wait_containing("unclean stop");
    assert_eq!(run.out.all(), vec![lab.label("k.log", "batch 4")]);
}

#[test]
fn a_file_removed_while_stopped_is_reported_and_a_damaged_state_starts_afresh() {
    let lab = Lab::new();
    fs::write(lab.log("gone.log"), "x\n").expect("gone.log");
    let mut run = lab.start(&[]);
    run.out.wait_line(&lab.label("gone.log", "x"));
    run.signal(Signal::SIGTERM);
    fs::remove_file(lab.log("gone.log")).expect("rm");
    fs::write(lab.log("other.log"), "y\n").expect("other.log");
    let mut run = lab.start(&[]);
    run.out.wait_line(&lab.label("other.log", "y"));
    run.err
        .wait_containing("gone.log: gone while logtail was stopped");
    run.signal(Signal::SIGTERM);

    fs::write(&lab.state, "{ not json").expect("damage the state");
    let run = lab.start(&["--lines", "1"]);
    run.err.wait_containing("starting afresh");
    run.out.wait_line(&lab.label("other.log", "y"));
    assert!(
        state(&lab)["files"].is_array(),
        "a good state replaces the damaged one"
    );
}

#[test]
fn an_idle_logtail_does_not_wake_up() {
    let lab = Lab::new();
    fs::write(lab.log("quiet.log"), "hello\n").expect("quiet.log");
    let run = lab.start(&[]);
    run.out.wait_line(&lab.label("quiet.log", "hello"));
    // Let start-up settle (the save of what was printed comes at most
    // `logtail::tailer::SAVE_EVERY` after it), then count wake-ups over two idle seconds.
    std::thread::sleep(logtail::tailer::SAVE_EVERY + Duration::from_millis(500));
    let before = run.switches();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        run.switches(),
        before,
        "no timer, no polling while nothing changes"
    );
    append(&lab.log("quiet.log"), "still here\n");
    run.out.wait_line(&lab.label("quiet.log", "still here"));
}

#[test]
fn bad_arguments_and_a_missing_directory_are_clear_errors() {
    let output = Command::new(env!("CARGO_BIN_EXE_logtail"))
        .arg("relative/*.log")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("absolute"));

    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    let output = Command::new(env!("CARGO_BIN_EXE_logtail"))
        .arg(format!("{}/*.log", missing.display()))
        .arg("--state")
        .arg(dir.path().join("state.json"))
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&missing.display().to_string()) && stderr.contains("watch"),
        "{stderr}"
    );
}

#[test]
fn a_flooding_file_does_not_keep_another_off_the_console() {
    let lab = Lab::new();
    fs::write(lab.log("flood.log"), "").expect("flood.log");
    fs::write(lab.log("quiet.log"), "ready\n").expect("quiet.log");
    let run = lab.start(&[]);
    run.out.wait_line(&lab.label("quiet.log", "ready"));
    // 4 MiB at once into one file (16 batches' worth), then one line into the other.
    let flood: String = (0..65536)
        .map(|i| format!("flood line {i:09} {}\n", "x".repeat(40)))
        .collect();
    append(&lab.log("flood.log"), &flood);
    append(&lab.log("quiet.log"), "heard\n");
    let last = format!("flood line {:09} {}", 65535, "x".repeat(40));
    run.out.wait_line(&lab.label("flood.log", &last));
    let printed = run.out.all();
    let heard = printed
        .iter()
        .position(|l| *l == lab.label("quiet.log", "heard"))
        .expect("heard");
    let end = printed
        .iter()
        .position(|l| *l == lab.label("flood.log", &last))
        .expect("last");
    assert!(
        heard < end,
        "the quiet file's line ({heard}) before the flood's end ({end})"
    );
    assert_eq!(printed.len(), 65536 + 2, "every line once");
}

#[test]
fn without_a_writable_state_it_says_so_goes_on_printing_and_does_not_exit_0() {
    let lab = Lab::new();
    let blocker = lab.logs.parent().expect("dir").join("not-a-dir");
    fs::write(&blocker, "").expect("a file where the state's directory would be");
    fs::write(lab.log("a.log"), "one\n").expect("a.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_logtail"))
        .arg(format!("{}/*.log", lab.logs.display()))
        .arg("--state")
        .arg(blocker.join("state.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("logtail");
    let out = Lines::collect(child.stdout.take().expect("stdout"));
    let err = Lines::collect(child.stderr.take().expect("stderr"));
    let mut run = Running { child, out, err };
    run.out.wait_line(&lab.label("a.log", "one"));
    run.err
        .wait_containing("can't save where the files were left");
    append(&lab.log("a.log"), "two\n");
    run.out.wait_line(&lab.label("a.log", "two"));
    // Stopped without its state: not the exit 0 that promises a restart goes on exactly.
    let status = run.signal(Signal::SIGTERM);
    assert_eq!(status.code(), Some(1), "{status:?}");
    run.err
        .wait_containing("stopped without saving where the files were left");
}

#[test]
fn a_removed_directory_ends_the_run_with_a_clear_error() {
    let lab = Lab::new();
    fs::write(lab.log("a.log"), "one\n").expect("a.log");
    let mut run = lab.start(&[]);
    run.out.wait_line(&lab.label("a.log", "one"));
    fs::remove_dir_all(&lab.logs).expect("rm -r the log directory");
    let status = run.child.wait().expect("wait");
    assert_eq!(status.code(), Some(1));
    run.err
        .wait_containing("the watched directory was removed or moved");
}

#[test]
fn file_names_lines_and_notes_reach_the_console_escaped() {
    let lab = Lab::new();
    // A name with ESC sequences (clear the screen, set the title), a line with raw ESC
    // and C1 controls (U+009B is CSI to a UTF-8 terminal), and a refused entry (a
    // symbolic link) whose name the note on stderr carries.
    let name = "x\x1b[2J\x1b]0;owned\x07.log";
    fs::write(lab.log(name), "plain text\n").expect("named log");
    fs::write(
        lab.log("c1.log"),
        b"esc \x1b[31m c1 \xc2\x9b2J\xc2\x9d0;t\n",
    )
    .expect("c1.log");
    std::os::unix::fs::symlink(lab.log("c1.log"), lab.log("\x1b[5mlink.log")).expect("link");
    let run = lab.start(&[]);
    let label = format!("{}/x\\x1b[2J\\x1b]0;owned\\x07.log", lab.logs.display());
    run.out.wait_line(&format!("{label}: plain text"));
    run.out
        .wait_line(&lab.label("c1.log", "esc \\x1b[31m c1 \\u{9b}2J\\u{9d}0;t"));
    run.err
        .wait_containing("/\\x1b[5mlink.log: not followed: a symbolic link");
    let raw = |c: char| {
        run.out
            .all()
            .iter()
            .chain(run.err.all().iter())
            .any(|l| l.contains(c))
    };
    for c in ['\x1b', '\x07', '\u{9b}', '\u{9d}'] {
        assert!(!raw(c), "{c:?} reached the console raw");
    }
}
