//! `downloader serve` as a service: requests come and go, the service is killed and
//! restarted, a malformed request is reported without harm, the concurrency limit holds,
//! and the heartbeat file is touched.

mod common;

use common::*;
use downloader::status::State;
use std::time::{Duration, SystemTime};

#[test]
fn a_removed_request_is_cancelled_and_its_part_deleted() {
    if !require_root("a_removed_request_is_cancelled_and_its_part_deleted") {
        return;
    }
    let lab = Lab::new(11);
    lab.rate_limit("4mbit");
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www");
    let data = payload(2 << 20, 21);
    std::fs::write(www.join("image.bin"), &data).expect("write");
    let httpd = Server::httpd(&lab, &www, 8011, "httpd.log");
    let dirs = Dirs::new(&lab);
    let mut serve = Serve::start(&lab, &dirs, &[]);
    dirs.request("img", request_json("x", &httpd.url("/image.bin"), &data));

    let sha = sha256_hex(&data);
    StatusTrail::new(&dirs, "img").wait("downloading", |s| s.progress >= 10);
    assert!(dirs.part(&sha).exists());
    dirs.remove_request("img");
    wait_until("the .part and the status file to go", || {
        !dirs.part(&sha).exists() && dirs.status("img").is_none()
    });
    // Cancelled, not finished behind our back: nothing is published later either.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!dirs.target(&sha).exists() && !dirs.part(&sha).exists());
    assert!(serve.alive(), "serve died: {}", serve.log());
    assert!(
        serve.logged("img", "request removed; cancelling"),
        "{}",
        serve.log()
    );
    // SIGTERM ends it cleanly.
    assert!(serve.terminate().success());
}

#[test]
fn serve_killed_mid_download_resumes_when_restarted() {
    if !require_root("serve_killed_mid_download_resumes_when_restarted") {
        return;
    }
    let lab = Lab::new(12);
    lab.rate_limit("4mbit");
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www");
    let data = payload(2 << 20, 22);
    std::fs::write(www.join("image.bin"), &data).expect("write");
    let httpd = Server::httpd(&lab, &www, 8012, "httpd.log");
    let dirs = Dirs::new(&lab);
    let mut serve = Serve::start(&lab, &dirs, &[]);
    dirs.request("img", request_json("x", &httpd.url("/image.bin"), &data));

    let sha = sha256_hex(&data);
    StatusTrail::new(&dirs, "img").wait("a third received", |s| s.progress >= 33);
    serve.kill();
    let kept = std::fs::metadata(dirs.part(&sha))
        .expect(".part kept")
        .len();
    assert!(kept > 0);
    assert!(!httpd.log().contains("response:206"));

    let serve = Serve::start(&lab, &dirs, &[]);
    let mut trail = StatusTrail::new(&dirs, "img");
    let done = trail.wait("downloaded", |s| s.state == State::Downloaded);
    assert_eq!(std::fs::read(dirs.target(&sha)).expect("target"), data);
    assert!(!dirs.part(&sha).exists());
    assert_eq!(done.retries, 0, "a restart is a resume, not a retry");
    assert!(httpd.log().contains("response:206"), "{}", httpd.log());
    let log = serve.log();
    assert!(log.contains("resumed at"), "{log}");

    // Once more: the file is there and verified, nothing is fetched again.
    drop(serve);
    let requests_before = httpd.log().matches("url:").count();
    let serve = Serve::start(&lab, &dirs, &[]);
    wait_until("the restarted serve to report the file", || {
        serve.log().matches("already verified").count() == 1
    });
    // The status file follows the log line (initial, then downloaded once verified).
    wait_until("the status to say downloaded", || {
        dirs.status("img")
            .is_some_and(|s| s.state == State::Downloaded)
    });
    assert_eq!(httpd.log().matches("url:").count(), requests_before);
}

