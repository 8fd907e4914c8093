//! The stray sweep at the end of a shutdown (event_loop.rs, `Stage::Sweeping`): once
//! every service has stopped, processes that left their service's process group get
//! SIGTERM, and SIGKILL after the grace. Each stray here records its SIGTERM, so what
//! ends it is seen to be the sweep, not the pid namespace dying with zedinit (that
//! would be a silent SIGKILL). As PID 1 the sweep covers the whole namespace; as a
//! subreaper only zedinit's own children, and a process beside it is left alone.

mod common;
use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::process::Child;
use zedinit::sys::proc;

/// Shell words that move the current shell out of its service's cgroup (into the
/// cgroup2 root, as a root process with the cgroup filesystem can), so that the kill of
/// its service's cgroup does not reach it: only such a stray is left for the sweep.
/// (`0` moves the writer itself: the subshell, not the shell whose pid `$$` would be.)
const LEAVE_CGROUP: &str = "for f in /sys/fs/cgroup/unified/cgroup.procs /sys/fs/cgroup/cgroup.procs; do [ -w $f ] && echo 0 > $f 2>/dev/null && break; done; ";

/// A service whose main process records its SIGTERM in `order` as "svc", and which
/// leaves a stray behind, recording its own SIGTERM as "stray": started by a shell that
/// exits at once (so it is an orphan, re-parented to zedinit), out of the service's
/// cgroup and in a session of its own (so neither stopping the service, which signals
/// its process group, nor the kill of its cgroup can reach it).
fn service_with_a_stray(lab: &Lab, order: &str) {
    let tk = TESTKIT;
    lab.write_service(
        "svc",
        &format!(
            "command = {}",
            sh(&format!(
                "sh -c '({LEAVE_CGROUP}exec setsid {tk} on-term {order} stray) &'; exec {tk} on-term {order} svc"
            ))
        ),
    );
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The child of `parent` whose command line contains `needle`, once there is one.
fn child_running(parent: i32, needle: &str) -> i32 {
    let mut found = None;
    wait_until(&format!("a child of {parent} running {needle:?}"), || {
        found = proc::children_of(parent).into_iter().find(|pid| {
            // The exec'd program itself (zedinit for an option, else testkit), not a
            // shell child forked but not yet exec'd (whose command line, the script's,
            // holds the needle too).
            let line = cmdline(*pid);
            if needle.starts_with("--") {
                line.starts_with(&format!("{ZEDINIT} ")) && line.contains(needle)
            } else {
                line.starts_with(TESTKIT) && line.trim_end().ends_with(needle)
            }
        });
        found.is_some()
    });
    found.expect("found")
}

fn alive(pid: i32) -> bool {
    proc::stat(pid).is_some_and(|s| s.state != 'Z')
}

fn lines(lab: &Lab, name: &str) -> Vec<String> {
    lab.read(name).lines().map(String::from).collect()
}

#[test]
fn as_pid_1_the_sweep_sigterms_a_stray_that_left_its_service() {
    if !require_root("as_pid_1_the_sweep_sigterms_a_stray_that_left_its_service") {
        return;
    }
    let mut lab = Lab::new();
    let order = lab.path("order").display().to_string();
    service_with_a_stray(&lab, &order);
    lab.start();
    lab.wait_state("svc", "running");
    let zedinit = lab.zedinit_host_pid();
    let stray = child_running(zedinit, "stray");
    // Found as the subshell that is about to `exec setsid`: wait for the setsid.
    wait_until("the stray leads a session of its own", || {
        proc::stat(stray).is_some_and(|s| s.session == stray)
    });
    lab.signal(Signal::SIGTERM);
    let status = lab.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "the stray went on SIGTERM: no SIGKILL needed; log: {}",
        lab.log_tail()
    );
    assert_eq!(
        lines(&lab, "order"),
        vec!["svc", "stray"],
        "the service stopped first, then the sweep's SIGTERM reached the stray"
    );
    let log = lab.read("zedinit.log");
    assert!(
        log.contains("services stopped; SIGTERM to the remaining processes"),
        "{log}"
    );
}

