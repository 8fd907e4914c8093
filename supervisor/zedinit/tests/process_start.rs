//! What zedinit's process start gives it, now that it has no std `main` (src/bin/
//! zedinit.rs, `#![no_main]`; `pid1::std_start` does the part of std's start-up zedinit
//! needs): descriptors 0–2 open even when its parent closed them, SIGPIPE ignored in
//! zedinit and at its default in services, and no shared library loaded (a static PIE:
//! glibc and the unwinder are linked in, build.rs) while a panic is still caught and
//! unwound.

mod common;
use common::*;

fn sig_ignored(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .expect("SigIgn line");
    u64::from_str_radix(mask.trim(), 16).expect("SigIgn mask")
}

const SIGPIPE_BIT: u64 = 1 << (libc::SIGPIPE - 1);

#[test]
fn closed_standard_fds_are_opened_on_dev_null_and_sigpipe_is_ignored_in_zedinit_only() {
    if !require_root("closed_standard_fds_are_opened_on_dev_null") {
        return;
    }
    let mut lab = Lab::new();
    let out = lab.path("svc.sigign");
    lab.write_service(
        "svc",
        &format!(
            "command = {}",
            sh(&format!(
                "grep SigIgn /proc/self/status > {}; exec sleep 1000",
                out.display()
            ))
        ),
    );
    // zedinit is exec'd with stdin, stdout and stderr closed.
    lab.start_after("exec 0<&- 1>&- 2>&-");
    let pid = lab.zedinit_host_pid();
    for fd in 0..3 {
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .unwrap_or_else(|e| panic!("zedinit's fd {fd}: {e}"));
        assert_eq!(target, std::path::Path::new("/dev/null"), "fd {fd}");
    }
    assert_ne!(
        sig_ignored(pid) & SIGPIPE_BIT,
        0,
        "SIGPIPE ignored in zedinit"
    );
    lab.wait_state("svc", "running");
    wait_until("the service's SigIgn line", || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.ends_with('\n'))
    });
    let line = std::fs::read_to_string(&out).expect("service's SigIgn");
    let mask = u64::from_str_radix(line.trim_start_matches("SigIgn:").trim(), 16).expect("mask");
    assert_eq!(mask & SIGPIPE_BIT, 0, "SIGPIPE at its default in a service");
}

#[test]
fn zedinit_maps_no_shared_library() {
    if !require_root("zedinit_maps_no_shared_library") {
        return;
    }
    let mut lab = Lab::new();
    lab.start();
    let maps =
        std::fs::read_to_string(format!("/proc/{}/maps", lab.zedinit_host_pid())).expect("maps");
    assert!(maps.contains("zedinit"), "zedinit's own mappings:\n{maps}");
    for lib in ["ld-linux", "libc.so", "libgcc_s"] {
        assert!(!maps.contains(lib), "{lib} mapped:\n{maps}");
    }
}
