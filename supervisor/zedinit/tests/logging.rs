//! [log]: captured output, tagged, rotated, kept in a ring, followed; a flood never
//! stalls PID 1.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn log_file(lab: &Lab, name: &str) -> String {
    lab.read(&format!("logs/{name}"))
}

#[test]
fn output_is_tagged_by_stream_in_the_file_and_the_ring_and_console_passes_through() {
    if !require_root(
        "output_is_tagged_by_stream_in_the_file_and_the_ring_and_console_passes_through",
    ) {
        return;
    }
    let mut lab = Lab::new();
    lab.write_service(
        "talk",
        &format!(
            "command = {}\ntype = \"oneshot\"",
            sh("echo to-out; echo to-err >&2; printf no-newline")
        ),
    );
    lab.write_service(
        "loud",
        &format!(
            "command = {}\ntype = \"oneshot\"\nlog = \"console\"",
            sh("echo straight-to-console")
        ),
    );
    lab.start();
    lab.wait_state("talk", "done");
    wait_until("the file has all three lines", || {
        log_file(&lab, "talk.log").lines().count() == 3
    });
    let file = log_file(&lab, "talk.log");
    assert!(
        file.lines().any(|l| l.ends_with(" talk.out: to-out")),
        "{file}"
    );
    assert!(
        file.lines().any(|l| l.ends_with(" talk.err: to-err")),
        "{file}"
    );
    assert!(
        file.lines().any(|l| l.ends_with(" talk.out: no-newline")),
        "{file}"
    );
    let (code, out, _) = lab.supctl(&["logs", "talk", "-n", "2"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    lab.wait_state("loud", "done");
    assert!(lab.read("zedinit.log").contains("straight-to-console"));
    assert!(!lab.path("logs/loud.log").exists());
}

#[test]
fn rotation_keeps_the_configured_count_and_logs_follow_across_it() {
    if !require_root("rotation_keeps_the_configured_count_and_logs_follow_across_it") {
        return;
    }
    let mut lab = Lab::new();
    let go = lab.path("go").display().to_string();
    // Waits for the follower, then writes 3000 numbered lines (~90 KB: several rotations).
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.05; done; i=0; while [ $i -lt 3000 ]; do echo \"line $i padding-padding\"; i=$((i+1)); done; exec sleep 1000"
    );
    lab.write_service(
        "chatty",
        &format!(
            "command = {}\n[log]\nmax-size = \"16KiB\"\nkeep = 2\nring = 100",
            sh(&script)
        ),
    );
    lab.start();
    lab.wait_state("chatty", "running");
    let follower = lab.follow_logs(&[], "chatty");
    // The follower is connected once zedinit has logged nothing yet: give it the signal.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&go, "").expect("go");
    let mut seen = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while seen.last() != Some(&2999) {
        let line = follower.next_line_by(deadline);
        if let Some(n) = line
            .split("chatty.out: line ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse::<u32>().ok())
        {
            seen.push(n);
        }
    }
    assert_eq!(
        seen,
        (0..3000).collect::<Vec<u32>>(),
        "every line, in order, across rotations"
    );
    wait_until("all lines written", || {
        let newest = log_file(&lab, "chatty.log");
        newest.contains("line 2999 ")
    });
    assert!(lab.path("logs/chatty.log.1").exists());
    assert!(lab.path("logs/chatty.log.2").exists());
    assert!(!lab.path("logs/chatty.log.3").exists(), "keep = 2");
    for f in ["chatty.log", "chatty.log.1", "chatty.log.2"] {
        let size = std::fs::metadata(lab.path(&format!("logs/{f}")))
            .expect("file")
            .len();
        assert!(size <= 16 * 1024 + 200, "{f} is {size} bytes");
    }
    let (_, out, _) = lab.supctl(&["logs", "chatty", "-n", "3"]);
    assert!(
        out.lines().last().unwrap_or("").contains("line 2999 "),
        "{out}"
    );
}

#[test]
fn a_hundred_megabyte_flood_does_not_stall_the_supervisor() {
    if !require_root("a_hundred_megabyte_flood_does_not_stall_the_supervisor") {
        return;
    }
    let mut lab = Lab::new();
    // 100 MiB of 100-byte lines, flat out.
    let flood = "yes \"$(printf '%099d' 7)\" | head -c 104857600";
    lab.write_service(
        "flood",
        &format!(
            "command = {}\ntype = \"oneshot\"\n[log]\nmax-size = \"8MiB\"\nkeep = 2",
            sh(flood)
        ),
    );
    lab.write_service("steady", &format!("command = {}", sh("exec sleep 1000")));
    lab.start();
    let mut slowest = Duration::ZERO;
    let mut replies = 0;
    let start = Instant::now();
    loop {
        let asked = Instant::now();
        let status = lab.status();
        let took = asked.elapsed();
        slowest = slowest.max(took);
        replies += 1;
        assert!(
            took < Duration::from_secs(2),
            "status took {took:?} during the flood"
        );
        if status.service("flood").is_some_and(|s| s.state == "done") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "flood still running after 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("{replies} status replies during the flood, slowest {slowest:?}");
    assert_eq!(lab.state("steady"), "running");
    wait_until("the log files are written", || {
        lab.path("logs/flood.log.2").exists()
    });
    assert!(!lab.path("logs/flood.log.3").exists());
    // The ring holds the flood's last line.
    let (_, tail, _) = lab.supctl(&["logs", "flood", "-n", "1"]);
    assert!(tail.contains("flood.out: 0000"), "{tail}");
}
