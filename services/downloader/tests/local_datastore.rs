//! `.local` datastores end to end: `downloader fetch` in a device namespace finds the app
//! by mDNS on the bridges (real avahi-daemons), downloads from it bound to the bridge's
//! address, fails over between bridges, follows a changed address, for HTTPS checks
//! the configured chain and the app's IP in the certificate, and sets aside an app that
//! answered for the name with bytes that fail the download.

use lab::avahi::{App, Claim, Lab, require_root, sh};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DOWNLOADER: &str = env!("CARGO_BIN_EXE_downloader");

/// A www directory with a 2 MiB image; returns (dir, sha256).
fn www(lab: &Lab, name: &str) -> (PathBuf, String) {
    let dir = lab.dir.path().join(name);
    std::fs::create_dir_all(&dir).expect("www");
    sh(&format!(
        "head -c 2097152 /dev/urandom > {}/img",
        dir.display()
    ));
    let out = std::process::Command::new("sha256sum")
        .arg(dir.join("img"))
        .output()
        .expect("sha256sum");
    let hash = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    (dir, hash)
}

fn fetch(lab: &Lab, url: &str, sha: &str, out: &Path, extra: &[&str]) -> Output {
    lab.in_device(Path::new(DOWNLOADER))
        .args(["fetch", url, "--sha256", sha, "-o"])
        .arg(out)
        .arg("--network-instances")
        .arg(lab.instances())
        .args(["--backoff-base", "100ms", "--stall-timeout", "10s"])
        .args(if extra.contains(&"--retries") {
            &[][..]
        } else {
            &["--retries", "1"][..]
        })
        .args(extra)
        .output()
        .expect("downloader fetch")
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "fetch failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_local_url_downloads_from_the_right_bridge_with_that_bridges_address() {
    if !require_root("a_local_url_downloads_from_the_right_bridge_with_that_bridges_address") {
        return;
    }
    let mut lab = Lab::new(2);
    let ns = lab.app(1, 5, &App::new("dsapp"));
    let (dir, sha) = www(&lab, "www");
    let app_ip = lab.ip(1, 5);
    let log80 = lab.httpd(&ns, &app_ip, 80, &dir);
    let log8080 = lab.httpd(&ns, &app_ip, 8080, &dir);
    let out = lab.dir.path().join("got.img");
    ok(&fetch(&lab, "http://dsapp.local/img", &sha, &out, &[]));
    assert!(out.exists());
    let seen = std::fs::read_to_string(&log80).unwrap_or_default();
    let bridge_ip = lab.ip(1, 1);
    assert!(
        seen.contains(&bridge_ip),
        "the server saw another peer than the bridge's {bridge_ip}: {seen}"
    );
    // With a port.
    let out2 = lab.dir.path().join("got2.img");
    ok(&fetch(
        &lab,
        "http://DSAPP.local:8080/img",
        &sha,
        &out2,
        &[],
    ));
    assert!(
        std::fs::read_to_string(&log8080)
            .unwrap_or_default()
            .contains(&bridge_ip)
    );
}

