//! zedctr-testkit: small, predictable service programs for tests, the demo and benches.
//!
//!   orphans N          fork N children that each fork a grandchild and exit at once,
//!                      leaving N orphans (re-parented to the nearest reaper); then exit 0
//!   stamp FILE [sleep] append "<pid> <CLOCK_MONOTONIC ns>\n" to FILE at start, then
//!                      optionally sleep forever (`sleep`) or exit 0
//!   ignore-term        ignore SIGTERM and sleep forever
//!   on-term FILE NAME  sleep until SIGTERM, then append NAME to FILE and exit 0
//!   exit CODE          exit with CODE at once
//!   notify MSG [sleep] send MSG (e.g. "READY=1\nSTATUS=up") to $NOTIFY_SOCKET, then
//!                      optionally sleep forever
//!   notify-to PATH MSG send MSG to the datagram socket at PATH and exit
//!   notify-every MS MSG  send MSG to $NOTIFY_SOCKET every MS milliseconds, forever
//!   notify-flood N     N processes (this one and N-1 children) each sending 4 KiB
//!                      datagrams ("STATUS=flooding" and padding) to $NOTIFY_SOCKET as
//!                      fast as the socket takes them, forever
//!   listen ADDR        listen on TCP ADDR and accept (and drop) connections forever
//!   connect ADDR FILE  append "connected" or "refused" to FILE after one TCP connect
//!   probe OUT [--write DIR]... [--exists PATH]... [--stat PATH]...
//!                      write to OUT, as JSON, what this process got: ids, groups,
//!                      capability sets, NoNewPrivs, rlimits, oom_score_adj, mounts,
//!                      network interfaces, cwd, environment, and whether it can write
//!                      in each DIR, whether each PATH exists, each PATH's owner/mode

use std::io::Write;

fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn append(file: &str, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .expect("open file");
    f.write_all(line.as_bytes()).expect("append");
}

/// Sends `message` as one datagram; a literal `\n` in it becomes a newline.
fn send_datagram(path: &str, message: &str) {
    let socket = std::os::unix::net::UnixDatagram::unbound().expect("socket");
    socket
        .send_to(message.replace("\\n", "\n").as_bytes(), path)
        .expect("send to notify socket");
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["orphans", n] => {
            let n: usize = n.parse().expect("orphans N");
            for _ in 0..n {
                // SAFETY: single-threaded; the children only call fork and _exit.
                match unsafe { libc::fork() } {
                    0 => {
                        // SAFETY: as above; the grandchild exits at once, its parent too.
                        unsafe {
                            libc::fork();
                            libc::_exit(0);
                        }
                    }
                    -1 => {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    _ => {}
                }
            }
            // Reap our own children so only the grandchildren are orphans.
            // SAFETY: plain waitpid loop on our own children.
            while unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) } > 0 {}
        }
        ["stamp", file, rest @ ..] => {
            append(
                file,
                &format!("{} {}\n", std::process::id(), monotonic_ns()),
            );
            if rest.first() == Some(&"sleep") {
                sleep_forever();
            }
        }
        ["ignore-term"] => {
            // SAFETY: setting a signal disposition to SIG_IGN.
            unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
            sleep_forever();
        }
        ["on-term", file, name] => {
            let mut set = nix::sys::signal::SigSet::empty();
            set.add(nix::sys::signal::Signal::SIGTERM);
            set.thread_block().expect("block SIGTERM");
            let _ = set.wait();
            append(file, &format!("{name}\n"));
        }
        ["notify", message, rest @ ..] => {
            let path = std::env::var("NOTIFY_SOCKET").expect("NOTIFY_SOCKET is set");
            send_datagram(&path, message);
            if rest.first() == Some(&"sleep") {
                sleep_forever();
            }
        }
        ["notify-to", path, message] => send_datagram(path, message),
        ["notify-every", ms, message] => {
            // One long-lived sender, as a real daemon would be: its messages can always
            // be traced back to the service (a sender that exits at once can't be).
            let path = std::env::var("NOTIFY_SOCKET").expect("NOTIFY_SOCKET is set");
            let pause = std::time::Duration::from_millis(ms.parse().expect("notify-every MS MSG"));
            loop {
                send_datagram(&path, message);
                std::thread::sleep(pause);
            }
        }
        ["notify-flood", n] => notify_flood(n.parse().expect("notify-flood N")),
        ["listen", addr] => {
            let listener = std::net::TcpListener::bind(addr).expect("bind");
            for conn in listener.incoming() {
                drop(conn);
            }
        }
        ["connect", addr, file] => {
            let outcome = match std::net::TcpStream::connect(addr) {
                Ok(_) => "connected",
                Err(_) => "refused",
            };
            append(file, &format!("{outcome}\n"));
            sleep_forever();
        }
        ["probe", out, rest @ ..] => probe(out, rest),
        ["exit", code] => std::process::exit(code.parse().expect("exit CODE")),
        _ => {
            eprintln!(
                "usage: zedctr-testkit orphans N | stamp FILE [sleep] | ignore-term | on-term FILE NAME | exit CODE \
                 | notify MSG [sleep] | notify-to PATH MSG | notify-every MS MSG | notify-flood N \
                 | listen ADDR | connect ADDR FILE | probe OUT ..."
            );
            std::process::exit(2);
        }
    }
}

