//! One cgroup (v2) per service, used only to know and kill all of a service's
//! processes: a child that leaves its process group (`setsid`, `setpgid`) cannot leave
//! its cgroup, so `stop` and the kill after a main process's exit reach it too. No
//! controller is enabled (no limits), so the "no internal processes" rule never applies.
//!
//! Where the machine does not allow it (no cgroup2 mount, a read-only /sys/fs/cgroup in
//! a container, an old kernel without `cgroup.kill`), zedinit says why once and falls
//! back to process groups and sessions (README, "Process tracking").
//!
//! Layout: `<cgroup2 mount><zedinit's own cgroup>/zedinit.<nonce>/svc.<service>.<run>`:
//! the nonce keeps two zedinits that share a cgroup (tests, nested labs) apart, and each
//! run of a service gets a cgroup of its own, removed once empty. A killed cgroup is
//! never reused: on the kernels here a child cloned into a cgroup after its
//! `cgroup.kill` is killed at birth too (clone3 CLONE_INTO_CGROUP and `kill_seq`).

use crate::log;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Largest `cgroup.procs` zedinit reads (a service with thousands of processes is still
/// killed: `cgroup.kill` needs no list).
const PROCS_READ_CAP: u64 = 1 << 20;

pub struct Cgroups {
    /// zedinit's directory of service cgroups; `None` when cgroups are not usable.
    base: Option<PathBuf>,
    /// Where the cgroup2 filesystem is mounted (when usable).
    mount: Option<PathBuf>,
    /// The kernel has `cgroup.kill` (5.14+); else processes are killed one by one.
    has_kill: bool,
    /// Runs made so far (names each run's cgroup).
    runs: u64,
    /// Cgroups of ended runs not yet empty: removed when they are.
    retired: Vec<PathBuf>,
}

impl Cgroups {
    /// Finds the cgroup2 mount and zedinit's own cgroup, and makes zedinit's directory.
    pub fn discover() -> Self {
        match Self::make_base() {
            Ok((mount, base)) => {
                let has_kill = base.join("cgroup.kill").exists();
                log::info(format_args!(
                    "services are tracked in cgroups under {}",
                    base.display()
                ));
                Cgroups {
                    base: Some(base),
                    mount: Some(mount),
                    has_kill,
                    runs: 0,
                    retired: Vec::new(),
                }
            }
            Err(why) => {
                log::info(format_args!(
                    "cgroups not usable ({why}): services are tracked by process group"
                ));
                Cgroups::disabled()
            }
        }
    }

    /// No cgroups: process groups only.
    pub fn disabled() -> Self {
        Cgroups {
            base: None,
            mount: None,
            has_kill: false,
            runs: 0,
            retired: Vec::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.base.is_some()
    }

    /// zedinit's directory of service cgroups, when cgroups are usable.
    pub fn base(&self) -> Option<&Path> {
        self.base.as_deref()
    }

    /// The cgroup2 mount point, when cgroups are usable.
    pub fn mount(&self) -> Option<&Path> {
        self.mount.as_deref()
    }

    fn make_base() -> Result<(PathBuf, PathBuf), String> {
        let mount = match standard_cgroup2_mount() {
            Some(mount) => mount,
            None => {
                let mountinfo = read_proc("/proc/self/mountinfo")?;
                cgroup2_mount(&mountinfo).ok_or("no cgroup2 mount")?
            }
        };
        let own = read_proc("/proc/self/cgroup")?;
        let own = own_cgroup(&own).ok_or("no cgroup2 entry in /proc/self/cgroup")?;
        let parent = mount.join(own.trim_start_matches('/'));
        let mut nonce = [0u8; 6];
        getrandom(&mut nonce);
        let name: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let base = parent.join(format!("zedinit.{name}"));
        std::fs::create_dir(&base).map_err(|e| format!("{}: {e}", base.display()))?;
        Ok((mount, base))
    }

    /// Removes what other zedinits killed with SIGKILL left behind beside zedinit's own
    /// directory. Not on the start path: the loop calls it once start-up has settled
    /// (a stat per sibling and rmdirs, which a bench's earlier rounds or a crash loop can
    /// make many of, would otherwise come before the first service starts).
    pub fn remove_stale(&self) {
        if let Some(parent) = self.base.as_ref().and_then(|b| b.parent()) {
            remove_stale_siblings(parent);
        }
    }

    /// A new cgroup for a run of `service` and its directory, for the child to be cloned
    /// into. `None` without cgroups.
    pub fn make_run(&mut self, service: &str) -> Result<Option<(PathBuf, OwnedFd)>, String> {
        self.sweep();
        let Some(base) = &self.base else {
            return Ok(None);
        };
        self.runs += 1;
        // Service names are [A-Za-z0-9@._-]: no `/`; the prefix keeps `cgroup.*` apart.
        let dir = base.join(format!("svc.{service}.{}", self.runs));
        let made = std::fs::create_dir(&dir).or_else(|e| {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(e);
            }
            // Made again if another zedinit's clean-up took it while it was empty.
            std::fs::create_dir_all(base).and_then(|()| std::fs::create_dir(&dir))
        });
        made.map_err(|e| format!("cgroup {}: {e}", dir.display()))?;
        let fd = open_dir(&dir)?;
        Ok(Some((dir, fd)))
    }

    /// The pids in a cgroup.
    pub fn pids(&self, dir: &Path) -> Vec<i32> {
        let mut text = String::new();
        let read = File::open(dir.join("cgroup.procs"))
            .and_then(|f| f.take(PROCS_READ_CAP).read_to_string(&mut text));
        if read.is_err() {
            return Vec::new();
        }
        text.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// SIGKILL to every process in a run's cgroup.
    pub fn kill(&self, dir: &Path) {
        if self.has_kill {
            let written = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.kill"))
                .and_then(|mut f| f.write_all(b"1"));
            if written.is_ok() {
                return;
            }
        }
        // Without cgroup.kill: one by one (a fork in between is caught by the next kill:
        // every exit of a service's main process and every stop deadline kills again).
        for pid in self.pids(dir) {
            // SAFETY: kill(2) with a pid read from the service's own cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    /// The run is over (its processes killed): its cgroup goes once empty.
    pub fn retire(&mut self, dir: PathBuf) {
        self.retired.push(dir);
        self.sweep();
    }

    fn sweep(&mut self) {
        // rmdir fails (EBUSY) while a killed process is still exiting: kept for later.
        self.retired
            .retain(|d| std::fs::remove_dir(d).is_err() && d.exists());
    }

    /// Whether `pid` is in the cgroup `dir`.
    pub fn contains(&self, dir: &Path, pid: i32) -> bool {
        let Some(base) = &self.base else {
            return false;
        };
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            return false;
        };
        let Some(own) = own_cgroup(&text) else {
            return false;
        };
        // Compare the path below the mount: the suffix `zedinit.<nonce>/svc.<run>`.
        let tail = dir.strip_prefix(base.parent().unwrap_or(Path::new("/")));
        tail.is_ok_and(|t| own.ends_with(&*t.to_string_lossy()))
    }

    /// Removes zedinit's directory and the (empty) service cgroups in it, at exit.
    pub fn remove_all(&self) {
        let Some(base) = &self.base else { return };
        if let Ok(entries) = std::fs::read_dir(base) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("svc.") {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(base);
    }
}

/// A zedinit killed with SIGKILL (a test's namespace torn down, a container killed)
/// leaves its empty cgroups behind: those of others that are empty and over a minute old
/// are removed (rmdir fails on any cgroup that still has processes or children).
fn remove_stale_siblings(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let old = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_AFTER))
    };
    for e in entries.flatten() {
        let path = e.path();
        if !e.file_name().to_string_lossy().starts_with("zedinit.") || !old(&path) {
            continue;
        }
        if let Ok(runs) = std::fs::read_dir(&path) {
            for run in runs.flatten() {
                if run.file_name().to_string_lossy().starts_with("svc.") {
                    let _ = std::fs::remove_dir(run.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&path);
    }
}

/// How old another zedinit's empty cgroup directory must be to count as left behind.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// A /proc file in one or two reads: its size is 0 to stat, so `fs::read_to_string`
/// would read it in small growing pieces, each a syscall that formats it again.
fn read_proc(path: &str) -> Result<String, String> {
    let mut text = String::with_capacity(16 * 1024);
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(text)
}

fn open_dir(dir: &Path) -> Result<OwnedFd, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map(OwnedFd::from)
        .map_err(|e| format!("cgroup {}: {e}", dir.display()))
}

/// The mount point of the cgroup2 filesystem in `/proc/self/mountinfo` text (pure v2:
/// `/sys/fs/cgroup`; the hybrid layout: `/sys/fs/cgroup/unified`).
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let point = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(point))
    })
}

