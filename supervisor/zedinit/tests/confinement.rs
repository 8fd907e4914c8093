//! What a confined service must not be able to do to zedinit or the host, each case one
//! finding of the 2026-12-04 audit: symlinks planted for zedinit's mkdir, read-only
//! binds that dropped nosuid/nodev/noexec, root services signalling zedinit, probes
//! with more than their service, paths that left the service's root, and children
//! that outlived `stop` by leaving their process group. Plus fork-and-go: a start
//! whose exec fails is reported, and dependents wait for a real exec.

mod common;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

fn chmod(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown(path: &std::path::Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).expect("chown");
}

#[test]
fn a_symlink_planted_where_zedinit_makes_a_directory_is_refused_not_followed() {
    if !require_root("a_symlink_planted_where_zedinit_makes_a_directory_is_refused_not_followed") {
        return;
    }
    let mut lab = Lab::new();
    let data = lab.path("data");
    std::fs::create_dir(&data).expect("data");
    chown(&data, 65534);
    let victim = lab.path("victim");
    std::fs::write(&victim, "root's\n").expect("victim");
    chmod(&victim, 0o600);
    // As nobody, it swaps its mkdir directory for a symlink to a root-only file and
    // crashes, so that zedinit makes the directory again.
    lab.write_service(
        "dl",
        &format!(
            "command = [\"/bin/sh\", \"-c\", \"rmdir /run/data/tmp; ln -s {victim} /run/data/tmp; exit 1\"]\n\
             [restart]\npolicy = \"always\"\nbackoff-base = \"10ms\"\nintensity = 2\n\
             [run]\nuid = 65534\ngid = 65534\nbinds = [\"{data}:/run/data\"]\n\
             mkdir = [{{ path = \"/run/data/tmp\", owner = \"65534:65534\", mode = \"0777\" }}]\n",
            victim = victim.display(),
            data = data.display()
        ),
    );
    lab.start();
    lab.wait_state("dl", "failed");
    let meta = std::fs::metadata(&victim).expect("victim");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, 0, 0o600),
        "the victim is untouched"
    );
    let note = lab.status().services[0].note.clone().unwrap_or_default();
    assert!(note.contains("mkdir"), "the failed step is named: {note}");
}

#[test]
fn a_read_only_bind_keeps_the_sources_nosuid_nodev_noexec() {
    if !require_root("a_read_only_bind_keeps_the_sources_nosuid_nodev_noexec") {
        return;
    }
    let mut lab = Lab::new();
    let src = lab.path("noexec");
    std::fs::create_dir(&src).expect("dir");
    let out = lab.path("out");
    std::fs::create_dir(&out).expect("out");
    lab.write_service(
        "ro",
        &format!(
            "command = [\"/bin/sh\", \"-c\", \"grep -E ' /run/(ro|rw) ' /proc/self/mountinfo > /run/out/mounts; /run/ro/prog > /run/out/ran 2>&1; echo $? >> /run/out/ran\"]\n\
             type = \"oneshot\"\n[restart]\npolicy = \"never\"\n\
             [run]\nbinds = [\"{src}:/run/ro:ro\", \"{src}:/run/rw\", \"{out}:/run/out\"]\n",
            src = src.display(),
            out = out.display()
        ),
    );
    // zedinit's own mount of the source is nosuid,nodev,noexec, holding a program.
    let src_s = src.display().to_string();
    lab.start_after(&format!(
        "mount -t tmpfs -o nosuid,nodev,noexec tmpfs {src_s}; printf '#!/bin/sh\\necho executed\\n' > {src_s}/prog; chmod 755 {src_s}/prog"
    ));
    lab.wait_state("ro", "done");
    let mounts = lab.read("out/mounts");
    let ro = mounts
        .lines()
        .find(|l| l.contains(" /run/ro "))
        .unwrap_or_else(|| panic!("no /run/ro in {mounts}"));
    for flag in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(
            ro.split_whitespace()
                .nth(5)
                .is_some_and(|opts| opts.split(',').any(|o| o == flag)),
            "{flag} on the ro bind: {ro}"
        );
    }
    let ran = lab.read("out/ran");
    assert!(!ran.contains("executed"), "nothing runs from it: {ran}");
}

