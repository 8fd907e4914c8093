//! The download engine's behaviours, driven through `downloader serve` (so each outcome
//! is checked where the device sees it: the status file and the download directory).
//! Real busybox httpd in a server namespace for the main paths; a purpose-built server
//! (`TinyServer`) only where a real one can't be made to misbehave on cue.

mod common;

use common::*;
use downloader::status::State;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const KEY: &str = "img";

#[test]
fn a_good_download_lands_verified_and_moves_through_the_states() {
    if !require_root("a_good_download_lands_verified_and_moves_through_the_states") {
        return;
    }
    let lab = Lab::new(1);
    // Slow enough (≈1 s) for the status to be seen mid-transfer.
    lab.rate_limit("8mbit");
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www");
    let data = payload(1 << 20, 1);
    std::fs::write(www.join("image.bin"), &data).expect("write");
    let httpd = Server::httpd(&lab, &www, 8001, "httpd.log");
    let dirs = Dirs::new(&lab);
    let _serve = Serve::start(&lab, &dirs, &[]);

    // A host name, not an IP: the system resolver's path (/etc/hosts of the namespace).
    let url = "http://datastore.test:8001/image.bin";
    dirs.request(KEY, request_json("ubuntu", url, &data));
    let mut trail = StatusTrail::new(&dirs, KEY);
    let mid = trail.wait("a progress update mid-transfer", |s| {
        s.state == State::Downloading && s.progress > 0 && s.progress < 100
    });
    assert!(mid.current_size > 0 && mid.current_size < data.len() as u64);
    let done = trail.wait("downloaded", |s| s.state == State::Downloaded);

    let sha = sha256_hex(&data);
    assert_eq!(std::fs::read(dirs.target(&sha)).expect("target"), data);
    assert!(!dirs.part(&sha).exists(), ".part left behind");
    assert_eq!(done.progress, 100);
    assert_eq!(done.current_size, data.len() as u64);
    assert_eq!(done.total_size, data.len() as u64);
    assert_eq!(done.retries, 0);
    assert!(done.first_error.is_none() && done.last_error.is_none());
    assert_eq!(
        done.endpoint.as_deref(),
        Some(httpd.addr.to_string().as_str())
    );
    assert_eq!(done.name, "ubuntu");
    assert_eq!(done.sha256.as_deref(), Some(sha.as_str()));
    assert!(done.bridge.is_none() && done.resolved_by.is_none());
    let order = [
        State::Initial,
        State::Resolving,
        State::Downloading,
        State::Downloaded,
    ];
    let ranks: Vec<usize> = trail
        .seen
        .iter()
        .map(|s| order.iter().position(|o| o == s).expect("no error state"))
        .collect();
    assert!(
        ranks.windows(2).all(|w| w[0] < w[1]),
        "states out of order: {:?}",
        trail.seen
    );
    assert!(httpd.log().contains("response:200"), "{}", httpd.log());
}

#[test]
fn a_wrong_sha256_publishes_nothing_and_says_so() {
    if !require_root("a_wrong_sha256_publishes_nothing_and_says_so") {
        return;
    }
    let lab = Lab::new(2);
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www");
    let data = payload(300_000, 2);
    std::fs::write(www.join("image.bin"), &data).expect("write");
    let httpd = Server::httpd(&lab, &www, 8002, "httpd.log");
    let dirs = Dirs::new(&lab);
    // An earlier good file in the download directory: must stay as it is.
    let earlier = payload(1000, 99);
    std::fs::write(dirs.target(&sha256_hex(&earlier)), &earlier).expect("earlier");
    let _serve = Serve::start(&lab, &dirs, &[]);

    let claimed = payload(300_000, 3); // same size, other content
    let sha = sha256_hex(&claimed);
    dirs.request(
        KEY,
        serde_json::json!({"name": "x", "url": httpd.url("/image.bin"), "sha256": sha, "size": data.len()}),
    );
    let s = StatusTrail::new(&dirs, KEY).wait("error", |s| s.state == State::Error);
    let msg = s.last_error.expect("last_error").message;
    assert!(msg.contains("sha256 mismatch"), "{msg}");
    assert!(
        msg.contains(&sha) && msg.contains(&sha256_hex(&data)),
        "{msg}"
    );
    assert_eq!(
        s.retries, 0,
        "a wrong hash from a fresh start is not retried"
    );
    assert!(!dirs.target(&sha).exists(), "a bad file was published");
    assert!(!dirs.part(&sha).exists(), "the bad bytes were kept");
    assert_eq!(
        std::fs::read(dirs.target(&sha256_hex(&earlier))).expect("earlier"),
        earlier
    );
}

