//! Why the device last booted, from what the watchdog driver says (`WDIOC_GETBOOTSTATUS`,
//! `WDIOC_GETSUPPORT`) and what zedwatchdog recorded before it: plain data in, words
//! out. The files are `record`'s.

use serde::{Deserialize, Serialize};

/// `WDIOF_*` (linux/watchdog.h): the bits of the boot status and of the options.
const FLAGS: [(u32, &str); 12] = [
    (0x0001, "OVERHEAT"),
    (0x0002, "FANFAULT"),
    (0x0004, "EXTERN1"),
    (0x0008, "EXTERN2"),
    (0x0010, "POWERUNDER"),
    (0x0020, "CARDRESET"),
    (0x0040, "POWEROVER"),
    (0x0080, "SETTIMEOUT"),
    (0x0100, "MAGICCLOSE"),
    (0x0200, "PRETIMEOUT"),
    (0x0400, "ALARMONLY"),
    (0x8000, "KEEPALIVEPING"),
];

/// "The card previously reset the CPU": the last boot was the watchdog's doing.
pub const CARDRESET: u32 = 0x0020;

/// The names of the bits set in `bits`; an unknown bit as its hex value.
pub fn flag_names(bits: u32) -> Vec<String> {
    let mut names = Vec::new();
    for bit in (0..32).map(|i| 1u32 << i).filter(|b| bits & b != 0) {
        match FLAGS.iter().find(|(b, _)| *b == bit) {
            Some((_, name)) => names.push((*name).to_string()),
            None => names.push(format!("{bit:#x}")),
        }
    }
    names
}

/// Whether the watchdog reset the device: yes when the boot status says CARDRESET; no
/// when it doesn't and the driver says it can report it; otherwise unknown (a driver
/// that can't report it says 0 either way, and no device or ioctl says nothing).
pub fn watchdog_reset(boot_status: Option<u32>, options: Option<u32>) -> Option<bool> {
    match (boot_status, options) {
        (Some(status), _) if status & CARDRESET != 0 => Some(true),
        (Some(_), Some(options)) if options & CARDRESET != 0 => Some(false),
        _ => None,
    }
}

/// What zedwatchdog writes when it stops feeding (`withholding.json`): kept until it
/// feeds again or disarms, so after a watchdog reset it says why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withholding {
    /// The boot it was written in (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    /// When feeding stopped (RFC 3339, UTC).
    pub since: String,
    /// When the reasons were last written.
    pub updated: String,
    pub reasons: Vec<String>,
    /// The device's timeout, when known: it resets this long after the last feed.
    pub timeout_seconds: Option<i32>,
}

/// One line on the previous boot, from the driver's word and the withholding recorded
/// in it (if any).
pub fn summary(reset: Option<bool>, withheld: Option<&Withholding>) -> String {
    let withheld = withheld.map(|w| {
        format!(
            "zedwatchdog had stopped feeding since {}: {}",
            w.since,
            w.reasons.join("; ")
        )
    });
    match (reset, withheld) {
        (Some(true), Some(why)) => format!("watchdog reset; {why}"),
        (Some(true), None) => "watchdog reset, not withheld by zedwatchdog (it was not \
             running, hung, or something else had the device)"
            .to_string(),
        (Some(false), Some(why)) => format!("not a watchdog reset; {why}"),
        (Some(false), None) => "not a watchdog reset".to_string(),
        (None, Some(why)) => format!("unknown (the driver does not say); {why}"),
        (None, None) => "unknown (the driver does not say)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn withheld() -> Withholding {
        Withholding {
            boot_id: "b".into(),
            since: "2026-12-05T10:00:00Z".into(),
            updated: "2026-12-05T10:00:00Z".into(),
            reasons: vec!["zedinit: ticker failed: exited 1".into()],
            timeout_seconds: Some(60),
        }
    }

    #[test]
    fn bits_are_named_and_unknown_ones_shown() {
        assert_eq!(flag_names(0x20), vec!["CARDRESET"]);
        assert_eq!(
            flag_names(0x8180 | 0x1000),
            vec!["SETTIMEOUT", "MAGICCLOSE", "0x1000", "KEEPALIVEPING"]
        );
        assert!(flag_names(0).is_empty());
    }

    #[test]
    fn a_reset_is_known_only_when_the_driver_can_tell() {
        assert_eq!(watchdog_reset(Some(CARDRESET), None), Some(true));
        assert_eq!(watchdog_reset(Some(0), Some(CARDRESET | 0x80)), Some(false));
        // 0 from a driver that can't report CARDRESET says nothing.
        assert_eq!(watchdog_reset(Some(0), Some(0x80)), None);
        assert_eq!(watchdog_reset(None, Some(CARDRESET)), None);
    }

    #[test]
    fn the_summary_names_the_reasons_it_was_withheld_for() {
        let w = withheld();
        assert_eq!(
            summary(Some(true), Some(&w)),
            "watchdog reset; zedwatchdog had stopped feeding since 2026-12-05T10:00:00Z: \
             zedinit: ticker failed: exited 1"
        );
        assert!(summary(None, Some(&w)).starts_with("unknown (the driver does not say); "));
        assert!(summary(Some(false), Some(&w)).starts_with("not a watchdog reset; "));
        assert!(summary(Some(true), None).starts_with("watchdog reset, not withheld"));
        assert_eq!(summary(None, None), "unknown (the driver does not say)");
    }
}
