//! Linux capabilities by name (linuxkit spelling, `CAP_NET_ADMIN`), and the ones zedinit
//! itself needs — listed once, here, with the reason for each. build.yml's
//! `capabilities` is their union with every service's declared set.

/// Index = capability number (linux/capability.h).
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A capability number, from `CAP_NET_ADMIN` or `net_admin` (any case).
pub fn parse(name: &str) -> Result<u8, String> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    NAMES
        .iter()
        .position(|n| *n == full)
        .map(|i| i as u8)
        .ok_or_else(|| format!("unknown capability {name:?}"))
}

pub fn name(cap: u8) -> &'static str {
    NAMES.get(cap as usize).copied().unwrap_or("CAP_UNKNOWN")
}

/// What zedinit needs on top of its services' capabilities, and why.
pub const ZEDINIT_OWN: [(&str, &str); 7] = [
    (
        "CAP_SYS_ADMIN",
        "mount namespaces, bind mounts and pivot_root for each service's own root",
    ),
    (
        "CAP_SETPCAP",
        "dropping each service's bounding set and setting its capabilities",
    ),
    ("CAP_SETUID", "running a service as its declared uid"),
    (
        "CAP_SETGID",
        "running a service as its declared gid and supplementary groups",
    ),
    ("CAP_KILL", "signalling services that run as other users"),
    (
        "CAP_CHOWN",
        "giving a service's mkdir directories and heartbeat file to its uid",
    ),
    (
        "CAP_SYS_CHROOT",
        "an exec readiness probe entering its service's mount namespace (setns(2))",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_the_kernel_numbers() {
        assert_eq!(parse("CAP_NET_ADMIN"), Ok(12));
        assert_eq!(parse("net_admin"), Ok(12));
        assert_eq!(parse("CAP_SYS_ADMIN"), Ok(21));
        assert_eq!(parse("CAP_CHECKPOINT_RESTORE"), Ok(40));
        for (i, n) in NAMES.iter().enumerate() {
            assert_eq!(parse(n), Ok(i as u8));
            assert_eq!(name(i as u8), *n);
        }
        assert!(parse("CAP_FLY").unwrap_err().contains("CAP_FLY"));
        for (cap, why) in ZEDINIT_OWN {
            assert!(parse(cap).is_ok() && !why.is_empty());
        }
    }

    /// The whole union (every shipped definition's capabilities too) is compared in
    /// supervisor/zedinit/tests/shipped_build_yml.rs; this is zedinit's own share.
    #[test]
    fn build_yml_carries_what_zedinit_needs_and_never_all() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../build.yml");
        let text = std::fs::read_to_string(path).expect("build.yml");
        // `- CAP_X   # who needs it`: the name without its comment.
        let caps: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- CAP_"))
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .collect();
        for (cap, _) in ZEDINIT_OWN {
            assert!(caps.contains(&&cap[4..]), "build.yml lacks {cap}");
        }
        assert!(
            !text.lines().any(|l| l.trim().eq_ignore_ascii_case("- all")),
            "capabilities: all is what zedctr removes"
        );
    }
}
