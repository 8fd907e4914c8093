//! `downloader fetch`: the same engine for a person. Plain progress lines when stderr is
//! not a terminal, the exit code and a clear message on failure, resume from `FILE.part`.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};

fn fetch(lab: &Lab, url: &str, sha: &str, out: &Path, extra: &[&str]) -> Output {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.cli_ns,
            env!("CARGO_BIN_EXE_downloader"),
            "fetch",
            url,
        ])
        .args(["--sha256", sha, "-o"])
        .arg(out)
        .args([
            "--stall-timeout",
            "5s",
            "--backoff-base",
            "100ms",
            "--retries",
            "2",
        ])
        .args(extra)
        .output()
        .expect("downloader fetch")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn fetch_downloads_resumes_and_fails_clearly() {
    if !require_root("fetch_downloads_resumes_and_fails_clearly") {
        return;
    }
    let lab = Lab::new(21);
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www");
    let data = payload(500_000, 31);
    let sha = sha256_hex(&data);
    std::fs::write(www.join("image.bin"), &data).expect("write");
    let httpd = Server::httpd(&lab, &www, 8021, "httpd.log");
    let url = httpd.url("/image.bin");

    // A good download: plain lines, exit 0.
    let out = lab.path("a.bin");
    let o = fetch(&lab, &url, &sha, &out, &["--size", "500000"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(std::fs::read(&out).expect("out"), data);
    assert!(
        err.contains("progress 100% (500000 of 500000 bytes)"),
        "{err}"
    );
    assert!(err.contains("downloaded and verified"), "{err}");
    assert!(!err.contains('\r'), "a bar drawn on a pipe: {err:?}");

    // Resume from a kept FILE.part (as after Ctrl-C): a Range request, the same file.
    let out = lab.path("b.bin");
    std::fs::write(lab.path("b.bin.part"), &data[..123_456]).expect("part");
    let o = fetch(&lab, &url, &sha, &out, &[]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("downloaded (resumed) and verified"), "{err}");
    assert_eq!(std::fs::read(&out).expect("out"), data);
    assert!(!lab.path("b.bin.part").exists());
    assert!(httpd.log().contains("response:206"), "{}", httpd.log());

    // A wrong hash: exit 1, the reason, no file.
    let out = lab.path("c.bin");
    let wrong = sha256_hex(b"something else");
    let o = fetch(&lab, &url, &wrong, &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("fetch {url} failed: sha256 mismatch")),
        "{err}"
    );
    assert!(!out.exists() && !lab.path("c.bin.part").exists());

    // A 404: exit 1, said plainly.
    let out = lab.path("d.bin");
    let o = fetch(&lab, &httpd.url("/nope"), &sha, &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("HTTP 404 Not Found"), "{err}");
    assert!(!out.exists() && !lab.path("d.bin.part").exists());

    // Nobody listening: retried, then given up with the cause.
    let out = lab.path("e.bin");
    let o = fetch(
        &lab,
        &format!("http://{}:8999/x", lab.srv_ip),
        &sha,
        &out,
        &[],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("retry 2"), "{err}");
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
}

/// No namespace needed: bad arguments are a usage error (exit 2).
#[test]
fn fetch_refuses_a_bad_sha256_as_usage() {
    let o = Command::new(env!("CARGO_BIN_EXE_downloader"))
        .args([
            "fetch",
            "http://127.0.0.1:9/x",
            "--sha256",
            "abc",
            "-o",
            "/nonexistent/x",
        ])
        .output()
        .expect("downloader fetch");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not 64 hex digits"), "{}", stderr(&o));
}
