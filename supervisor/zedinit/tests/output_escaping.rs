//! What services control reaches an operator's terminal only escaped: a service's
//! `STATUS=` text in `supctl status`, its output lines in `supctl logs` (and `logs -f`),
//! and definition errors naming odd files. ESC, BEL, CR, DEL and C1 controls (U+009B is
//! CSI to a UTF-8 terminal) come out as visible `\x1b`, `\u{9b}`; `--json` keeps the
//! text exactly (JSON escapes it).

mod common;
use common::*;
use std::time::Instant;

/// What the service says on its notify socket: a title (OSC 0), clear screen, a C1 CSI,
/// DEL and BEL. testkit turns the literal `\n` into the line separator.
const STATUS: &str = "ok \u{1b}]0;title set by a service\u{7}\u{1b}[2J \u{9b}31mred \u{7f}";
const STATUS_SHOWN: &str = "ok \\x1b]0;title set by a service\\x07\\x1b[2J \\u{9b}31mred \\x7f";
/// What it prints (sh's printf, in octal): OSC 52 (write the clipboard), C1 CSI as UTF-8,
/// DEL and a carriage return that would overwrite the line's start.
const PRINTF: &str = r"line \033]52;c;Y3VybCBldmlsfHNo\007 c1 \302\23331m del \177 cr \r end\n";
const LINE_SHOWN: &str =
    "line \\x1b]52;c;Y3VybCBldmlsfHNo\\x07 c1 \\u{9b}31m del \\x7f cr \\x0d end";

/// `text` as a TOML basic string with every character outside printable ASCII escaped.
fn toml_quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Every character in `text` a terminal would act on (newline, the line separator, and
/// tab aside).
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| c.is_control() && *c != '\n' && *c != '\t')
        .collect()
}

fn chatty(lab: &Lab) {
    let script = format!("printf '{PRINTF}'; exec \"$0\" notify \"$1\" sleep");
    lab.write_service(
        "chatty",
        &format!(
            "command = [\"/bin/sh\", \"-c\", {}, {}, {}]\n[ready]\nnotify = true\ntimeout = \"20s\"\n",
            toml_quoted(&script),
            toml_quoted(TESTKIT),
            toml_quoted(&format!("READY=1\\nSTATUS={STATUS}")),
        ),
    );
}

#[test]
fn status_text_from_a_service_is_shown_escaped_and_json_keeps_it_exactly() {
    if !require_root("status_text_from_a_service_is_shown_escaped_and_json_keeps_it_exactly") {
        return;
    }
    let mut lab = Lab::new();
    chatty(&lab);
    lab.start();
    lab.wait_state("chatty", "ready");

    let (code, out, err) = lab.supctl(&["status", "chatty"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        raw_controls(&out),
        [],
        "raw controls reach the terminal: {out:?}"
    );
    assert!(out.contains(STATUS_SHOWN), "{out:?}");

    let (code, json, err) = lab.supctl(&["status", "--json", "chatty"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(report["services"][0]["status_text"], STATUS, "{json}");
}

#[test]
fn output_lines_from_a_service_are_shown_escaped_by_logs_and_logs_follow() {
    if !require_root("output_lines_from_a_service_are_shown_escaped_by_logs_and_logs_follow") {
        return;
    }
    let mut lab = Lab::new();
    chatty(&lab);
    lab.start();
    lab.wait_state("chatty", "ready");
    wait_until("chatty's line in its ring", || {
        lab.supctl(&["logs", "chatty"]).1.contains("end")
    });

    let (code, out, err) = lab.supctl(&["logs", "chatty"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        raw_controls(&out),
        [],
        "raw controls reach the terminal: {out:?}"
    );
    assert!(
        out.contains(&format!("chatty.out: {LINE_SHOWN}\n")),
        "{out:?}"
    );

    // Following prints the same lines the same way.
    let follower = lab.follow_logs(&["-n", "1"], "chatty");
    let line = follower.next_line_by(Instant::now() + DEADLINE);
    assert_eq!(raw_controls(&line), [], "{line:?}");
    assert!(
        line.ends_with(&format!("chatty.out: {LINE_SHOWN}")),
        "{line:?}"
    );
}

#[test]
fn definition_errors_naming_odd_files_are_shown_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad\u{1b}]0;x\u{7}\u{9b}2J.toml"),
        "command = 1\n",
    )
    .expect("definition");
    let out = std::process::Command::new(supctl_bin())
        .arg("check")
        .arg(dir.path())
        .output()
        .expect("supctl check");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(raw_controls(&text), [], "{text:?}");
    assert!(text.contains("bad\\x1b]0;x\\x07\\u{9b}2J.toml"), "{text:?}");
}