#[test]
fn a_server_killed_mid_transfer_is_resumed_with_range() {
    if !require_root("a_server_killed_mid_transfer_is_resumed_with_range") {
        return;
    }
    let lab = Lab::new(3);
    lab.rate_limit("4mbit");
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www");
    let data = payload(2 << 20, 4);
    std::fs::write(www.join("image.bin"), &data).expect("write");
    let mut httpd = Server::nginx(&lab, &www, 8003, "nginx1");
    let dirs = Dirs::new(&lab);
    let serve = Serve::start(&lab, &dirs, &[("--retries", "30")]);
    dirs.request(KEY, request_json("x", &httpd.url("/image.bin"), &data));

    let mut trail = StatusTrail::new(&dirs, KEY);
    trail.wait("a quarter received", |s| s.progress >= 25);
    httpd.kill();
    let s = trail.wait("the failure recorded and a retry scheduled", |s| {
        s.retries >= 1 && s.last_error.is_some()
    });
    assert_ne!(s.state, State::Error, "a dropped connection is not final");
    let sha = sha256_hex(&data);
    let kept = std::fs::metadata(dirs.part(&sha))
        .expect(".part kept")
        .len();
    assert!(kept > 0);

    let httpd2 = Server::nginx(&lab, &www, 8003, "nginx2");
    let done = trail.wait("downloaded", |s| s.state == State::Downloaded);
    assert_eq!(std::fs::read(dirs.target(&sha)).expect("target"), data);
    assert!(!dirs.part(&sha).exists());
    assert!(done.retries >= 1);
    let first = done.first_error.expect("first_error");
    assert!(
        first.message.contains("connection closed after"),
        "{}",
        first.message
    );
    // The restarted server was asked for the rest, from exactly the kept bytes.
    let asked = format!("\" 206 range=\"bytes={kept}-\"");
    assert!(
        httpd2.log().contains(&asked),
        "{asked} not in {}",
        httpd2.log()
    );
    assert!(serve.log().contains("resumed at"), "{}", serve.log());
}