/// Where cgroup2 is mounted when it is where systemd, container runtimes and EVE put it
/// (`/sys/fs/cgroup`, pure v2; `/sys/fs/cgroup/unified`, the hybrid layout), found with
/// two or three statfs(2) calls. Formatting /proc/self/mountinfo for [`cgroup2_mount`]
/// took the kernel ~0.1 ms at every start, before the first service; it stays the way
/// to find a mount anywhere else.
pub fn standard_cgroup2_mount() -> Option<PathBuf> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(Path::new)
        // A mount point: cgroup2 there but not in the directory above it.
        .find(|p| is_cgroup2(p) && !p.parent().is_some_and(is_cgroup2))
        .map(Path::to_path_buf)
}

fn is_cgroup2(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: statfs(2) fills `st` for a NUL-terminated path.
    let ok = unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) } == 0;
    // SAFETY: filled by the successful call (zeroed otherwise, and not read then).
    ok && unsafe { st.assume_init() }.f_type == libc::CGROUP2_SUPER_MAGIC
}

/// The cgroup2 path (`0::<path>`) in `/proc/<pid>/cgroup` text.
pub fn own_cgroup(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::trim)
}

fn getrandom(buf: &mut [u8]) {
    // SAFETY: getrandom(2) writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        // Unique enough for a name when the kernel's pool is not ready: time and pid.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ std::process::id() as u128;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (t >> (i * 8)) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_in_the_hybrid_and_the_unified_layouts() {
        let hybrid = "35 25 0:30 / /sys/fs/cgroup/memory rw,relatime shared:14 - cgroup cgroup rw,memory\n\
                      36 25 0:31 / /sys/fs/cgroup/unified rw,relatime shared:15 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(cgroup2_mount("1 0 0:1 / / rw - ext4 /dev/vda rw\n"), None);
    }

    #[test]
    fn the_standard_place_is_where_mountinfo_says_cgroup2_is() {
        // On this machine: the statfs path finds what the mountinfo path finds, or
        // nothing (a cgroup2 mount elsewhere, or none) and the mountinfo path is used.
        let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let listed = cgroup2_mount(&mountinfo);
        match standard_cgroup2_mount() {
            Some(found) => assert_eq!(Some(found), listed),
            None => assert!(listed.is_none_or(|p| {
                p != Path::new("/sys/fs/cgroup") && p != Path::new("/sys/fs/cgroup/unified")
            })),
        }
        assert!(!is_cgroup2(Path::new("/")));
        assert!(!is_cgroup2(Path::new("/nonexistent/zedinit")));
    }

    #[test]
    fn reads_the_v2_line_of_proc_cgroup() {
        let text = "4:memory:/process_api/x\n1:cpu:/\n0::/system.slice/zedctr\n";
        assert_eq!(own_cgroup(text), Some("/system.slice/zedctr"));
        assert_eq!(own_cgroup("4:memory:/x\n"), None);
    }
}
