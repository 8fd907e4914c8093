//! zedinit killed with SIGKILL while it runs as a child subreaper (`pid: host`), and the
//! next zedinit on the same control socket (sys/leftovers.rs, README "When zedinit is
//! killed"). Killed, it takes nothing with it: its services go on, re-parented to the
//! init above it. The next zedinit finds them by the cgroup recorded beside the socket
//! and ends them (SIGTERM first) before it starts its own: one copy of each service.

mod common;
use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::process::Child;
use zedinit::sys::proc;

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn alive(pid: i32) -> bool {
    proc::stat(pid).is_some_and(|s| s.state != 'Z')
}

/// A child of `parent` whose command line satisfies `is`, once there is one.
fn child_where(parent: i32, what: &str, is: impl Fn(i32, &str) -> bool) -> i32 {
    let mut found = None;
    wait_until(what, || {
        found = proc::children_of(parent)
            .into_iter()
            .find(|pid| is(*pid, &cmdline(*pid)));
        found.is_some()
    });
    found.expect("found")
}

/// A pid namespace whose PID 1 is a shell that runs zedinit (a subreaper there, as under
/// `pid: host`), waits for it to end, then, once the test says `go`, runs a second
/// zedinit on the same socket.
struct Namespace {
    unshare: Child,
    shell: i32,
}

impl Namespace {
    fn start(lab: &Lab) -> Namespace {
        let script = "args=\"--services-dir $1 --control-socket $2 --log-dir $3 --heartbeat-dir $4\"\n\
                      \"$0\" $args 2>\"$5\"\n\
                      while [ ! -e \"$7\" ]; do sleep 0.05; done\n\
                      \"$0\" $args 2>\"$6\" &\n\
                      wait";
        let (unshare, shell) = shell_in_new_pid_namespace(
            script,
            [
                ZEDINIT.as_ref(),
                lab.services.as_os_str(),
                lab.socket.as_os_str(),
                lab.path("logs").as_os_str(),
                lab.path("heartbeat").as_os_str(),
                lab.path("zedinit-1.log").as_os_str(),
                lab.path("zedinit-2.log").as_os_str(),
                lab.path("go").as_os_str(),
            ],
        );
        Namespace { unshare, shell }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.shell), Signal::SIGKILL);
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

#[test]
fn the_next_zedinit_ends_what_a_killed_subreaper_left_running() {
    if !require_root("the_next_zedinit_ends_what_a_killed_subreaper_left_running") {
        return;
    }
    let lab = Lab::new();
    let order = lab.path("order").display().to_string();
    let svc_argv = format!("{TESTKIT} on-term {order} svc");
    lab.write_service(
        "svc",
        &format!("command = [\"{TESTKIT}\", \"on-term\", \"{order}\", \"svc\"]"),
    );
    let ns = Namespace::start(&lab);
    // By its program: a child the shell has forked but not yet exec'd (a `sleep` of its
    // wait loop) still shows the shell's command line, zedinit's arguments included.
    let is_zedinit = |_: i32, line: &str| line.starts_with(&format!("{ZEDINIT} "));
    let first = child_where(ns.shell, "the first zedinit", is_zedinit);
    wait_until("the first zedinit answers", || {
        zedctr_proto::client::Client::connect(&lab.socket).is_ok()
    });
    lab.wait_state("svc", "running");
    let is_svc = |_: i32, line: &str| line.trim_end() == svc_argv;
    let old_svc = child_where(first, "the service under the first zedinit", is_svc);
    let record = std::fs::read_to_string(lab.path("control.sock.cgroup"))
        .expect("the services' cgroup is recorded beside the socket");
    assert!(
        std::path::Path::new(record.trim()).is_dir(),
        "recorded: {record:?}"
    );

    kill(Pid::from_raw(first), Signal::SIGKILL).expect("SIGKILL zedinit");
    // What SIGKILL does: zedinit is gone, its service is not; the namespace's init (the
    // shell, as the host's init under `pid: host`) has adopted it.
    wait_until("the service adopted by the namespace's init", || {
        proc::stat(old_svc).is_some_and(|s| s.ppid == ns.shell)
    });
    assert!(alive(old_svc), "the service outlives a killed subreaper");

    std::fs::write(lab.path("go"), "").expect("go");
    let second = child_where(ns.shell, "the second zedinit", |pid, line| {
        pid != first && is_zedinit(pid, line)
    });
    wait_until("the second zedinit answers", || {
        zedctr_proto::client::Client::connect(&lab.socket).is_ok()
    });
    lab.wait_state("svc", "running");
    let new_svc = child_where(second, "the service under the second zedinit", is_svc);
    assert_ne!(new_svc, old_svc);
    assert!(
        !alive(old_svc),
        "the leftover still runs beside the new copy (pid {old_svc})"
    );
    assert_eq!(
        lab.read("order").lines().collect::<Vec<_>>(),
        vec!["svc"],
        "the leftover was asked to stop (SIGTERM) before anything else"
    );
    let log = lab.read("zedinit-2.log");
    assert!(
        log.contains("a previous zedinit on this socket left svc running"),
        "{log}"
    );
    assert!(
        !std::path::Path::new(record.trim()).exists(),
        "the killed zedinit's cgroup directory is removed"
    );
    let copies = proc::children_of(ns.shell)
        .into_iter()
        .chain(proc::children_of(second))
        .filter(|pid| alive(*pid) && cmdline(*pid).trim_end() == svc_argv)
        .count();
    assert_eq!(copies, 1, "one copy of the service runs");
}