/// zedinit in a pid namespace whose PID 1 is a shell: not PID 1, zedinit is a child
/// subreaper there, as under `pid: host`, while a mistaken kill(-1) could still reach
/// no further than the namespace. The shell also starts a bystander beside zedinit.
struct Subreaper {
    unshare: Child,
    /// The namespace's PID 1 (the shell), as seen from here.
    shell: i32,
    zedinit: i32,
}

impl Subreaper {
    fn start(lab: &Lab, order: &str) -> Subreaper {
        let script = format!(
            "\"$0\" on-term {order} bystander &\n\
             \"$1\" --services-dir \"$2\" --control-socket \"$3\" --log-dir \"$4\" --heartbeat-dir \"$5\" 2>\"$6\" &\n\
             zedinit=$!\n\
             wait $zedinit\n\
             echo $? >\"$7\"\n\
             wait"
        );
        let (unshare, shell) = shell_in_new_pid_namespace(
            &script,
            [
                TESTKIT.as_ref(),
                ZEDINIT.as_ref(),
                lab.services.as_os_str(),
                lab.socket.as_os_str(),
                lab.path("logs").as_os_str(),
                lab.path("heartbeat").as_os_str(),
                lab.path("zedinit.log").as_os_str(),
                lab.path("exit-code").as_os_str(),
            ],
        );
        let zedinit = child_running(shell, "--services-dir");
        Subreaper {
            unshare,
            shell,
            zedinit,
        }
    }
}

impl Drop for Subreaper {
    fn drop(&mut self) {
        // SIGKILL to the namespace's PID 1 ends everything in it; then reap unshare.
        let _ = kill(Pid::from_raw(self.shell), Signal::SIGKILL);
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

#[test]
fn as_a_subreaper_the_sweep_signals_only_zedinits_own_children() {
    if !require_root("as_a_subreaper_the_sweep_signals_only_zedinits_own_children") {
        return;
    }
    let lab = Lab::new();
    let order = lab.path("order").display().to_string();
    service_with_a_stray(&lab, &order);
    // A second stray that ignores SIGTERM: the sweep's SIGKILL must end it too.
    lab.write_service(
        "deaf",
        &format!(
            "command = {}",
            sh(&format!(
                "sh -c '({LEAVE_CGROUP}exec setsid {TESTKIT} ignore-term) &'; exec {TESTKIT} on-term {order} deaf"
            ))
        ),
    );
    let ns = Subreaper::start(&lab, &order);
    wait_until("zedinit's control socket answers", || {
        zedctr_proto::client::Client::connect(&lab.socket).is_ok()
    });
    lab.wait_state("svc", "running");
    lab.wait_state("deaf", "running");
    let status = lab.status();
    assert!(
        status.supervisor.subreaper,
        "not PID 1: zedinit is a subreaper"
    );
    let stray = child_running(ns.zedinit, "stray");
    let deaf = child_running(ns.zedinit, "ignore-term");
    let bystander = child_running(ns.shell, "bystander");

    kill(Pid::from_raw(ns.zedinit), Signal::SIGTERM).expect("SIGTERM zedinit");
    wait_until("zedinit to exit", || {
        !lab.read("exit-code").trim().is_empty()
    });
    assert_eq!(
        lab.read("exit-code").trim(),
        "2",
        "a stray needed SIGKILL; log: {}",
        lab.log_tail()
    );
    let stopped = lines(&lab, "order");
    assert_eq!(
        stopped.iter().filter(|l| *l == "stray").count(),
        1,
        "the stray got the sweep's SIGTERM: {stopped:?}"
    );
    assert_eq!(
        stopped.last().map(String::as_str),
        Some("stray"),
        "after the services stopped: {stopped:?}"
    );
    assert!(!alive(stray), "the stray is gone");
    assert!(
        !alive(deaf),
        "the stray that ignored SIGTERM was killed by the sweep; the namespace lives on"
    );
    assert!(
        !stopped.iter().any(|l| l == "bystander"),
        "a process that is not zedinit's child got no signal: {stopped:?}"
    );
    assert!(alive(bystander), "the bystander still runs");
    let log = lab.read("zedinit.log");
    assert!(
        log.contains("SIGKILL to processes that ignored SIGTERM"),
        "{log}"
    );
}
