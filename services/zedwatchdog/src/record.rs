//! What survives a reboot, in the state directory (`--state-dir`, on a device
//! `/persist/zedctr/watchdog`):
//! - `withholding.json`: written when zedwatchdog stops feeding (and when the reasons
//!   change), removed when it feeds again or disarms. If the device resets meanwhile,
//!   it is still there at the next boot and says which check failed.
//! - `last-boot.json`: written once per boot, after the first round: why the previous
//!   boot ended, as far as the driver's boot status and the previous boot's
//!   `withholding.json` (then consumed) tell.
//!
//! Both are replaced atomically and durably (temporary file, fsync, rename, fsync of the
//! directory): the point is to outlive a hardware reset that may come soon after.

use crate::boot::{self, Withholding};
use crate::device::Support;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub const WITHHOLDING: &str = "withholding.json";
pub const LAST_BOOT: &str = "last-boot.json";

/// This boot's id; "unknown" when it can't be read (then the files of two boots can't
/// be told apart, and a withholding found is taken as this boot's).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn now_text(now: SystemTime) -> String {
    humantime::format_rfc3339_seconds(now).to_string()
}

/// Reasons compared without digits: a stale file's age grows every round, and that
/// alone is not worth a write (or a line in the log).
pub fn gist(reasons: &[String]) -> Vec<String> {
    reasons
        .iter()
        .map(|r| r.chars().filter(|c| !c.is_ascii_digit()).collect())
        .collect()
}

pub struct Recorder {
    dir: PathBuf,
    boot_id: String,
    /// The previous boot's withholding, read at start, to fold into `last-boot.json`.
    previous: Option<Withholding>,
    /// `last-boot.json` to write after the first round (a hung disk must not delay the
    /// first feed).
    pending_boot: Option<serde_json::Value>,
    /// This boot's withholding on disk, if any.
    current: Option<Withholding>,
    /// `withholding.json` exists (this boot's or the previous one's).
    on_disk: bool,
}

impl Recorder {
    /// Reads what an earlier run left (reading happens before the device is opened).
    pub fn open(dir: &Path, boot_id: String) -> Recorder {
        let found: Option<Withholding> = std::fs::read(dir.join(WITHHOLDING))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let on_disk = found.is_some();
        let (previous, current) = match found {
            Some(w) if w.boot_id != boot_id => (Some(w), None),
            // Ours: zedwatchdog restarted while withholding in this boot.
            Some(w) => (None, Some(w)),
            None => (None, None),
        };
        Recorder {
            dir: dir.to_path_buf(),
            boot_id,
            previous,
            pending_boot: None,
            current,
            on_disk,
        }
    }

    /// Prepares `last-boot.json` from what the driver said; returns the one-line reason.
    /// Written once per boot, unless a previous boot's withholding is still to be told.
    pub fn boot(
        &mut self,
        device: &Path,
        support: &io::Result<Support>,
        status: &io::Result<u32>,
        now: SystemTime,
    ) -> String {
        let options = support.as_ref().ok().map(|s| s.options);
        let bits = status.as_ref().ok().copied();
        let reset = boot::watchdog_reset(bits, options);
        let reason = boot::summary(reset, self.previous.as_ref());
        let driver = match support {
            Ok(s) => serde_json::json!({
                "identity": s.identity,
                "firmware_version": s.firmware_version,
                "options": boot::flag_names(s.options),
            }),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        };
        let boot_status = match status {
            Ok(bits) => serde_json::json!({ "raw": bits, "flags": boot::flag_names(*bits) }),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        };
        let record = serde_json::json!({
            "boot_id": self.boot_id,
            "recorded": now_text(now),
            "device": device.display().to_string(),
            "driver": driver,
            "boot_status": boot_status,
            "watchdog_reset": reset,
            "previous_withholding": self.previous,
            "reason": reason,
        });
        let written_this_boot = std::fs::read(self.dir.join(LAST_BOOT))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["boot_id"] == self.boot_id.as_str());
        if self.previous.is_some() || !written_this_boot {
            self.pending_boot = Some(record);
        }
        reason
    }

    /// After a round's feed (or not): writes what is pending, and keeps
    /// `withholding.json` in step with `reasons` (empty: fed). Returns the failures, to
    /// be said.
    pub fn after_round(
        &mut self,
        reasons: &[String],
        timeout_seconds: Option<i32>,
        now: SystemTime,
    ) -> Vec<String> {
        let mut failures = Vec::new();
        if let Some(record) = self.pending_boot.take() {
            let mut bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
            bytes.push(b'\n');
            match write_durably(&self.dir.join(LAST_BOOT), &bytes) {
                // The previous boot's withholding is told: the file is ours from now on.
                Ok(()) => self.previous = None,
                Err(e) => failures.push(format!("{}: {e}", self.dir.join(LAST_BOOT).display())),
            }
        }
        let result = if reasons.is_empty() {
            self.fed()
        } else {
            self.withholding(reasons, timeout_seconds, now)
        };
        if let Err(e) = result {
            failures.push(format!("{}: {e}", self.dir.join(WITHHOLDING).display()));
        }
        failures
    }

    /// Fed (or disarmed): no withholding stands. A previous boot's file not yet told in
    /// `last-boot.json` stays.
    pub fn fed(&mut self) -> io::Result<()> {
        if !self.on_disk || self.previous.is_some() {
            return Ok(());
        }
        remove_durably(&self.dir.join(WITHHOLDING))?;
        self.current = None;
        self.on_disk = false;
        Ok(())
    }

    fn withholding(
        &mut self,
        reasons: &[String],
        timeout_seconds: Option<i32>,
        now: SystemTime,
    ) -> io::Result<()> {
        if self
            .current
            .as_ref()
            .is_some_and(|c| gist(&c.reasons) == gist(reasons))
        {
            return Ok(());
        }
        let record = Withholding {
            boot_id: self.boot_id.clone(),
            since: self
                .current
                .as_ref()
                .map_or_else(|| now_text(now), |c| c.since.clone()),
            updated: now_text(now),
            reasons: reasons.to_vec(),
            timeout_seconds,
        };
        let mut bytes = serde_json::to_vec_pretty(&record).map_err(io::Error::other)?;
        bytes.push(b'\n');
        write_durably(&self.dir.join(WITHHOLDING), &bytes)?;
        self.current = Some(record);
        self.on_disk = true;
        Ok(())
    }
}