#[test]
fn a_wrong_sha256_from_a_local_datastore_publishes_nothing() {
    if !require_root("a_wrong_sha256_from_a_local_datastore_publishes_nothing") {
        return;
    }
    let mut lab = Lab::new(1);
    let ns = lab.app(0, 5, &App::new("dsbad"));
    let (dir, _) = www(&lab, "www");
    let ip = lab.ip(0, 5);
    lab.httpd(&ns, &ip, 80, &dir);
    let out = lab.dir.path().join("got.img");
    let r = fetch(&lab, "http://dsbad.local/img", &"0".repeat(64), &out, &[]);
    assert!(!r.status.success());
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("sha256"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(!out.exists(), "nothing published");
}

#[test]
fn the_same_name_on_two_bridges_prefers_the_lease_and_fails_over_when_its_server_is_down() {
    if !require_root(
        "the_same_name_on_two_bridges_prefers_the_lease_and_fails_over_when_its_server_is_down",
    ) {
        return;
    }
    let mut lab = Lab::new(2);
    let a0 = lab.app(0, 5, &App::new("twin"));
    let a1 = lab.app(1, 5, &App::new("twin"));
    let (dir, sha) = www(&lab, "www");
    let (ip0, ip1) = (lab.ip(0, 5), lab.ip(1, 5));
    let log0 = lab.httpd(&a0, &ip0, 80, &dir);
    let log1 = lab.httpd(&a1, &ip1, 80, &dir);
    lab.lease(1, &ip1, "twin");
    let out = lab.dir.path().join("a.img");
    ok(&fetch(&lab, "http://twin.local/img", &sha, &out, &[]));
    assert!(
        std::fs::read_to_string(&log1)
            .unwrap_or_default()
            .contains(&lab.ip(1, 1)),
        "the leased bridge's app served it"
    );
    assert!(
        std::fs::read_to_string(&log0)
            .unwrap_or_default()
            .is_empty()
    );
    // The leased app's server goes down: the other bridge's app serves.
    let last = lab.daemon_count() - 1;
    lab.kill_daemon(last);
    let out = lab.dir.path().join("b.img");
    ok(&fetch(&lab, "http://twin.local/img", &sha, &out, &[]));
    assert!(
        std::fs::read_to_string(&log0)
            .unwrap_or_default()
            .contains(&lab.ip(0, 1)),
        "failed over to bridge 0"
    );
}

#[test]
fn a_changed_app_address_between_downloads_is_followed() {
    if !require_root("a_changed_app_address_between_downloads_is_followed") {
        return;
    }
    let mut lab = Lab::new(1);
    let ns = lab.app(0, 9, &App::new("mover"));
    let (dir, sha) = www(&lab, "www");
    let (old, new) = (lab.ip(0, 9), lab.ip(0, 19));
    lab.httpd(&ns, &old, 80, &dir);
    ok(&fetch(
        &lab,
        "http://mover.local/img",
        &sha,
        &lab.dir.path().join("1.img"),
        &[],
    ));
    let last = lab.daemon_count() - 1;
    lab.kill_daemon(last);
    sh(&format!(
        "ip -n {ns} addr del {old}/24 dev eth0 && ip -n {ns} addr add {new}/24 dev eth0"
    ));
    lab.httpd(&ns, &new, 80, &dir);
    // avahi re-announces the new address within a moment; the retry resolves afresh.
    let out = fetch(
        &lab,
        "http://mover.local/img",
        &sha,
        &lab.dir.path().join("2.img"),
        &["--retries", "5"],
    );
    ok(&out);
}

/// A test CA and a server certificate for `ip` (with or without the IP SAN).
fn certs(dir: &Path, ip: &str, with_san: bool) {
    let san = if with_san {
        format!("subjectAltName=IP:{ip}")
    } else {
        "subjectAltName=DNS:unrelated.example".into()
    };
    sh(&format!(
        "cd {d} && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=zedctr-test-ca 2>/dev/null && \
         openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=dsapp 2>/dev/null && \
         printf '%s\\n' '{san}' > ext && \
         openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext 2>/dev/null",
        d = dir.display()
    ));
}

fn s_server(lab: &mut Lab, ns: &str, ip: &str, certdir: &Path, www: &Path) {
    // openssl s_server -WWW serves files relative to its working directory.
    let script = format!(
        "cd {www} && exec openssl s_server -quiet -accept {ip}:443 -cert {c}/srv.pem -key {c}/srv.key -WWW",
        www = www.display(),
        c = certdir.display()
    );
    let log = std::fs::File::create(lab.dir.path().join("s_server.log")).expect("log");
    let child = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", &script])
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("openssl s_server");
    lab.adopt(child);
    std::thread::sleep(std::time::Duration::from_millis(500));
}

#[test]
fn https_to_a_local_datastore_checks_the_chain_and_the_ip_san() {
    if !require_root("https_to_a_local_datastore_checks_the_chain_and_the_ip_san") {
        return;
    }
    let mut lab = Lab::new(1);
    let ns = lab.app(
        0,
        5,
        &App {
            services: &["_https._tcp"],
            ..App::new("secure")
        },
    );
    let (dir, sha) = www(&lab, "www");
    let ip = lab.ip(0, 5);
    let good = lab.dir.path().join("good");
    std::fs::create_dir_all(&good).expect("dir");
    certs(&good, &ip, true);
    s_server(&mut lab, &ns, &ip, &good, &dir);
    let ca = good.join("ca.pem");
    let size = "2097152";
    let out = lab.dir.path().join("s.img");
    ok(&fetch(
        &lab,
        "https://secure.local/img",
        &sha,
        &out,
        &[
            "--ca-chain",
            ca.to_str().unwrap_or_default(),
            "--size",
            size,
        ],
    ));
    // Without the chain: the system roots don't know our test CA.
    let out2 = lab.dir.path().join("s2.img");
    let r = fetch(
        &lab,
        "https://secure.local/img",
        &sha,
        &out2,
        &["--size", size],
    );
    assert!(
        !r.status.success() && !out2.exists(),
        "accepted without the chain"
    );
    // A certificate without the app's IP in its subjectAltName is refused.
    let last = lab.daemon_count() - 1;
    lab.kill_daemon(last);
    let bad = lab.dir.path().join("bad");
    std::fs::create_dir_all(&bad).expect("dir");
    certs(&bad, &ip, false);
    s_server(&mut lab, &ns, &ip, &bad, &dir);
    let out3 = lab.dir.path().join("s3.img");
    let r = fetch(
        &lab,
        "https://secure.local/img",
        &sha,
        &out3,
        &[
            "--ca-chain",
            bad.join("ca.pem").to_str().unwrap_or_default(),
            "--size",
            size,
        ],
    );
    assert!(
        !r.status.success() && !out3.exists(),
        "accepted a certificate without the IP SAN"
    );
    assert!(
        String::from_utf8_lossy(&r.stderr)
            .to_lowercase()
            .contains("certificate"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
}

#[test]
fn an_app_answering_for_another_with_wrong_bytes_is_set_aside_until_the_real_one_serves() {
    if !require_root(
        "an_app_answering_for_another_with_wrong_bytes_is_set_aside_until_the_real_one_serves",
    ) {
        return;
    }
    let mut lab = Lab::new(1);
    // An impostor claims every name for itself, at once, and serves other bytes.
    let impostor = lab.bare_app(0, 5);
    let impostor_ip = lab.ip(0, 5);
    lab.responder(
        &impostor,
        impostor_ip.parse().expect("ip"),
        Claim {
            ip: impostor_ip.parse().expect("ip"),
            wrong_id: false,
        },
    );
    let (bad, _) = www(&lab, "bad");
    let impostor_log = lab.httpd(&impostor, &impostor_ip, 80, &bad);
    let (good, sha) = www(&lab, "good");

    // Alone, it is retried (not final at the first mismatch), then given up on clearly.
    let out = lab.dir.path().join("alone.img");
    let r = fetch(&lab, "http://victim.local/img", &sha, &out, &[]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && !out.exists(), "{err}");
    assert!(err.contains("retry 1"), "{err}");
    assert!(
        err.contains("gave up after 1 retries: sha256 mismatch"),
        "{err}"
    );

    // Again, and the real app comes up after the first mismatch: it serves the file.
    let out = lab.dir.path().join("got.img");
    let mut child = lab
        .in_device(Path::new(DOWNLOADER))
        .args(["fetch", "http://victim.local/img", "--sha256", &sha, "-o"])
        .arg(&out)
        .arg("--network-instances")
        .arg(lab.instances())
        .args(["--backoff-base", "100ms", "--backoff-max", "1s"])
        .args(["--stall-timeout", "10s", "--retries", "40"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("downloader fetch");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let stderr = child.stderr.take().expect("stderr");
    let lines2 = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            lines2.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
    let said = |text: &str| {
        lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|l| l.contains(text))
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !said("sha256 mismatch") {
        if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            panic!("no mismatch reported: {:?}", lines.lock());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let real = lab.app(0, 7, &App::new("victim"));
    let real_ip = lab.ip(0, 7);
    let real_log = lab.httpd(&real, &real_ip, 80, &good);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fetch did not end: {:?}", lines.lock());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = reader.join();
    let said_all = lines.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
    assert!(status.success(), "{said_all}");
    assert!(out.exists());
    assert!(
        std::fs::read_to_string(&real_log)
            .unwrap_or_default()
            .contains(&lab.ip(0, 1)),
        "the real app did not serve it: {said_all}"
    );
    assert!(
        !std::fs::read_to_string(&impostor_log)
            .unwrap_or_default()
            .is_empty()
    );
}
