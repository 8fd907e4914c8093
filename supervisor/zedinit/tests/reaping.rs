//! PID 1 duties: every zombie reaped, no exit lost, however fast a child dies.

mod common;
use common::*;

#[test]
fn an_orphan_storm_of_ten_thousand_leaves_no_zombie() {
    if !require_root("an_orphan_storm_of_ten_thousand_leaves_no_zombie") {
        return;
    }
    let mut lab = Lab::new();
    lab.write_service(
        "storm",
        &format!(
            "command = {}\ntype = \"oneshot\"",
            testkit(&["orphans", "10000"])
        ),
    );
    lab.write_service("steady", &format!("command = {}", sh("exec sleep 1000")));
    lab.start();
    lab.wait_state("storm", "done");
    wait_until("all 10,000 orphans reaped", || {
        lab.status().supervisor.reaped_orphans >= 10_000
    });
    let zedinit = lab.zedinit_host_pid();
    wait_until("no zombie left under zedinit", || {
        zombies_of(zedinit).is_empty()
    });
    let status = lab.status();
    assert_eq!(
        status.supervisor.pid, 1,
        "zedinit is PID 1 in its namespace"
    );
    assert!(
        !status.supervisor.subreaper,
        "PID 1 needs no subreaper flag"
    );
    assert_eq!(lab.state("steady"), "running");
}

#[test]
fn a_child_that_dies_at_once_is_seen_every_time() {
    if !require_root("a_child_that_dies_at_once_is_seen_every_time") {
        return;
    }
    // /bin/true exits within microseconds of exec. Each exit must be seen and counted:
    // a lost one would leave the service `running` forever instead of `failed` after
    // exactly `intensity` restarts.
    let mut lab = Lab::new();
    lab.write_service(
        "blink",
        "command = [\"/bin/true\"]\n[restart]\npolicy = \"always\"\nbackoff-base = \"1ms\"\nbackoff-max = \"2ms\"\nintensity = 50\nintensity-window = \"10m\"",
    );
    lab.start();
    lab.wait_state("blink", "failed");
    let status = lab.status();
    let blink = status.service("blink").expect("blink");
    assert_eq!(blink.restarts, 50);
    assert_eq!(blink.last_exit.as_ref().and_then(|e| e.code), Some(0));
}

#[test]
fn not_pid_1_it_becomes_the_subreaper_and_reaps_orphans() {
    if !require_root("not_pid_1_it_becomes_the_subreaper_and_reaps_orphans") {
        return;
    }
    // Run zedinit directly (no pid namespace), as with `pid: host`.
    let lab = Lab::new();
    lab.write_service(
        "storm",
        &format!(
            "command = {}\ntype = \"oneshot\"",
            testkit(&["orphans", "200"])
        ),
    );
    let mut child = std::process::Command::new(ZEDINIT)
        .arg("--services-dir")
        .arg(&lab.services)
        .arg("--control-socket")
        .arg(&lab.socket)
        .arg("--log-dir")
        .arg(lab.path("logs"))
        .stderr(std::fs::File::create(lab.path("zedinit.log")).expect("log"))
        .spawn()
        .expect("zedinit");
    let pid = child.id() as i32;
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _guard = Kill(pid);
    wait_until("socket", || lab.socket.exists());
    lab.wait_state("storm", "done");
    wait_until("200 orphans reaped by the subreaper", || {
        lab.status().supervisor.reaped_orphans >= 200
    });
    let status = lab.status();
    assert!(status.supervisor.subreaper);
    assert_eq!(status.supervisor.pid, pid);
    assert!(zombies_of(pid).is_empty());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("term");
    let exit = child.wait().expect("wait");
    assert_eq!(
        exit.code(),
        Some(0),
        "clean shutdown; log: {}",
        lab.log_tail()
    );
}