/// A hostile service's notify flood: `senders` processes, blocking sends (a full socket
/// makes them wait, and they go on as soon as zedinit reads again).
fn notify_flood(senders: usize) -> ! {
    let path = std::env::var("NOTIFY_SOCKET").expect("NOTIFY_SOCKET is set");
    for _ in 1..senders {
        // SAFETY: single-threaded so far; the child only runs the send loop below.
        if unsafe { libc::fork() } == 0 {
            break;
        }
    }
    let mut message = b"STATUS=flooding\nPADDING=".to_vec();
    message.resize(4096, b'x');
    let socket = std::os::unix::net::UnixDatagram::unbound().expect("socket");
    loop {
        if socket.send_to(&message, &path).is_err() {
            // The socket went away (the service is being removed): don't spin.
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// The probe: reports from /proc/self what the service was really given.
fn probe(out: &str, args: &[&str]) {
    use std::os::unix::fs::MetadataExt;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> String {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let ids = |name: &str| -> Vec<u64> {
        field(name)
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect()
    };
    let cap = |name: &str| u64::from_str_radix(&field(name), 16).unwrap_or(u64::MAX);
    let mut rlimits = serde_json::Map::new();
    for (name, res) in [
        ("nofile", libc::RLIMIT_NOFILE),
        ("nproc", libc::RLIMIT_NPROC),
        ("core", libc::RLIMIT_CORE),
    ] {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        unsafe { libc::getrlimit(res, &mut lim) };
        rlimits.insert(name.into(), serde_json::json!([lim.rlim_cur, lim.rlim_max]));
    }
    let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(String::from))
        .collect();
    let interfaces: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
        .collect();
    let (mut writable, mut exists, mut stats) = (
        serde_json::Map::new(),
        serde_json::Map::new(),
        serde_json::Map::new(),
    );
    let mut it = args.iter();
    while let (Some(flag), Some(path)) = (it.next(), it.next()) {
        match *flag {
            "--write" => {
                let file = format!("{path}/probe-write-test");
                let ok = std::fs::write(&file, "x").is_ok();
                let _ = std::fs::remove_file(&file);
                writable.insert(path.to_string(), ok.into());
            }
            "--exists" => {
                exists.insert(path.to_string(), std::path::Path::new(path).exists().into());
            }
            "--stat" => {
                let v = std::fs::metadata(path)
                    .map(|m| serde_json::json!({"uid": m.uid(), "gid": m.gid(), "mode": format!("{:o}", m.mode() & 0o7777)}))
                    .unwrap_or(serde_json::Value::Null);
                stats.insert(path.to_string(), v);
            }
            other => panic!("probe: unknown flag {other}"),
        }
    }
    let report = serde_json::json!({
        "uid": ids("Uid"), "gid": ids("Gid"), "groups": ids("Groups"),
        "cap_eff": cap("CapEff"), "cap_prm": cap("CapPrm"), "cap_inh": cap("CapInh"),
        "cap_bnd": cap("CapBnd"), "cap_amb": cap("CapAmb"),
        "no_new_privs": field("NoNewPrivs") == "1",
        "rlimits": rlimits,
        "oom_score_adj": std::fs::read_to_string("/proc/self/oom_score_adj").unwrap_or_default().trim().parse::<i32>().unwrap_or(i32::MIN),
        "mounts": mounts, "interfaces": interfaces,
        "cwd": std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default(),
        "env": std::env::vars().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "writable": writable, "exists": exists, "stat": stats,
    });
    std::fs::write(out, report.to_string()).expect("write probe report");
}
