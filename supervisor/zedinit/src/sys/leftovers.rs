//! What a zedinit killed with SIGKILL left running, ended by the next one.
//!
//! As PID 1 nothing is left: the kernel kills a pid namespace with its init. As a
//! subreaper (`pid: host`, development) the services outlive it, re-parented to the
//! host's init, with their privileges and their files, and a new zedinit would start a
//! second copy of each beside them (two downloaders on one `.part`, two dnsmasq on one
//! bridge). So each zedinit records the cgroup directory of its services in a file
//! beside its control socket (`<socket>.cgroup`), and the next zedinit on that socket —
//! which binds it only once no live zedinit answers there — ends what that directory
//! still holds before it starts anything: SIGTERM to every process, up to
//! [`GRACE`] to go, then SIGKILL (`cgroup.kill`), and says so in its log.
//!
//! Invariant: only a directory below the cgroup2 mount named `zedinit.<nonce>` and its
//! `svc.*` children are ever touched, whatever the record says (the record's directory
//! is root's, but a record is data, not trust). Without cgroups there is no record, and
//! leftovers are not found (README, "When zedinit is killed").

use crate::log;
use crate::sys::cgroup::Cgroups;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long leftovers get between SIGTERM and SIGKILL (a service's `[stop] timeout` is
/// in a definition the old zedinit read; this bounds the wait before any start).
pub const GRACE: Duration = Duration::from_secs(5);

/// Where the record of a zedinit's cgroup directory is: beside its control socket.
pub fn record_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".cgroup");
    PathBuf::from(name)
}

/// Writes (atomically, mode 0600) the record of `cgroups`' directory, or removes a
/// stale one when cgroups are not usable.
pub fn record(socket: &Path, cgroups: &Cgroups) {
    let path = record_path(socket);
    let Some(base) = cgroups.base() else {
        let _ = std::fs::remove_file(&path);
        return;
    };
    let mut tmp = path.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = write_private(&tmp, base.as_os_str().as_encoded_bytes())
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        log::warn(format_args!(
            "cannot record the services' cgroup in {}: {e}; if this zedinit is killed, the next will not find what it leaves running",
            path.display()
        ));
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    f.write_all(bytes)
}

/// Removes the record (a clean exit leaves nothing running).
pub fn forget(socket: &Path) {
    let _ = std::fs::remove_file(record_path(socket));
}

/// The directory a record names, if it is one zedinit may touch: absolute, below the
/// cgroup2 `mount`, its last component `zedinit.<something>`, no `..`, and not `own`.
pub fn accepted_dir(record: &str, mount: &Path, own: Option<&Path>) -> Option<PathBuf> {
    let dir = Path::new(record.trim_end_matches('\n'));
    let name = dir.file_name()?.to_str()?;
    let safe = dir.is_absolute()
        && dir.starts_with(mount)
        && dir != mount
        && name.starts_with("zedinit.")
        && name.len() > "zedinit.".len()
        && !dir.components().any(|c| {
            matches!(
                c,
                std::path::Component::ParentDir | std::path::Component::CurDir
            )
        });
    (safe && own != Some(dir)).then(|| dir.to_path_buf())
}

/// Ends what the zedinit that last used `socket` left in its cgroups; returns the
/// services found running (for the log and tests). Call after binding the socket and
/// before starting any service.
pub fn end(socket: &Path, cgroups: &Cgroups) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(record_path(socket)) else {
        return Vec::new();
    };
    let Some(mount) = cgroups.mount() else {
        return Vec::new();
    };
    let Some(dir) = accepted_dir(&text, mount, cgroups.base()) else {
        log::warn(format_args!(
            "{}: not a zedinit cgroup directory ({:?}): ignored",
            record_path(socket).display(),
            text.trim()
        ));
        return Vec::new();
    };
    let runs = service_runs(&dir);
    let mut found = Vec::new();
    let mut any = false;
    for run in &runs {
        let pids = cgroups.pids(run);
        if pids.is_empty() {
            continue;
        }
        any = true;
        let name = service_of(run);
        log::warn(format_args!(
            "a previous zedinit on this socket left {name} running (pids {}): SIGTERM, SIGKILL after {}s",
            pids.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            GRACE.as_secs()
        ));
        found.push(name);
        for pid in pids {
            // SAFETY: kill(2) with a pid read from the old zedinit's service cgroup.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
    if any {
        let empty = |runs: &[PathBuf]| runs.iter().all(|r| cgroups.pids(r).is_empty());
        let deadline = Instant::now() + GRACE;
        while !empty(&runs) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !empty(&runs) {
            for run in &runs {
                cgroups.kill(run);
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while !empty(&runs) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    for run in &runs {
        let _ = std::fs::remove_dir(run);
    }
    let _ = std::fs::remove_dir(&dir);
    found
}

/// The `svc.*` cgroups in a zedinit's directory.
fn service_runs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("svc."))
        .map(|e| e.path())
        .collect()
}

/// `svc.<service>.<run>` → `<service>`.
fn service_of(run: &Path) -> String {
    let name = run
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = name.strip_prefix("svc.").unwrap_or(&name);
    match name.rsplit_once('.') {
        Some((service, n)) if n.bytes().all(|b| b.is_ascii_digit()) => service.to_string(),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_zedinit_directory_below_the_mount_is_accepted() {
        let mount = Path::new("/sys/fs/cgroup");
        let ok = "/sys/fs/cgroup/system.slice/zedinit.0a1b2c\n";
        assert_eq!(
            accepted_dir(ok, mount, None),
            Some(PathBuf::from("/sys/fs/cgroup/system.slice/zedinit.0a1b2c"))
        );
        for bad in [
            "/sys/fs/cgroup",
            "/sys/fs/cgroup/",
            "/sys/fs/cgroup/system.slice",
            "/sys/fs/cgroup/zedinit.",
            "/sys/fs/cgroup/../../etc/zedinit.x",
            "/sys/fs/cgroup/a/../zedinit.x",
            "sys/fs/cgroup/zedinit.x",
            "/tmp/zedinit.x",
            "",
        ] {
            assert_eq!(accepted_dir(bad, mount, None), None, "{bad:?}");
        }
        // Never its own.
        let own = Path::new("/sys/fs/cgroup/zedinit.aa");
        assert_eq!(
            accepted_dir("/sys/fs/cgroup/zedinit.aa", mount, Some(own)),
            None
        );
    }

    #[test]
    fn the_service_is_named_by_its_run_cgroup() {
        assert_eq!(service_of(Path::new("/x/svc.dnsmasq@bn1.3")), "dnsmasq@bn1");
        assert_eq!(service_of(Path::new("/x/svc.a.b.12")), "a.b");
        assert_eq!(service_of(Path::new("/x/svc.odd")), "odd");
    }

    #[test]
    fn the_record_sits_beside_the_socket() {
        assert_eq!(
            record_path(Path::new("/run/zedctr/control.sock")),
            PathBuf::from("/run/zedctr/control.sock.cgroup")
        );
    }
}