#[test]
fn a_stall_is_aborted_after_the_timeout_and_retried() {
    if !require_root("a_stall_is_aborted_after_the_timeout_and_retried") {
        return;
    }
    let lab = Lab::new(4);
    let data = Arc::new(payload(200_000, 5));
    let half = data.len() / 2;
    // Purpose-built server: the first connection sends headers and half the body, then
    // goes silent with the connection open (what busybox can't be told to do); later
    // connections honour Range.
    let body = data.clone();
    let server = TinyServer::start(
        &lab,
        8004,
        Arc::new(move |i, head, stream, stop| {
            if i == 0 {
                let h = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                let _ = stream.write_all(h.as_bytes());
                let _ = stream.write_all(&body[..half]);
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            } else {
                respond(stream, &body, range_start(head).unwrap_or(0));
            }
        }),
    );
    let dirs = Dirs::new(&lab);
    let _serve = Serve::start(&lab, &dirs, &[("--stall-timeout", "1s")]);
    dirs.request(KEY, request_json("x", &server.url("/image.bin"), &data));

    let done = StatusTrail::new(&dirs, KEY).wait("downloaded", |s| s.state == State::Downloaded);
    let sha = sha256_hex(&data);
    assert_eq!(std::fs::read(dirs.target(&sha)).expect("target"), *data);
    assert_eq!(done.retries, 1);
    let first = done.first_error.expect("first_error");
    assert!(
        first.message.contains("stalled: no data for 1s"),
        "{}",
        first.message
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    // The second attempt came only after the stall timeout, and resumed where the
    // first one stopped.
    assert!(requests[1].0 - requests[0].0 >= Duration::from_secs(1));
    assert_eq!(
        range_start(&requests[1].1),
        Some(half as u64),
        "{}",
        requests[1].1
    );
}

#[test]
fn more_bytes_than_declared_are_refused() {
    if !require_root("more_bytes_than_declared_are_refused") {
        return;
    }
    let lab = Lab::new(5);
    let declared = payload(100_000, 6);
    // Purpose-built server: no Content-Length, the declared bytes and then more, then
    // close (a body only its end delimits, so only counting can catch it).
    let mut longer = declared.clone();
    longer.extend_from_slice(&payload(5000, 7));
    let body = Arc::new(longer);
    let server = TinyServer::start(
        &lab,
        8005,
        Arc::new(move |_, _, stream, _| {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(&body);
        }),
    );
    // And a real server whose file is bigger than declared: its Content-Length says so.
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www");
    let big = payload(150_000, 8);
    std::fs::write(www.join("big.bin"), &big).expect("write");
    let httpd = Server::httpd(&lab, &www, 8015, "httpd.log");

    let dirs = Dirs::new(&lab);
    let _serve = Serve::start(&lab, &dirs, &[]);
    dirs.request(
        "unannounced",
        request_json("x", &server.url("/x"), &declared),
    );
    let mut claimed = request_json("y", &httpd.url("/big.bin"), &big);
    claimed["size"] = serde_json::json!(100_000);
    dirs.request("announced", claimed);

    let s = StatusTrail::new(&dirs, "unannounced").wait("error", |s| s.state == State::Error);
    let msg = s.last_error.expect("last_error").message;
    assert!(msg.contains("more bytes than the declared 100000"), "{msg}");
    assert_eq!(s.retries, 0);
    assert!(
        s.current_size <= 100_000,
        "counted past the limit: {}",
        s.current_size
    );
    let sha = sha256_hex(&declared);
    assert!(!dirs.target(&sha).exists() && !dirs.part(&sha).exists());

    let s = StatusTrail::new(&dirs, "announced").wait("error", |s| s.state == State::Error);
    let msg = s.last_error.expect("last_error").message;
    assert!(
        msg.contains("server says the file is 150000 bytes, the request declares 100000"),
        "{msg}"
    );
    let sha = sha256_hex(&big);
    assert!(!dirs.target(&sha).exists() && !dirs.part(&sha).exists());
}

#[test]
fn a_404_is_a_clear_final_error() {
    if !require_root("a_404_is_a_clear_final_error") {
        return;
    }
    let lab = Lab::new(6);
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www");
    let httpd = Server::httpd(&lab, &www, 8006, "httpd.log");
    let dirs = Dirs::new(&lab);
    let _serve = Serve::start(&lab, &dirs, &[]);
    let data = payload(1000, 9);
    let url = httpd.url("/missing.bin");
    dirs.request(KEY, request_json("x", &url, &data));
    let s = StatusTrail::new(&dirs, KEY).wait("error", |s| s.state == State::Error);
    let msg = s.last_error.expect("last_error").message;
    assert_eq!(msg, format!("HTTP 404 Not Found from {url}"));
    assert_eq!(s.retries, 0, "a 404 is not retried");
    let sha = sha256_hex(&data);
    assert!(!dirs.target(&sha).exists() && !dirs.part(&sha).exists());
    assert!(httpd.log().contains("response:404"));
}

#[test]
fn a_full_disk_is_a_clear_error_and_leaves_earlier_files_alone() {
    if !require_root("a_full_disk_is_a_clear_error_and_leaves_earlier_files_alone") {
        return;
    }
    let lab = Lab::new(7);
    lab.rate_limit("4mbit");
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www");
    let small = payload(256 << 10, 10);
    let huge = payload(4 << 20, 11);
    let medium = payload(1536 << 10, 12);
    for (name, data) in [("small", &small), ("huge", &huge), ("medium", &medium)] {
        std::fs::write(www.join(name), data).expect("write");
    }
    let httpd = Server::httpd(&lab, &www, 8007, "httpd.log");
    let disk = Tmpfs::mount(lab.path("disk"), "2m");
    let dirs = Dirs::with_download(&lab, disk.path.clone());
    let _serve = Serve::start(&lab, &dirs, &[]);

    // An earlier good download.
    dirs.request("small", request_json("s", &httpd.url("/small"), &small));
    StatusTrail::new(&dirs, "small").wait("downloaded", |s| s.state == State::Downloaded);
    let earlier = dirs.target(&sha256_hex(&small));

    // Can't fit at all: refused before a byte is fetched.
    dirs.request("huge", request_json("h", &httpd.url("/huge"), &huge));
    let s = StatusTrail::new(&dirs, "huge").wait("error", |s| s.state == State::Error);
    let msg = s.last_error.expect("last_error").message;
    assert!(msg.contains("not enough space in"), "{msg}");
    assert!(!dirs.part(&sha256_hex(&huge)).exists());

    // Fits when it starts, then the disk fills up under it (someone else's file).
    dirs.request("medium", request_json("m", &httpd.url("/medium"), &medium));
    let part = dirs.part(&sha256_hex(&medium));
    wait_until("the medium download to be under way", || {
        std::fs::metadata(&part).is_ok_and(|m| m.len() > 64 << 10)
    });
    let mut filler = std::fs::File::create(disk.path.join("filler")).expect("filler");
    let chunk = vec![0u8; 64 << 10];
    while filler.write_all(&chunk).is_ok() {}
    let s = StatusTrail::new(&dirs, "medium").wait("error", |s| s.state == State::Error);
    let msg = s.last_error.expect("last_error").message;
    assert!(
        msg.contains("disk full: no space left on device writing"),
        "{msg}"
    );
    assert_eq!(s.retries, 0, "a full disk is not retried blindly");
    assert!(!part.exists(), "the .part of a full disk is given back");
    assert!(!dirs.target(&sha256_hex(&medium)).exists());
    assert_eq!(std::fs::read(&earlier).expect("earlier file"), small);
}

#[test]
fn a_redirect_is_refused_and_not_followed() {
    if !require_root("a_redirect_is_refused_and_not_followed") {
        return;
    }
    let lab = Lab::new(8);
    let data = payload(10_000, 10);
    // A service of the device itself, on the client's loopback, that would even serve
    // the right bytes: a followed redirect would "succeed" through it.
    let internal_addr = std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 18002);
    let body = data.clone();
    let internal = TinyServer::start_in(
        &lab.cli_ns,
        internal_addr,
        Arc::new(move |_, _, stream, _| respond(stream, &body, 0)),
    );
    let location = format!("http://{internal_addr}/internal/admin?do=reboot");
    let target = location.clone();
    let datastore = TinyServer::start(
        &lab,
        8008,
        Arc::new(move |_, _, stream, _| {
            let _ = write!(
                stream,
                "HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }),
    );
    let dirs = Dirs::new(&lab);
    let _serve = Serve::start(&lab, &dirs, &[]);
    let url = datastore.url("/image.bin");
    dirs.request(KEY, request_json("x", &url, &data));
    let s = StatusTrail::new(&dirs, KEY).wait("an outcome", |s| {
        s.state == State::Error || s.state == State::Downloaded
    });
    assert_eq!(s.state, State::Error, "{s:?}");
    let msg = s.last_error.expect("last_error").message;
    assert!(
        msg.starts_with(&format!(
            "HTTP 302 Found from {url}: redirect to \"{location}\" refused"
        )),
        "{msg}"
    );
    assert_eq!(s.retries, 0, "a redirect is not retried");
    assert_eq!(datastore.requests().len(), 1);
    assert!(
        internal.requests().is_empty(),
        "the redirect was followed: {:?}",
        internal.requests()
    );
    let sha = sha256_hex(&data);
    assert!(!dirs.target(&sha).exists() && !dirs.part(&sha).exists());
}

#[test]
fn a_server_that_appears_after_many_failures_is_used_without_anyone_asking() {
    if !require_root("a_server_that_appears_after_many_failures_is_used_without_anyone_asking") {
        return;
    }
    let lab = Lab::new(9);
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www");
    let data = payload(100_000, 11);
    std::fs::write(www.join("image.bin"), &data).expect("write");
    let dirs = Dirs::new(&lab);
    // serve's own retry limit (none); short delays so the test is quick.
    let _serve = Serve::start(
        &lab,
        &dirs,
        &[("--backoff-base", "20ms"), ("--backoff-max", "100ms")],
    );
    let port = 8009;
    let url = format!("http://{}:{port}/image.bin", lab.srv_ip);
    dirs.request(KEY, request_json("x", &url, &data));
    // Nobody listens: connects are refused, over and over, well past the old limit of 5.
    let failing = StatusTrail::new(&dirs, KEY).wait("8 retries", |s| s.retries >= 8);
    assert_ne!(failing.state, State::Error, "gave up: {failing:?}");
    let why = failing.last_error.expect("last_error").message;
    assert!(why.to_lowercase().contains("connection refused"), "{why}");
    // The server comes up; the next retry finds it.
    let httpd = Server::httpd(&lab, &www, port, "httpd.log");
    let done = StatusTrail::new(&dirs, KEY).wait("downloaded", |s| {
        s.state == State::Downloaded || s.state == State::Error
    });
    assert_eq!(done.state, State::Downloaded, "{done:?}");
    assert_eq!(
        std::fs::read(dirs.target(&sha256_hex(&data))).expect("target"),
        data
    );
    assert!(httpd.log().contains("response:200"), "{}", httpd.log());
}
