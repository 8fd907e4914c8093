//! The control socket under load: clients that stay busy (log followers, waiters,
//! clients that never read their answers) can neither lock `health` and `status` out
//! (zedwatchdog would stop feeding and the device reboot) nor make PID 1 hold their
//! output.

mod common;
use common::*;
use nix::sys::socket::{MsgFlags, recv};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use zedctr_proto::protocol::{Request, Verb};
use zedinit::server::{MAX_CLIENTS, MAX_LONG_LIVED, MAX_LONG_LIVED_PER_PEER};

/// What a reserved slot answers to anything but `health` and `status`.
const RESERVED_HINT: &str = "may only ask for health or status";

/// Processes this test started, killed and reaped when it ends, even on a panic.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `supctl logs SERVICE -f` with its output in `<name>.out` / `<name>.err` of the lab.
fn follower(lab: &Lab, service: &str, name: &str) -> Child {
    let out = std::fs::File::create(lab.path(&format!("{name}.out"))).expect("out file");
    let err = std::fs::File::create(lab.path(&format!("{name}.err"))).expect("err file");
    Command::new(supctl_bin())
        .arg("--control-socket")
        .arg(&lab.socket)
        .args(["logs", service, "-f"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("supctl logs -f")
}

/// A raw client that sends `requests` and then never reads.
fn non_reader(lab: &Lab, requests: &[u8]) -> UnixStream {
    let mut stream = UnixStream::connect(&lab.socket).expect("connect");
    // The server may have refused it and closed already; its answer says why.
    let _ = stream.write_all(requests);
    stream
}

/// The server has answered `stream` (there is something to read) or closed it.
fn answered_or_closed(stream: &UnixStream) -> bool {
    let mut byte = [0u8; 1];
    recv(
        stream.as_raw_fd(),
        &mut byte,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    )
    .is_ok()
}

fn logs_request(service: &str, lines: usize) -> Vec<u8> {
    let mut line = serde_json::to_vec(&Request {
        lines: Some(lines),
        ..Request::for_service(Verb::Logs, service)
    })
    .expect("json");
    line.push(b'\n');
    line
}

/// How many lines the ring of `service` holds (asking for up to `max`).
fn ring_lines(lab: &Lab, service: &str, max: usize) -> usize {
    let response = lab.call(&Request {
        lines: Some(max),
        ..Request::for_service(Verb::Logs, service)
    });
    response
        .data
        .and_then(|d| d.get("lines").and_then(|l| l.as_array()).map(Vec::len))
        .unwrap_or(0)
}

/// A `/proc/PID/status` field in kB.
fn status_kb(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn assert_health_and_status_answer(lab: &Lab) {
    let (code, out, err) = lab.supctl(&["health"]);
    assert_eq!((code, out.trim()), (0, "healthy"), "supctl health: {err}");
    let (code, out, err) = lab.supctl(&["status"]);
    assert_eq!(code, 0, "supctl status: {err}");
    assert!(out.contains("ticker"), "{out}");
}

#[test]
fn health_and_status_answer_while_followers_and_non_readers_take_every_slot() {
    if !require_root("health_and_status_answer_while_followers_and_non_readers_take_every_slot") {
        return;
    }
    let mut lab = Lab::new();
    lab.write_service(
        "ticker",
        &format!(
            "command = {}",
            sh("echo hello; while sleep 1; do echo tick; done")
        ),
    );
    // 200 lines of 2000 bytes: a `logs` answer of ~400 KB, more than the kernel takes
    // into a socket buffer, so a client that does not read keeps some of it waiting.
    lab.write_service(
        "big",
        &format!(
            "command = {}",
            sh(
                "l=$(printf '%02000d' 0); i=0; while [ $i -lt 200 ]; do echo \"$l\"; i=$((i+1)); done; exec sleep 1000"
            )
        ),
    );
    let wmem: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_default")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        wmem < 300 * 1024,
        "net.core.wmem_default is {wmem}: a socket would take the whole answer this test relies on being left waiting"
    );
    lab.start();
    wait_until("ticker's first line and big's 200 lines", || {
        ring_lines(&lab, "ticker", 1) == 1 && ring_lines(&lab, "big", 200) == 200
    });

    // More followers than there are slots, each its own process.
    let total = MAX_CLIENTS + 6;
    let mut followers = Procs(Vec::new());
    for i in 0..total {
        followers.0.push(follower(&lab, "ticker", &format!("f{i}")));
    }
    wait_until("every follower is streaming or was refused", || {
        (0..total).all(|i| {
            !lab.read(&format!("f{i}.out")).is_empty()
                || followers.0[i].try_wait().ok().flatten().is_some()
        })
    });
    // The ordinary slots followers leave free, taken by clients that never read a
    // ~400 KB answer, and a few more than that.
    let request = logs_request("big", 200);
    let pinned: Vec<UnixStream> = (0..MAX_CLIENTS - MAX_LONG_LIVED + 8)
        .map(|_| non_reader(&lab, &request))
        .collect();
    wait_until("every non-reader was answered", || {
        pinned.iter().all(answered_or_closed)
    });

    assert_health_and_status_answer(&lab);
    // Every ordinary slot was busy indeed: anything else is refused for now.
    let (code, _, err) = lab.supctl(&["rescan"]);
    assert_ne!(code, 0, "rescan should have found every ordinary slot busy");
    assert!(err.contains("busy") && err.contains(RESERVED_HINT), "{err}");

    // Followers beyond the cap were told so, and left: most by the follower cap, those
    // that came while every ordinary slot was held (refused followers not gone yet) by
    // a reserved slot's answer. None was dropped unanswered.
    let mut streaming = 0;
    let mut told_the_cap = 0;
    for (i, child) in followers.0.iter_mut().enumerate() {
        match child.try_wait().expect("try_wait") {
            None => streaming += 1,
            Some(_) => {
                let err = lab.read(&format!("f{i}.err"));
                if err.contains("busy: too many clients follow logs") {
                    told_the_cap += 1;
                } else {
                    assert!(
                        err.contains("busy: ") && err.contains(RESERVED_HINT),
                        "{err}"
                    );
                }
            }
        }
    }
    assert!(told_the_cap > 0, "no follower was told the cap");
    assert_eq!(streaming, MAX_LONG_LIVED);
    drop(pinned);
    drop(followers);
    wait_until("rescan is served again once the slots are free", || {
        lab.supctl(&["rescan"]).0 == 0
    });
}

/// One client process with many connections, run inside zedinit's pid namespace (so
/// zedinit sees its pid, as it does on a device with `pid: host`). It prints, one line
/// each, the first answer on: `per-peer` connections that follow or wait, then one more
/// follower and one more waiter, then a follower opened by a child process. The first
/// waits are sent after a health check in the same write: the health answer comes back
/// from the pass that also took the wait, so once it is read the wait is in place.
const ONE_PROCESS: &str = r#"
import os, socket, sys
path, per_peer = sys.argv[1], int(sys.argv[2])
follow = b'{"version":1,"verb":"logs","service":"ticker","follow":true}\n'
wait = b'{"version":1,"verb":"start","service":"never","wait_ms":120000}\n'
health_then_wait = b'{"version":1,"verb":"health"}\n' + wait
def first_answer(request):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(path)
    s.sendall(request)
    line = b''
    while not line.endswith(b'\n'):
        chunk = s.recv(1)
        if not chunk:
            break
        line += chunk
    print(line.decode().strip(), flush=True)
    return s
held = [first_answer(follow if i % 2 == 0 else health_then_wait) for i in range(per_peer)]
over = [first_answer(follow), first_answer(wait)]
pid = os.fork()
if pid == 0:
    first_answer(follow)
    os._exit(0)
os.waitpid(pid, 0)
"#;

#[test]
fn one_process_may_follow_or_wait_on_a_few_connections_only() {
    if !require_root("one_process_may_follow_or_wait_on_a_few_connections_only") {
        return;
    }
    let mut lab = Lab::new();
    lab.write_service(
        "ticker",
        &format!("command = {}", sh("echo hello; exec sleep 1000")),
    );
    // Never ready: a `start` waiting for it waits until its wait_ms runs out.
    lab.write_service(
        "never",
        &format!(
            "command = {}\n[ready]\nfile = \"{}\"\ntimeout = \"300s\"",
            sh("exec sleep 1000"),
            lab.path("never-ready").display()
        ),
    );
    lab.start();
    let out = Command::new("nsenter")
        .arg("--target")
        .arg(lab.zedinit_host_pid().to_string())
        .args(["--pid", "--", "python3", "-c", ONE_PROCESS])
        .arg(&lab.socket)
        .arg(MAX_LONG_LIVED_PER_PEER.to_string())
        .stdin(Stdio::null())
        .output()
        .expect("nsenter python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<&str> = stdout.lines().collect();
    assert_eq!(answers.len(), MAX_LONG_LIVED_PER_PEER + 3, "{stdout}");
    let (held, rest) = answers.split_at(MAX_LONG_LIVED_PER_PEER);
    for answer in held {
        assert!(answer.contains("\"ok\":true"), "{stdout}");
    }
    for answer in &rest[..2] {
        assert!(
            answer.contains("\"error\":\"busy\"") && answer.contains("this process already"),
            "{stdout}"
        );
    }
    assert!(
        rest[2].contains("\"ok\":true") && rest[2].contains("hello"),
        "another process may still follow: {stdout}"
    );
    assert_health_and_status_answer(&lab);
}

#[test]
fn non_reading_clients_cannot_pin_memory_in_pid1() {
    if !require_root("non_reading_clients_cannot_pin_memory_in_pid1") {
        return;
    }
    let mut lab = Lab::new();
    // Lines of control bytes: JSON spells each as \u0001, so a 200-line `logs` answer is
    // ~4.9 MB, six times the ring.
    lab.write_service(
        "noisy",
        &format!(
            "command = {}",
            sh(
                "l=$(printf '%04095d' 0 | tr 0 '\\001'); i=0; while [ $i -lt 400 ]; do printf '%s\\n' \"$l\"; i=$((i+1)); done; exec sleep 1000"
            )
        ),
    );
    lab.write_service("ticker", &format!("command = {}", sh("exec sleep 1000")));
    lab.start();
    wait_until("noisy's ring is full", || {
        ring_lines(&lab, "noisy", 200) == 200
    });
    let zedinit = lab.zedinit_host_pid();
    let before = status_kb(zedinit, "VmRSS");

    // Each asks for the whole ring 20 times and never reads.
    let requests = logs_request("noisy", 200).repeat(20);
    let clients: Vec<UnixStream> = (0..MAX_CLIENTS)
        .map(|_| non_reader(&lab, &requests))
        .collect();
    wait_until("every client was answered (or dropped)", || {
        clients.iter().all(answered_or_closed)
    });

    // The old server held one ~4.9 MB answer per client: 300 MB and more.
    let peak = status_kb(zedinit, "VmHWM");
    assert!(
        peak < 64 * 1024,
        "zedinit's peak RSS {peak} kB (it was {before} kB before the clients)"
    );
    assert_health_and_status_answer(&lab);
    assert!(
        lab.read("zedinit.log")
            .contains("that does not read its answers"),
        "the drops are logged: {}",
        lab.log_tail()
    );
    drop(clients);
}