/// Replaces `path` with `bytes` so that a reset at any moment leaves the old or the new
/// file, whole: a temporary written and synced, renamed over, and the rename synced.
pub fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    File::open(dir)?.sync_all()
}

/// Removes `path` (gone already is fine) and syncs the directory.
fn remove_durably(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn read(dir: &Path, name: &str) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join(name)).expect(name)).expect("json")
    }

    fn no_device() -> (io::Result<Support>, io::Result<u32>) {
        (
            Err(io::Error::from_raw_os_error(nix::libc::ENOTTY)),
            Err(io::Error::from_raw_os_error(nix::libc::ENOTTY)),
        )
    }

    #[test]
    fn a_withholding_is_kept_while_it_lasts_and_removed_once_fed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = Recorder::open(dir.path(), "boot-1".into());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let why = vec!["/run/a.touch: not touched for 301s (budget 300s)".to_string()];
        assert!(r.after_round(&why, Some(60), t0).is_empty());
        let w = read(dir.path(), WITHHOLDING);
        assert_eq!(w["reasons"][0], why[0].as_str());
        assert_eq!(w["boot_id"], "boot-1");
        assert_eq!(w["timeout_seconds"], 60);
        // Only the age changed: not rewritten.
        let later = vec!["/run/a.touch: not touched for 306s (budget 300s)".to_string()];
        r.after_round(&later, Some(60), t0 + Duration::from_secs(5));
        assert_eq!(read(dir.path(), WITHHOLDING)["reasons"][0], why[0].as_str());
        // Another reason: rewritten, since kept.
        let more = vec![later[0].clone(), "zedinit: x failed: exited 1".to_string()];
        r.after_round(&more, Some(60), t0 + Duration::from_secs(10));
        let w = read(dir.path(), WITHHOLDING);
        assert_eq!(w["reasons"][1], "zedinit: x failed: exited 1");
        assert_eq!(w["since"], now_text(t0).as_str());
        assert!(r.after_round(&[], Some(60), t0).is_empty());
        assert!(!dir.path().join(WITHHOLDING).exists());
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }

    #[test]
    fn the_previous_boots_withholding_becomes_the_last_boots_reason_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = SystemTime::now();
        let mut first = Recorder::open(dir.path(), "boot-1".into());
        first.after_round(&["zedinit: ticker failed: killed".into()], None, now);
        // The device reset; the next boot.
        let mut next = Recorder::open(dir.path(), "boot-2".into());
        let (support, status) = no_device();
        let reason = next.boot(Path::new("/dev/watchdog"), &support, &status, now);
        assert!(reason.contains("ticker failed: killed"), "{reason}");
        // Recorded only after the round, which (fed) then removes the old file.
        assert!(!dir.path().join(LAST_BOOT).exists());
        assert!(next.after_round(&[], None, now).is_empty());
        let last = read(dir.path(), LAST_BOOT);
        assert_eq!(last["boot_id"], "boot-2");
        assert_eq!(last["watchdog_reset"], serde_json::Value::Null);
        assert!(
            last["boot_status"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("Inappropriate ioctl")),
            "{last}"
        );
        assert_eq!(
            last["previous_withholding"]["reasons"][0],
            "zedinit: ticker failed: killed"
        );
        assert_eq!(last["reason"], reason.as_str());
        assert!(!dir.path().join(WITHHOLDING).exists());
        // A restart in the same boot leaves the record as it is.
        let mut again = Recorder::open(dir.path(), "boot-2".into());
        again.boot(Path::new("/dev/watchdog"), &support, &status, now);
        again.after_round(&[], None, now);
        assert_eq!(read(dir.path(), LAST_BOOT), last);
    }

    #[test]
    fn a_driver_that_reports_its_reset_is_recorded_with_its_bits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = Recorder::open(dir.path(), "boot-1".into());
        let support = Ok(Support {
            identity: "iTCO_wdt".into(),
            firmware_version: 6,
            options: 0x8180 | boot::CARDRESET,
        });
        let reason = r.boot(
            Path::new("/dev/watchdog"),
            &support,
            &Ok(0x20),
            SystemTime::now(),
        );
        assert!(
            reason.starts_with("watchdog reset, not withheld"),
            "{reason}"
        );
        r.after_round(&[], None, SystemTime::now());
        let last = read(dir.path(), LAST_BOOT);
        assert_eq!(last["driver"]["identity"], "iTCO_wdt");
        assert_eq!(last["boot_status"]["flags"][0], "CARDRESET");
        assert_eq!(last["watchdog_reset"], true);
    }

    #[test]
    fn an_unwritable_state_dir_is_a_failure_to_say_not_a_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing");
        let mut r = Recorder::open(&missing, "boot-1".into());
        let failures = r.after_round(&["x".into()], None, SystemTime::now());
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].contains("withholding.json"), "{failures:?}");
    }
}
