//! The control socket under bad input and bad peers: every problem is a typed error,
//! and the server goes on answering.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use zedctr_proto::client::Client;
use zedctr_proto::protocol::{ErrorKind, MAX_REQUEST_BYTES, Request, Verb};

fn still_answers(lab: &Lab) {
    assert!(
        lab.call(&Request::new(Verb::Status)).ok,
        "the server still answers"
    );
}

#[test]
fn bad_requests_get_typed_errors_and_the_server_keeps_answering() {
    if !require_root("bad_requests_get_typed_errors_and_the_server_keeps_answering") {
        return;
    }
    let mut lab = Lab::new();
    lab.write_service("svc", &format!("command = {}", sh("exec sleep 1000")));
    lab.start();
    let mut client = Client::connect(&lab.socket).expect("connect");
    let t = Duration::from_secs(10);

    client.send_raw(b"this is not json\n").expect("send");
    assert_eq!(
        client.read_response(t).expect("answer").error,
        Some(ErrorKind::BadRequest)
    );
    client
        .send_raw(b"{\"version\":1,\"verb\":\"status\",\"surprise\":true}\n")
        .expect("send");
    assert_eq!(
        client.read_response(t).expect("answer").error,
        Some(ErrorKind::BadRequest)
    );
    client
        .send_raw(b"\x00\xff\xfe garbage \x01\n")
        .expect("send");
    assert_eq!(
        client.read_response(t).expect("answer").error,
        Some(ErrorKind::BadRequest)
    );

    // A verb no `Verb` has (raw JSON: clients cannot build one).
    let dance = Request {
        verb: "dance".into(),
        ..Request::new(Verb::Status)
    };
    let r = client.call(&dance, t).expect("answer");
    assert_eq!(r.error, Some(ErrorKind::UnknownVerb));
    let r = client
        .call(&Request::for_service(Verb::Restart, "ghost"), t)
        .expect("answer");
    assert_eq!(r.error, Some(ErrorKind::UnknownService));
    assert!(r.message.unwrap_or_default().contains("ghost"));
    let r = client.call(&Request::new(Verb::Start), t).expect("answer");
    assert_eq!(
        r.error,
        Some(ErrorKind::BadRequest),
        "start without a service"
    );
    let r = client
        .call(
            &Request {
                version: 99,
                ..Request::new(Verb::Status)
            },
            t,
        )
        .expect("answer");
    assert_eq!(r.error, Some(ErrorKind::UnsupportedVersion));
    let r = client
        .call(
            &Request {
                signal: Some("SIGNOPE".into()),
                ..Request::for_service(Verb::Signal, "svc")
            },
            t,
        )
        .expect("answer");
    assert_eq!(r.error, Some(ErrorKind::BadRequest));
    let r = client
        .call(&Request::for_service(Verb::Logs, "ghost"), t)
        .expect("answer");
    assert_eq!(r.error, Some(ErrorKind::UnknownService));
    let r = client.call(&Request::new(Verb::Logs), t).expect("answer");
    assert_eq!(
        r.error,
        Some(ErrorKind::BadRequest),
        "logs without a service"
    );

    // The same connection is still good after all that.
    assert!(
        client
            .call(&Request::new(Verb::Status), t)
            .expect("answer")
            .ok
    );
    still_answers(&lab);
}

#[test]
fn a_ten_megabyte_line_is_too_large_and_the_connection_survives() {
    if !require_root("a_ten_megabyte_line_is_too_large_and_the_connection_survives") {
        return;
    }
    let mut lab = Lab::new();
    lab.start();
    let mut client = Client::connect(&lab.socket).expect("connect");
    let mut huge = vec![b'x'; 10 * 1024 * 1024];
    huge.push(b'\n');
    // Write from another thread: the server answers while we are still sending.
    let mut writer = std::os::unix::net::UnixStream::connect(&lab.socket).expect("connect");
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        writer.write_all(&huge).expect("send 10 MB");
        writer
    });
    let writer = sender.join().expect("sender");
    let mut reader = std::io::BufReader::new(writer);
    let mut line = String::new();
    use std::io::BufRead;
    reader.read_line(&mut line).expect("answer");
    let r: zedctr_proto::protocol::Response = serde_json::from_str(&line).expect("json");
    assert_eq!(r.error, Some(ErrorKind::TooLarge));
    assert!(
        r.message
            .unwrap_or_default()
            .contains(&MAX_REQUEST_BYTES.to_string())
    );
    // The rest of the line was discarded; the next request on it is served.
    let mut stream = reader.into_inner();
    use std::io::Write;
    stream
        .write_all(b"{\"version\":1,\"verb\":\"health\"}\n")
        .expect("send");
    let mut reader = std::io::BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("answer");
    assert!(line.contains("\"healthy\":true"), "{line}");
    assert!(
        client
            .call(&Request::new(Verb::Status), Duration::from_secs(10))
            .expect("answer")
            .ok
    );
    still_answers(&lab);
}

#[test]
fn a_client_that_never_reads_does_not_block_the_server() {
    if !require_root("a_client_that_never_reads_does_not_block_the_server") {
        return;
    }
    let mut lab = Lab::new();
    lab.start();
    // Thousands of status requests, answers never read: the server must not stall.
    let mut hog = std::os::unix::net::UnixStream::connect(&lab.socket).expect("connect");
    hog.set_nonblocking(true).expect("nonblocking");
    let request = b"{\"version\":1,\"verb\":\"status\"}\n".repeat(2000);
    use std::io::Write;
    let _ = hog.write(&request);
    still_answers(&lab);
    drop(hog);
    still_answers(&lab);
}