#[test]
fn a_malformed_request_gets_an_error_status_and_harms_nothing() {
    if !require_root("a_malformed_request_gets_an_error_status_and_harms_nothing") {
        return;
    }
    let lab = Lab::new(13);
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www");
    let data = payload(10_000, 23);
    std::fs::write(www.join("ok.bin"), &data).expect("write");
    let httpd = Server::httpd(&lab, &www, 8013, "httpd.log");
    let dirs = Dirs::new(&lab);
    let mut serve = Serve::start(&lab, &dirs, &[]);

    std::fs::write(dirs.config.join("garbage.json"), "{not json").expect("write");
    dirs.request(
        "fields",
        serde_json::json!({"name": "f", "url": "ftp://x/y", "sha256": "12", "colour": 1}),
    );
    dirs.request("good", request_json("g", &httpd.url("/ok.bin"), &data));

    let s = StatusTrail::new(&dirs, "garbage").wait("error", |s| s.state == State::Error);
    let msg = s.last_error.expect("error").message;
    assert!(
        msg.contains("garbage.json") && msg.contains("not valid JSON"),
        "{msg}"
    );

    let s = StatusTrail::new(&dirs, "fields").wait("error", |s| s.state == State::Error);
    let msg = s.last_error.expect("error").message;
    assert!(msg.contains("fields.json"), "{msg}");
    for field in ["`url`", "`sha256`", "`size`: missing", "`colour`: unknown"] {
        assert!(msg.contains(field), "{field} not named in {msg}");
    }
    assert_eq!(s.name, "f");

    StatusTrail::new(&dirs, "good").wait("downloaded", |s| s.state == State::Downloaded);
    assert!(serve.alive());

    // Fixing the file retries it.
    dirs.request("fields", request_json("f", &httpd.url("/ok.bin"), &data));
    StatusTrail::new(&dirs, "fields").wait("downloaded", |s| s.state == State::Downloaded);
}

#[test]
fn the_concurrency_limit_holds_others_in_initial() {
    if !require_root("the_concurrency_limit_holds_others_in_initial") {
        return;
    }
    let lab = Lab::new(14);
    lab.rate_limit("4mbit");
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www");
    let a = payload(1 << 20, 24);
    let b = payload(256 << 10, 25);
    std::fs::write(www.join("a"), &a).expect("write");
    std::fs::write(www.join("b"), &b).expect("write");
    let httpd = Server::httpd(&lab, &www, 8014, "httpd.log");
    let dirs = Dirs::new(&lab);
    let _serve = Serve::start(&lab, &dirs, &[("--max-concurrent", "1")]);

    dirs.request("a", request_json("a", &httpd.url("/a"), &a));
    StatusTrail::new(&dirs, "a").wait("a downloading", |s| s.progress >= 5);
    dirs.request("b", request_json("b", &httpd.url("/b"), &b));
    // b is accepted (status written) but waits while a transfers.
    let mut trail_b = StatusTrail::new(&dirs, "b");
    trail_b.wait("b accepted", |s| s.state == State::Initial);
    let a_now = dirs.status("a").expect("a");
    assert_eq!(a_now.state, State::Downloading);
    assert_eq!(dirs.status("b").expect("b").state, State::Initial);
    StatusTrail::new(&dirs, "a").wait("a done", |s| s.state == State::Downloaded);
    trail_b.wait("b done", |s| s.state == State::Downloaded);
    assert_eq!(std::fs::read(dirs.target(&sha256_hex(&b))).expect("b"), b);
}

