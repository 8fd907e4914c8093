//! `zedinit --service-output`: services' output on zedinit's own stdout/stderr, tagged
//! and escaped (what a container runtime collects: on EVE the device's log pipeline),
//! with or without the per-service files.

mod common;
use common::*;

fn chatty(lab: &Lab) {
    lab.write_service(
        "chatty",
        &format!(
            "command = {}\n",
            sh(
                "echo hello; echo oops >&2; printf 'esc \\033]0;title\\007 end\\n'; exec sleep 1000"
            )
        ),
    );
}

#[test]
fn stdout_mode_sends_tagged_escaped_lines_to_zedinits_output_and_writes_no_files() {
    if !require_root(
        "stdout_mode_sends_tagged_escaped_lines_to_zedinits_output_and_writes_no_files",
    ) {
        return;
    }
    let mut lab = Lab::new();
    chatty(&lab);
    lab.start_with("", "--service-output stdout");
    lab.wait_state("chatty", "running");
    wait_until("the lines on zedinit's output", || {
        let log = lab.read("zedinit.log");
        log.contains("chatty.out: hello\n") && log.contains("chatty.err: oops\n")
    });
    let log = lab.read("zedinit.log");
    assert!(
        log.contains("chatty.out: esc \\x1b]0;title\\x07 end\n"),
        "escaped: {log}"
    );
    assert!(!log.contains('\u{1b}'), "no raw ESC reaches the console");
    // `supctl logs` still has them (the ring), but no file was written.
    let (code, out, _) = lab.supctl(&["logs", "chatty"]);
    assert_eq!(code, 0);
    assert!(out.contains("chatty.out: hello"), "{out}");
    assert!(!lab.path("logs/chatty.log").exists(), "no per-service file");
}

#[test]
fn both_mode_keeps_the_files_too() {
    if !require_root("both_mode_keeps_the_files_too") {
        return;
    }
    let mut lab = Lab::new();
    chatty(&lab);
    lab.start_with("", "--service-output both");
    wait_until("the line in the file", || {
        lab.read("logs/chatty.log").contains("chatty.out: hello")
    });
    wait_until("the line on zedinit's output", || {
        lab.read("zedinit.log").contains("chatty.out: hello\n")
    });
}