/// supctl as an unprivileged user (setpriv from util-linux); returns (code, stderr).
fn supctl_as_nobody(lab: &Lab) -> (i32, String) {
    // A copy nobody can execute, whatever the permissions of the build directory.
    let supctl = lab.path("supctl");
    if !supctl.exists() {
        std::fs::copy(supctl_bin(), &supctl).expect("copy supctl");
        std::fs::set_permissions(&supctl, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&supctl)
        .arg("--control-socket")
        .arg(&lab.socket)
        .arg("status")
        .output()
        .expect("setpriv");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_non_root_supctl_is_told_the_socket_is_root_only() {
    if !require_root("a_non_root_supctl_is_told_the_socket_is_root_only") {
        return;
    }
    let mut lab = Lab::new();
    lab.start();
    let mode = std::fs::metadata(&lab.socket)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let (code, err) = supctl_as_nobody(&lab);
    assert_eq!(code, 77, "{err}");
    assert!(
        err.contains("permission denied: the control socket is root-only"),
        "{err}"
    );
}

#[test]
fn the_peer_uid_check_refuses_others_even_on_a_world_writable_socket() {
    if !require_root("the_peer_uid_check_refuses_others_even_on_a_world_writable_socket") {
        return;
    }
    let mut lab = Lab::new();
    lab.start();
    std::fs::set_permissions(&lab.socket, std::fs::Permissions::from_mode(0o666))
        .expect("chmod 0666");
    let (code, err) = supctl_as_nobody(&lab);
    assert_eq!(code, 77, "the server itself refused: {err}");
    assert!(err.contains("permission denied"), "{err}");
    assert!(
        std::fs::read_to_string(lab.path("zedinit.log"))
            .unwrap_or_default()
            .contains("control socket: refused uid 65534")
    );
    still_answers(&lab);
}

#[test]
fn a_half_closed_client_still_gets_its_waited_answer_and_a_vanished_one_is_forgotten() {
    if !require_root(
        "a_half_closed_client_still_gets_its_waited_answer_and_a_vanished_one_is_forgotten",
    ) {
        return;
    }
    use std::io::{Read, Write};
    let mut lab = Lab::new();
    lab.write_service(
        "svc",
        &format!(
            "command = {}\n[stop]\ntimeout = \"1s\"",
            testkit(&["ignore-term"])
        ),
    );
    lab.start();
    lab.wait_state("svc", "running");
    // `restart` waits for the new process, which takes the 1 s stop timeout + SIGKILL.
    let mut stream = std::os::unix::net::UnixStream::connect(&lab.socket).expect("connect");
    stream
        .write_all(b"{\"version\":1,\"verb\":\"restart\",\"service\":\"svc\",\"wait_ms\":20000}\n")
        .expect("send");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("read until the server closes");
    assert!(
        answer.contains("\"ok\":true") && answer.contains("\"state\":\"running\""),
        "{answer}"
    );

    // A client that disappears while its request waits: the server forgets it.
    let mut gone = std::os::unix::net::UnixStream::connect(&lab.socket).expect("connect");
    gone.write_all(b"{\"version\":1,\"verb\":\"restart\",\"service\":\"svc\",\"wait_ms\":20000}\n")
        .expect("send");
    drop(gone);
    lab.wait_state("svc", "running");
    still_answers(&lab);
}

#[test]
fn answers_keep_the_order_of_requests_around_a_too_large_one() {
    if !require_root("answers_keep_the_order_of_requests_around_a_too_large_one") {
        return;
    }
    let mut lab = Lab::new();
    lab.start();
    let mut client = Client::connect(&lab.socket).expect("connect");
    let mut burst = b"{\"version\":1,\"verb\":\"health\"}\n".to_vec();
    burst.extend(vec![b'x'; 200_000]);
    burst.extend(b"\n{\"version\":1,\"verb\":\"bogus\"}\n");
    client.send_raw(&burst).expect("send");
    let t = Duration::from_secs(10);
    let first = client.read_response(t).expect("first");
    assert!(first.ok, "{first:?}");
    assert_eq!(
        client.read_response(t).expect("second").error,
        Some(ErrorKind::TooLarge)
    );
    assert_eq!(
        client.read_response(t).expect("third").error,
        Some(ErrorKind::UnknownVerb)
    );
}

#[test]
fn silent_clients_cannot_lock_out_a_health_check() {
    if !require_root("silent_clients_cannot_lock_out_a_health_check") {
        return;
    }
    let mut lab = Lab::new();
    lab.start();
    let silent: Vec<_> = (0..zedinit::server::MAX_CLIENTS + 5)
        .map(|_| std::os::unix::net::UnixStream::connect(&lab.socket).expect("connect"))
        .collect();
    let (code, out, err) = lab.supctl(&["health"]);
    assert_eq!((code, out.trim()), (0, "healthy"), "{err}");
    drop(silent);
    still_answers(&lab);
}

#[test]
fn running_out_of_file_descriptors_pauses_accepting_instead_of_spinning() {
    if !require_root("running_out_of_file_descriptors_pauses_accepting_instead_of_spinning") {
        return;
    }
    let mut lab = Lab::new();
    lab.start_after("ulimit -n 24");
    let clients: Vec<_> = (0..40)
        .filter_map(|_| std::os::unix::net::UnixStream::connect(&lab.socket).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let log = lab.read("zedinit.log");
    let complaints = log.matches("control socket: accept").count()
        + log.matches("out of file descriptors").count();
    assert!(
        (1..=5).contains(&complaints),
        "{complaints} complaints in:\n{}",
        lab.log_tail()
    );
    drop(clients);
    wait_until("the server answers again", || {
        Client::connect(&lab.socket).is_ok_and(|mut c| {
            c.call(&Request::new(Verb::Status), Duration::from_secs(5))
                .is_ok_and(|r| r.ok)
        })
    });
}
