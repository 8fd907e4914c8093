//! PID 1's memory in steady state (issue 16): what a burst of service output grew is
//! given back once it is over. Outcomes read from /proc with generous bounds; how small
//! PID 1 is lives in bench/memory_phases.py.

mod common;
use common::*;
use std::time::Duration;

/// Resident kB of zedinit's `[heap]` mapping (the main malloc arena).
fn heap_kb(pid: i32) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
    let mut in_heap = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            in_heap = line.ends_with("[heap]");
        } else if in_heap && line.starts_with("Rss:") {
            return line
                .split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse().ok())
                .expect("Rss in kB");
        }
    }
    0
}

/// Three services fill their rings, then each writes 100,000 lines at once. Once the
/// flood is over and has settled, zedinit's heap holds about what it held before: the
/// lines went to the files and the rings kept their 200 each, so nothing the flood
/// allocated may stay resident (it did: ~90 KiB of pages pinned by line-sized blocks
/// the log writer thread had freed into its own malloc cache).
#[test]
fn a_log_flood_leaves_the_heap_as_it_found_it() {
    if !require_root("a_log_flood_leaves_the_heap_as_it_found_it") {
        return;
    }
    let mut lab = Lab::new();
    let go = lab.path("go").display().to_string();
    let dir = lab.path("");
    let done = |name: &str| dir.join(format!("done-{name}"));
    let line = "a line of a service's log, about as long as the lines of a real one";
    for name in ["a", "b", "c"] {
        let script = format!(
            "yes '{line}' | head -n 300; while [ ! -e {go} ]; do sleep 0.05; done; \
             yes '{line}' | head -n 100000; touch {}; exec sleep 1000",
            done(name).display()
        );
        lab.write_service(name, &format!("command = {}", sh(&script)));
    }
    lab.start();
    for name in ["a", "b", "c"] {
        lab.wait_state(name, "running");
    }
    let pid = lab.zedinit_host_pid();
    let filled = |name: &str| {
        let (_, out, _) = lab.supctl(&["logs", name, "-n", "300"]);
        out.lines().count() == 200
    };
    wait_until("the rings hold their 200 lines", || {
        ["a", "b", "c"].iter().all(|n| filled(n))
    });
    // Start-up settles and gives its memory back (CODE_SETTLE, 1 s; the logs requests
    // above are one-off work: ACTIVITY_SETTLE, 10 s).
    std::thread::sleep(Duration::from_secs(12));
    let before = heap_kb(pid);

    std::fs::write(&go, "").expect("write the go file");
    lab::wait_until_within(Duration::from_secs(120), "the floods are over", || {
        ["a", "b", "c"].iter().all(|n| done(n).exists())
    });
    // The last lines reach the files, then the burst settles (ACTIVITY_SETTLE).
    std::thread::sleep(Duration::from_secs(12));
    let after = heap_kb(pid);
    eprintln!("zedinit's heap: {before} kB before the flood, {after} kB after");
    assert!(
        after <= before + 40,
        "zedinit's heap: {before} kB resident before the flood, {after} kB after it settled"
    );
    for name in ["a", "b", "c"] {
        assert!(filled(name), "{name}'s ring");
    }
}