#[test]
fn a_root_service_without_capabilities_cannot_signal_zedinit() {
    if !require_root("a_root_service_without_capabilities_cannot_signal_zedinit") {
        return;
    }
    let mut lab = Lab::new();
    let out = lab.path("out");
    std::fs::create_dir(&out).expect("out");
    // Like dnsmasq-render or zedwatchdog: uid 0, no capabilities, zedinit's pid
    // namespace. zedinit is PID 1 there.
    lab.write_service(
        "rogue",
        &format!(
            "command = [\"/bin/sh\", \"-c\", \"kill -TERM 1 2> /run/out/term; kill -KILL 1 2> /run/out/kill; echo $? > /run/out/rc\"]\n\
             type = \"oneshot\"\n[restart]\npolicy = \"never\"\n\
             [run]\ncapabilities = []\nnoNewPrivileges = true\nbinds = [\"{}:/run/out\"]\n",
            out.display()
        ),
    );
    lab.write_service("victim", "command = [\"/bin/sleep\", \"1000\"]\n");
    lab.start();
    lab.wait_state("rogue", "done");
    assert_ne!(lab.read("out/rc").trim(), "0", "kill was refused");
    assert!(
        lab.read("out/term").contains("not permitted"),
        "{}",
        lab.read("out/term")
    );
    let (code, out, err) = lab.supctl(&["health"]);
    assert_eq!(code, 0, "zedinit still answers and is healthy: {out} {err}");
    assert_eq!(lab.state("victim"), "running", "no shutdown began");
}

