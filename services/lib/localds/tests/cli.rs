//! `localds resolve`'s command line (no root, no network: an empty instances directory,
//! so nothing is looked up): the duration flags in confkit's syntax, the earlier
//! millisecond spellings still accepted, and usage errors as exit 2.

use std::process::Command;

fn resolve(args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(lab::bin("localds"))
        .args(["resolve", "app.local", "--instances"])
        .arg(dir.path())
        .args(args)
        .output()
        .expect("localds");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn durations_in_confkit_syntax_and_the_earlier_millisecond_flags() {
    for args in [
        &["--budget", "1500ms", "--settle", "20ms"][..],
        &["--budget", "2s"],
        &["--budget-ms", "1500", "--settle-ms", "20"],
        &["--methods", "a-query,https"],
        &["--set-aside", "bn1=10.1.0.5"],
    ] {
        let (code, out) = resolve(args);
        // No bridges: nothing can answer, so "not found" (1) with its JSON, never usage.
        assert_eq!(code, 1, "{args:?}: {out}");
        let json: serde_json::Value = serde_json::from_str(&out).expect("JSON on stdout");
        assert!(json["tried"].is_array(), "{json}");
    }
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &["--budget", "soon"][..],
        &["--budget", "1s", "--budget-ms", "1000"],
        &["--settle", "1s", "--settle-ms", "5"],
        &["--methods", "carrier-pigeon"],
        &["--set-aside", "bn1"],
        &["--frobnicate", "1"],
    ] {
        assert_eq!(resolve(args).0, 2, "{args:?}");
    }
}
