//! The image's crond definition (rootfs/etc/zedctr/services/crond.toml) with its crontab
//! and logrotate.conf, run by zedinit as PID 1 with the privileges it declares, with the
//! real Debian cron and logrotate: the job runs, rotates a log over the size limit by
//! rename (the old inode becomes x.log.1, a new empty x.log takes its mode and owner, also
//! for a log that is not root's and not readable by others), leaves a small one alone,
//! and on its next run compresses the older copy (reading that other user's log).
//!
//! Only the paths differ from the image: the test's directory stands for the host's
//! /var/log, the repository's rootfs/etc/zedctr is bound at its own path and its
//! rootfs/etc/crontab at /etc/crontab (with an empty /etc/cron.d, as in the image), and the job
//! runs every minute instead of every 5 (cron has no finer step, so this test takes up
//! to two minutes: two runs).

mod common;

use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

const ETC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rootfs/etc/zedctr");
const CRONTAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rootfs/etc/crontab");

fn replaced(text: String, pairs: &[(&str, String)]) -> String {
    pairs.iter().fold(text, |text, (from, to)| {
        assert!(text.contains(from), "{from:?} in:\n{text}");
        text.replace(from, to)
    })
}

/// Waits up to `secs` (cron's minute plus room): longer than the harness's deadline.
fn wait_long(lab: &Lab, what: &str, secs: u64, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for: {what}\nzedinit: {}\ncrond: {}",
            lab.log_tail(),
            lab.read("logs/crond.log")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn write_log(path: &Path, bytes: usize, mode: u32, owner: u32) {
    let line = "a line of a device's log, long enough to fill it quickly ..............\n";
    std::fs::write(path, line.repeat(bytes / line.len() + 1)).expect("log");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    std::os::unix::fs::chown(path, Some(owner), Some(owner)).expect("chown");
}

#[test]
fn the_shipped_crond_rotates_var_log_by_rename_with_the_capabilities_it_declares() {
    if !require_root(
        "the_shipped_crond_rotates_var_log_by_rename_with_the_capabilities_it_declares",
    ) {
        return;
    }
    let etc = std::fs::canonicalize(ETC)
        .expect("rootfs/etc/zedctr")
        .display()
        .to_string();
    let mut lab = Lab::new();
    let logs = lab.path("var-log");
    std::fs::create_dir(&logs).expect("var-log");
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // Over the 1M limit: root's, and another user's that only its owner may read.
    let nobody = 65534;
    write_log(&logs.join("big.log"), 1_200_000, 0o640, 0);
    write_log(&logs.join("other.log"), 1_200_000, 0o600, nobody);
    write_log(&logs.join("small.log"), 1000, 0o644, 0);
    let (tmp, cron_d) = (lab.path("run-crond"), lab.path("cron.d"));
    std::fs::create_dir(&tmp).expect("run-crond");
    std::fs::create_dir(&cron_d).expect("cron.d");
    let inode = |name: &str| std::fs::metadata(logs.join(name)).map(|m| m.ino()).ok();
    let (big, other) = (inode("big.log"), inode("other.log"));

    // The shipped crontab, every minute and with the repository's logrotate.conf.
    let shipped_tab = std::fs::read_to_string(CRONTAB).expect("crontab");
    let jobs: Vec<&str> = shipped_tab
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !l.contains('='))
        .collect();
    assert_eq!(jobs.len(), 1, "one job, logrotate: {jobs:?}");
    let tab = replaced(
        shipped_tab,
        &[
            ("*/5 * * * *", "* * * * *".into()),
            (
                "/etc/zedctr/logrotate.conf",
                format!("{etc}/logrotate.conf"),
            ),
        ],
    );
    let tab_path = lab.path("crontab");
    std::fs::write(&tab_path, tab).expect("crontab");
    // cron refuses a crontab others may write.
    std::fs::set_permissions(&tab_path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let definition = replaced(
        std::fs::read_to_string(format!("{ETC}/services/crond.toml")).expect("crond.toml"),
        &[
            (
                "\"/var/log/dom0:/var/log\",",
                format!(
                    "{}, {},",
                    toml_string(&format!("{}:/var/log", logs.display())),
                    toml_string(&format!("{etc}:{etc}:ro"))
                ),
            ),
            ("requires = [\"zedctr-dirs\"]", String::new()),
            // The image's crontab and its empty cron.d, over this machine's.
            (
                "\"/run/crond:/tmp\"",
                format!(
                    "{}, {}, {}",
                    toml_string(&format!("{}:/tmp", tmp.display())),
                    toml_string(&format!("{}:/etc/crontab:ro", tab_path.display())),
                    toml_string(&format!("{}:/etc/cron.d:ro", cron_d.display()))
                ),
            ),
        ],
    );
    lab.write_service("crond", &definition);
    lab.start();
    lab.wait_state("crond", "running");

    wait_long(&lab, "logrotate run by cron renamed big.log", 150, || {
        inode("big.log.1") == big && inode("other.log.1") == other
    });
    // The new files: empty, the old ones' mode and owner.
    wait_long(&lab, "the new logs made", 10, || {
        logs.join("big.log").exists() && logs.join("other.log").exists()
    });
    for (name, mode, owner) in [("big.log", 0o640, 0), ("other.log", 0o600, nobody)] {
        let m = std::fs::metadata(logs.join(name)).expect("new log");
        assert_eq!(m.len(), 0, "{name} is new and empty");
        assert_ne!(
            Some(m.ino()),
            inode(&format!("{name}.1")),
            "{name} is another inode"
        );
        assert_eq!(m.mode() & 0o777, mode, "{name} keeps its mode");
        assert_eq!((m.uid(), m.gid()), (owner, owner), "{name} keeps its owner");
    }
    assert!(
        !logs.join("small.log.1").exists(),
        "under the limit: left alone"
    );
    assert_eq!(
        std::fs::metadata(logs.join("small.log"))
            .expect("small")
            .len(),
        std::fs::read(logs.join("small.log")).expect("small").len() as u64
    );
    assert_eq!(lab.state("crond"), "running");

    // Over the limit again: the next run renames once more and compresses the older one
    // (delaycompress), reading another user's 0600 log (DAC_READ_SEARCH).
    write_log(&logs.join("big.log"), 1_200_000, 0o640, 0);
    write_log(&logs.join("other.log"), 1_200_000, 0o600, nobody);
    wait_long(
        &lab,
        "the second rotation compressed the first",
        150,
        || logs.join("big.log.2.gz").exists() && logs.join("other.log.2.gz").exists(),
    );
    let gz = std::fs::metadata(logs.join("other.log.2.gz")).expect("gz");
    assert_eq!(
        (gz.uid(), gz.mode() & 0o777),
        (nobody, 0o600),
        "the copy stays private"
    );
}