/// No namespace needed: serve with no requests still beats.
#[test]
fn serve_touches_the_heartbeat_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let beat = dir.path().join("downloader.touch");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut serve = Kill(
        std::process::Command::new(env!("CARGO_BIN_EXE_downloader"))
            .arg("serve")
            .arg("--config-dir")
            .arg(dir.path().join("config"))
            .arg("--status-dir")
            .arg(dir.path().join("status"))
            .arg("--download-dir")
            .arg(dir.path().join("dl"))
            .args(["--heartbeat-interval", "100ms"])
            .env("ZEDCTR_HEARTBEAT_FILE", &beat)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("serve"),
    );
    wait_until("the first beat", || beat.exists());
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&beat)
        .expect("open")
        .set_modified(old)
        .expect("age it");
    wait_until("a fresh beat", || {
        std::fs::metadata(&beat)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t > old + Duration::from_secs(1800))
    });
    assert!(matches!(serve.0.try_wait(), Ok(None)));
}

#[test]
fn a_request_key_too_long_for_its_status_file_is_refused_in_the_log() {
    if !require_root("a_request_key_too_long_for_its_status_file_is_refused_in_the_log") {
        return;
    }
    let lab = Lab::new(15);
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www");
    let data = payload(10_000, 26);
    std::fs::write(www.join("ok.bin"), &data).expect("write");
    let httpd = Server::httpd(&lab, &www, 8015, "httpd.log");
    let dirs = Dirs::new(&lab);
    let serve = Serve::start(&lab, &dirs, &[]);
    // The longest key that fits gets its status and its file.
    let longest = "k".repeat(downloader::status::MAX_KEY_BYTES);
    dirs.request(&longest, request_json("a", &httpd.url("/ok.bin"), &data));
    StatusTrail::new(&dirs, &longest).wait("downloaded", |s| s.state == State::Downloaded);
    // One byte more (its request file's name is still a valid 243 bytes): refused, said.
    let too_long = "k".repeat(downloader::status::MAX_KEY_BYTES + 1);
    let requests_before = httpd.log().matches("url:").count();
    dirs.request(&too_long, request_json("b", &httpd.url("/ok.bin"), &data));
    wait_until("the refusal in the log", || {
        serve.logged(&too_long, "request refused: its name is 238 bytes")
    });
    assert_eq!(httpd.log().matches("url:").count(), requests_before);
}

/// Anonymous memory (KiB) a process alone holds: its heap and stacks (not its code).
fn private_dirty_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).expect("smaps");
    text.lines()
        .filter(|l| l.starts_with("Private_Dirty:"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// bench/soak.py found serve's heap at ~13 MiB, 0.45 MiB of it in use, idle after 16 MiB
/// transfers (the free tops of the transfer threads' arenas): one arena now, and once no
/// transfer runs its free memory goes back (`heap.rs`).
#[test]
fn the_heap_of_finished_transfers_is_given_back() {
    if !require_root("the_heap_of_finished_transfers_is_given_back") {
        return;
    }
    let lab = Lab::new(16);
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www");
    let data = payload(16 << 20, 26);
    std::fs::write(www.join("image.bin"), &data).expect("write");
    let httpd = Server::httpd(&lab, &www, 8016, "httpd.log");
    let dirs = Dirs::new(&lab);
    let mut serve = Serve::start(&lab, &dirs, &[]);
    wait_until("serve to start", || {
        serve.log().contains("serving requests from")
    });
    let idle = private_dirty_kib(serve.pid());
    let sha = sha256_hex(&data);
    for round in 0..4 {
        let key = format!("img{round}");
        dirs.request(&key, request_json(&key, &httpd.url("/image.bin"), &data));
        StatusTrail::new(&dirs, &key).wait("downloaded", |s| s.state == State::Downloaded);
        dirs.remove_request(&key);
        wait_until("the status file to go", || dirs.status(&key).is_none());
        std::fs::remove_file(dirs.target(&sha)).expect("remove the verified file");
    }
    // The last status write follows the transfer's end: a moment for the trim.
    let mut after = private_dirty_kib(serve.pid());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while after > idle + 6144 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        after = private_dirty_kib(serve.pid());
    }
    assert!(serve.alive(), "{}", serve.log());
    assert!(
        after <= idle + 6144,
        "private dirty memory {idle} KiB idle before, {after} KiB idle after four transfers"
    );
}