#[test]
fn a_service_in_its_own_pid_namespace_sees_only_itself() {
    if !require_root("a_service_in_its_own_pid_namespace_sees_only_itself") {
        return;
    }
    let mut lab = Lab::new();
    let out = lab.path("out");
    std::fs::create_dir(&out).expect("out");
    lab.write_service(
        "alone",
        &format!(
            "command = [\"/bin/sh\", \"-c\", \"echo $$ > /run/out/pid; ls /proc | grep -c '^[0-9]' > /run/out/count; exec /bin/sleep 1000\"]\n\
             [run]\npid = \"new\"\nbinds = [\"{}:/run/out\"]\n",
            out.display()
        ),
    );
    lab.write_service("other", "command = [\"/bin/sleep\", \"1000\"]\n");
    lab.start();
    lab.wait_state("alone", "running");
    wait_until("the service's report", || !lab.read("out/count").is_empty());
    assert_eq!(
        lab.read("out/pid").trim(),
        "1",
        "it is PID 1 of its namespace"
    );
    // The shell and `ls` (and grep): nothing of zedinit's or the other service's.
    let count: u32 = lab.read("out/count").trim().parse().expect("count");
    assert!(count <= 3, "only its own processes are visible: {count}");
    // sleep has no SIGTERM handler, which a namespace's init ignores: stop still works.
    let (code, _, err) = lab.supctl(&["stop", "alone"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lab.state("alone"), "stopped");
}

#[test]
fn an_exec_probe_runs_with_its_services_confinement() {
    if !require_root("an_exec_probe_runs_with_its_services_confinement") {
        return;
    }
    let mut lab = Lab::new();
    let out = lab.path("out");
    std::fs::create_dir(&out).expect("out");
    chmod(&out, 0o777);
    lab.write_service(
        "probed",
        &format!(
            "command = [\"/bin/sh\", \"-c\", \"touch /run/own/mine; exec /bin/sleep 1000\"]\n\
             [ready]\nexec = [\"/bin/sh\", \"-c\", \"grep -E '^(Uid|CapEff|NoNewPrivs)' /proc/self/status > /run/out/probe; test -e /run/own/mine\"]\n\
             timeout = \"20s\"\ninterval = \"50ms\"\n\
             [run]\nuid = 65534\ngid = 65534\ncapabilities = []\nnoNewPrivileges = true\nnet = \"none\"\nbinds = [\"{}:/run/out\"]\n\
             mkdir = [{{ path = \"/run/own\", owner = \"65534:65534\" }}]\n",
            out.display()
        ),
    );
    lab.start();
    // Ready only if the probe saw the service's private /run.
    lab.wait_state("probed", "ready");
    let probe = lab.read("out/probe");
    assert!(
        probe.contains("Uid:\t65534\t65534\t65534\t65534"),
        "{probe}"
    );
    assert!(probe.contains("CapEff:\t0000000000000000"), "{probe}");
    assert!(probe.contains("NoNewPrivs:\t1"), "{probe}");
}

#[test]
fn a_ready_file_is_looked_for_in_the_services_own_root() {
    if !require_root("a_ready_file_is_looked_for_in_the_services_own_root") {
        return;
    }
    let mut lab = Lab::new();
    lab.write_service(
        "filed",
        "command = [\"/bin/sh\", \"-c\", \"sleep 0.2; touch /run/own/filed.ready; exec /bin/sleep 1000\"]\n\
         [ready]\nfile = \"/run/own/filed.ready\"\ntimeout = \"20s\"\ninterval = \"50ms\"\n\
         [run]\nuid = 65534\ngid = 65534\ncapabilities = []\n\
         mkdir = [{ path = \"/run/own\", owner = \"65534:65534\" }]\n",
    );
    lab.start();
    lab.wait_state("filed", "ready");
}

#[test]
fn a_bind_through_an_image_symlink_lands_inside_the_service_root() {
    if !require_root("a_bind_through_an_image_symlink_lands_inside_the_service_root") {
        return;
    }
    if std::fs::read_link("/var/run").is_err() {
        eprintln!("SKIP: this machine's /var/run is not a symlink");
        assert!(
            std::env::var("CI").is_err(),
            "CI: /var/run must be a symlink"
        );
        return;
    }
    let mut lab = Lab::new();
    let out = lab.path("out");
    std::fs::create_dir(&out).expect("out");
    std::fs::write(out.join("app.sock"), "").expect("file");
    lab.write_service(
        "via",
        &format!(
            "command = [\"/bin/sh\", \"-c\", \"ls /run/out/app.sock > /run/out/seen 2>&1\"]\n\
             type = \"oneshot\"\n[restart]\npolicy = \"never\"\n\
             [run]\nbinds = [\"{out}:/var/run/out\"]\n",
            out = out.display()
        ),
    );
    // zedinit gets a /run of its own, so nothing can land in the machine's.
    lab.start_after("mount -t tmpfs tmpfs /run");
    lab.wait_state("via", "done");
    assert!(
        lab.read("out/seen").contains("/run/out/app.sock"),
        "the service sees its bind at /run/out: {}",
        lab.read("out/seen")
    );
}

#[test]
fn stop_ends_children_that_left_the_process_group() {
    if !require_root("stop_ends_children_that_left_the_process_group") {
        return;
    }
    let mut lab = Lab::new();
    // A duration no other process uses marks the escapee.
    let marker = format!("/bin/sleep 9{}", std::process::id());
    lab.write_service(
        "leaky",
        &format!(
            "command = [\"/bin/sh\", \"-c\", \"setsid {marker} & exec /bin/sleep 1000\"]\n\
             [run]\nuid = 65534\ngid = 65534\n"
        ),
    );
    lab.start();
    lab.wait_state("leaky", "running");
    let escaped = || {
        let out = std::process::Command::new("pgrep")
            .args(["-xf", &marker])
            .output()
            .expect("pgrep");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    wait_until("the escapee runs", || !escaped().is_empty());
    let (code, _, err) = lab.supctl(&["stop", "leaky"]);
    assert_eq!(code, 0, "{err}");
    wait_until("the escapee is gone after stop", || escaped().is_empty());
    assert_eq!(lab.state("leaky"), "stopped");
}

#[test]
fn a_start_whose_exec_fails_is_reported_and_its_dependents_wait() {
    if !require_root("a_start_whose_exec_fails_is_reported_and_its_dependents_wait") {
        return;
    }
    let mut lab = Lab::new();
    lab.write_service(
        "missing",
        "command = [\"/nonexistent/program\"]\n[restart]\npolicy = \"never\"\n",
    );
    lab.write_service(
        "after-missing",
        "command = [\"/bin/sleep\", \"1000\"]\nrequires = [\"missing\"]\n",
    );
    lab.write_service("unconfined-ok", "command = [\"sleep\", \"1000\"]\n");
    lab.start();
    lab.wait_state("missing", "failed");
    let status = lab.status();
    let missing = status
        .services
        .iter()
        .find(|s| s.name == "missing")
        .expect("missing");
    let note = missing.note.clone().unwrap_or_default();
    assert!(
        note.contains("/nonexistent/program") && note.contains("No such file"),
        "the exec error is named: {note}"
    );
    assert_ne!(lab.state("after-missing"), "running", "it never started");
    assert!(
        !lab.log_tail().contains("after-missing: started"),
        "{}",
        lab.log_tail()
    );
    // A bare name is searched in the service PATH.
    lab.wait_state("unconfined-ok", "running");
}

/// Children are made with a raw clone, so glibc in the child still lists zedinit's log
/// writer thread: its setresuid/setgroups wrappers signal that thread and wait for it,
/// forever when the clone came while the thread was being created. The log writer
/// starts on the first line a service writes; here that line and the starts of six
/// services that change their uid come in one turn of the loop, round after round.
#[test]
fn services_that_change_uid_all_reach_exec_when_the_log_writer_starts_at_the_same_moment() {
    if !require_root(
        "services_that_change_uid_all_reach_exec_when_the_log_writer_starts_at_the_same_moment",
    ) {
        return;
    }
    const SERVICES: usize = 6;
    for round in 0..12 {
        let mut lab = Lab::new();
        lab.write_service(
            "first",
            "command = [\"/bin/sh\", \"-c\", \"echo first\"]\ntype = \"oneshot\"\n",
        );
        for i in 0..SERVICES {
            lab.write_service(
                &format!("cred{i}"),
                "command = [\"/bin/true\"]\ntype = \"oneshot\"\nafter = [\"first\"]\n\
                 [run]\nuid = 65534\ngid = 65534\ncapabilities = []\n",
            );
        }
        lab.start();
        // A hung child is killed at zedinit's 30 s exec deadline and tried again, so
        // waiting that long would hide it: each round gets 10 s (it takes milliseconds).
        let started = std::time::Instant::now();
        wait_until(&format!("round {round}: every cred service done"), || {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "round {round}: not every cred service reached exec in 10 s: {:?}",
                lab.status()
                    .services
                    .iter()
                    .map(|s| format!("{} {}", s.name, s.state))
                    .collect::<Vec<_>>()
            );
            let status = lab.status();
            let creds: Vec<_> = status
                .services
                .iter()
                .filter(|s| s.name.starts_with("cred"))
                .collect();
            if let Some(stuck) = creds.iter().find(|s| {
                s.note
                    .as_deref()
                    .is_some_and(|n| n.contains("did not reach exec"))
            }) {
                panic!(
                    "round {round}: {} hung before exec: {:?}",
                    stuck.name, stuck.note
                );
            }
            creds.len() == SERVICES && creds.iter().all(|s| s.state == "done")
        });
    }
}
