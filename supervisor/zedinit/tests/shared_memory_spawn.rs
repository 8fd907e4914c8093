//! A service's child runs in zedinit's memory (`CLONE_VM`, on a stack of its own) until
//! it execs, so that a clone copies no page tables (start-up under load, BENCHMARKS.md):
//! here, that it really does, that nothing it does before exec reaches zedinit (its
//! credentials, its oom_score_adj: a service with `oomScoreAdj` is forked), that its
//! confinement is what it declared, that exec failures are still reported, and that
//! hundreds of starts leave zedinit's memory as it was.

mod common;
use common::*;
use lab::trace::ptrace;

/// kcmp(2) KCMP_VM: whether `a` and `b` share one address space.
fn share_memory(a: i32, b: i32) -> bool {
    const KCMP_VM: usize = 1;
    // SAFETY: integer arguments only.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, a, b, KCMP_VM, 0usize, 0usize) };
    assert!(
        r >= 0,
        "kcmp({a}, {b}): {}",
        std::io::Error::last_os_error()
    );
    r == 0
}

/// Lets the traced zedinit run until it has cloned `n` children; returns them, each held
/// in its first stop (before any step of its own), then lets zedinit go on untraced.
fn catch_clones(zedinit: i32, n: usize) -> Vec<i32> {
    let pids = lab::trace::catch_clones(zedinit, n);
    lab::trace::let_go(zedinit);
    pids
}

/// `Key:\tvalue` of /proc/PID/status.
fn status_field(pid: i32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn oom_score_adj(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// What zedinit's confinement of a child must never change in zedinit itself.
fn credentials(pid: i32) -> [String; 7] {
    [
        status_field(pid, "Uid"),
        status_field(pid, "Gid"),
        status_field(pid, "Groups"),
        status_field(pid, "CapEff"),
        status_field(pid, "CapBnd"),
        status_field(pid, "NoNewPrivs"),
        oom_score_adj(pid),
    ]
}

const CONFINED: &str = "uid = 65534\ngid = 65534\nadditionalGids = [4, 27]\ncapabilities = [\"CAP_NET_BIND_SERVICE\"]\nambient = [\"CAP_NET_BIND_SERVICE\"]\nnoNewPrivileges = true\nreadonly = true\nnet = \"none\"\ncwd = \"/run/out\"\nrlimits = [\"nofile,77,78\"]\n";

#[test]
fn a_service_child_runs_in_zedinit_memory_until_exec_and_changes_nothing_of_zedinit() {
    if !require_root(
        "a_service_child_runs_in_zedinit_memory_until_exec_and_changes_nothing_of_zedinit",
    ) {
        return;
    }
    let mut lab = Lab::new();
    lab.start();
    let zedinit = lab.zedinit_host_pid();
    let before = credentials(zedinit);
    probe_service(&lab, "shared", "", CONFINED);
    // oom_score_adj is per memory: this one must be forked, or zedinit's would change.
    probe_service(
        &lab,
        "forked",
        "",
        &format!("{CONFINED}oomScoreAdj = 500\n"),
    );
    ptrace(
        libc::PTRACE_SEIZE,
        zedinit,
        (libc::PTRACE_O_TRACEFORK | libc::PTRACE_O_TRACECLONE) as usize,
    );
    lab.signal(nix::sys::signal::Signal::SIGHUP);
    let children = catch_clones(zedinit, 2);
    // Held before any step: which one is which is in their environment (set before
    // clone, readable now).
    let service_of = |pid: i32| {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        env.split(|b| *b == 0)
            .find_map(|e| e.strip_prefix(b"ZEDCTR_SERVICE="))
            .map(|s| String::from_utf8_lossy(s).into_owned())
    };
    // A CLONE_VM child has zedinit's memory, so zedinit's environment: tell them apart
    // by what each shares instead.
    let shared: Vec<i32> = children
        .iter()
        .copied()
        .filter(|&c| share_memory(zedinit, c))
        .collect();
    let forked: Vec<i32> = children
        .iter()
        .copied()
        .filter(|&c| !share_memory(zedinit, c))
        .collect();
    assert_eq!(
        (shared.len(), forked.len()),
        (1, 1),
        "one child in zedinit's memory, one forked (oomScoreAdj): {children:?}, \
         environ says {:?}",
        children.iter().map(|&c| service_of(c)).collect::<Vec<_>>()
    );
    for child in children {
        ptrace(libc::PTRACE_DETACH, child, 0);
    }
    let shared = report(&lab, "shared");
    let forked = report(&lab, "forked");
    for r in [&shared, &forked] {
        assert_eq!(r["uid"], serde_json::json!([65534, 65534, 65534, 65534]));
        assert_eq!(r["gid"], serde_json::json!([65534, 65534, 65534, 65534]));
        assert_eq!(r["groups"], serde_json::json!([4, 27]));
        assert_eq!(r["cap_eff"], 1u64 << 10, "CAP_NET_BIND_SERVICE only: {r}");
        assert_eq!(r["cap_bnd"], 1u64 << 10, "{r}");
        assert_eq!(r["no_new_privs"], true, "{r}");
        assert_eq!(r["cwd"], "/run/out", "{r}");
        assert_eq!(r["rlimits"]["nofile"], serde_json::json!([77, 78]), "{r}");
    }
    assert_eq!(forked["oom_score_adj"], 500, "{forked}");
    assert_eq!(
        shared["oom_score_adj"],
        before[6].parse::<i64>().unwrap_or(0)
    );
    let after = credentials(zedinit);
    assert_eq!(before, after, "zedinit's own credentials and OOM score");
    let (code, out, _) = lab.supctl(&["health"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn exec_failures_and_failed_steps_are_still_reported() {
    if !require_root("exec_failures_and_failed_steps_are_still_reported") {
        return;
    }
    let mut lab = Lab::new();
    let not_executable = lab.path("not-executable");
    std::fs::write(&not_executable, "#!/bin/sh\n").expect("write");
    let never = "[restart]\npolicy = \"never\"\n";
    lab.write_service(
        "missing",
        &format!("command = [\"/nonexistent/program\"]\n{never}"),
    );
    lab.write_service(
        "noexec",
        &format!("command = [\"{}\"]\n{never}", not_executable.display()),
    );
    lab.write_service(
        "nocwd",
        &format!(
            "command = [\"{TESTKIT}\", \"exit\", \"0\"]\n{never}[run]\nuid = 65534\nbinds = [\"{b}:{b}:ro\"]\ncwd = \"/no-such-directory-here\"\n",
            b = bin_dir()
        ),
    );
    lab.start();
    let note_of = |name: &str| {
        lab.status()
            .service(name)
            .and_then(|s| s.note.clone())
            .unwrap_or_default()
    };
    for (name, says) in [
        ("missing", "/nonexistent/program: No such file or directory"),
        ("noexec", "Permission denied"),
        ("nocwd", "step \"cwd\": No such file or directory"),
    ] {
        wait_until(
            &format!(
                "{name}'s failure says {says:?} (status: {:?}; log: {})",
                lab.status().service(name),
                lab.log_tail()
            ),
            || note_of(name).contains(says),
        );
    }
}

/// Lines of /proc/PID/maps: a stack a finished child left mapped would add one or two.
fn mappings(pid: i32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn hundreds_of_starts_and_failed_execs_leave_zedinit_whole() {
    if !require_root("hundreds_of_starts_and_failed_execs_leave_zedinit_whole") {
        return;
    }
    let mut lab = Lab::new();
    let restart = "[restart]\npolicy = \"always\"\nstable-after = \"0s\"\nintensity = 1000000\n";
    for i in 0..3 {
        lab.write_service(
            &format!("quick{i}"),
            &format!("command = [\"{TESTKIT}\", \"exit\", \"0\"]\n{restart}"),
        );
    }
    lab.write_service(
        "confined",
        &format!(
            "command = [\"{TESTKIT}\", \"exit\", \"0\"]\n{restart}[run]\nuid = 65534\nbinds = [\"{b}:{b}:ro\"]\n",
            b = bin_dir()
        ),
    );
    lab.write_service(
        "fails",
        &format!("command = [\"/nonexistent/program\"]\n{restart}"),
    );
    lab.start();
    let zedinit = lab.zedinit_host_pid();
    let restarts = |lab: &Lab| -> u32 {
        lab.status()
            .services
            .iter()
            .filter(|s| s.name.starts_with("quick") || s.name == "confined")
            .map(|s| s.restarts)
            .min()
            .unwrap_or(0)
    };
    wait_until("a first round of restarts", || restarts(&lab) >= 20);
    let maps_before = mappings(zedinit);
    wait_until("hundreds of restarts of each", || restarts(&lab) >= 300);
    wait_until("the failed exec is reported", || {
        lab.status()
            .service("fails")
            .and_then(|s| s.note.clone())
            .is_some_and(|n| n.contains("/nonexistent/program: No such file"))
    });
    lab.supctl(&["stop", "quick0", "quick1", "quick2", "confined", "fails"]);
    for name in ["quick0", "quick1", "quick2", "confined", "fails"] {
        lab.wait_state(name, "stopped");
    }
    // Every child reaped: no stack (nor its guard) is left mapped.
    wait_until("zedinit's mappings back to what they were", || {
        mappings(zedinit) <= maps_before
    });
    let (code, out, _) = lab.supctl(&["health"]);
    assert_eq!(code, 0, "{out}");
    // It still starts, confines and reports as before.
    lab.supctl(&["start", "confined"]);
    wait_until("confined started again", || {
        lab.status()
            .service("confined")
            .is_some_and(|s| s.restarts > 300 || s.state == "running")
    });
}
