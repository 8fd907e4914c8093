//! dnsmasq's lease file: one lease per line,
//! `<expiry epoch> <mac> <ip> <hostname or *> <client-id or *>`; expiry 0 is a lease
//! that never expires. dnsmasq also writes a `duid ...` line and IPv6 leases (an IAID
//! where the MAC goes, an IPv6 address); both are skipped.

use crate::ConfigError;
use crate::net::parse_mac;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// One IPv4 lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Seconds since the epoch when it ends; 0: never.
    pub expiry: u64,
    /// The hardware address as dnsmasq wrote it (lower-cased): `02:00:00:00:00:01`, or
    /// `<type>-<hex>` for a non-Ethernet client.
    pub mac: String,
    pub ip: Ipv4Addr,
    /// The client's host name (`*` in the file: none).
    pub hostname: Option<String>,
    /// The client identifier (`*` in the file: none).
    pub client_id: Option<String>,
    /// 1-based line in the lease file.
    pub line: usize,
}

impl Lease {
    /// The Ethernet address, when `mac` is one.
    pub fn mac_bytes(&self) -> Option<[u8; 6]> {
        parse_mac(&self.mac).ok()
    }

    /// Not expired at `now` (seconds since the epoch).
    pub fn active_at(&self, now: u64) -> bool {
        self.expiry == 0 || self.expiry > now
    }
}

/// What a lease file held: the leases read and every problem (a missing or unreadable
/// file, a line that is not a lease). Problems never hide the good lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leases {
    pub file: PathBuf,
    pub leases: Vec<Lease>,
    pub errors: Vec<ConfigError>,
}

impl Leases {
    /// An active lease (at `now`, seconds since the epoch) holds `ip`.
    pub fn holds(&self, ip: Ipv4Addr, now: u64) -> bool {
        self.leases.iter().any(|l| l.ip == ip && l.active_at(now))
    }

    /// The active lease for `ip`, if any.
    pub fn lease_for(&self, ip: Ipv4Addr, now: u64) -> Option<&Lease> {
        self.leases.iter().find(|l| l.ip == ip && l.active_at(now))
    }
}

pub(crate) fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn read_leases(file: &Path) -> Leases {
    match std::fs::read(file) {
        Ok(bytes) => parse_leases(file, &String::from_utf8_lossy(&bytes)),
        Err(e) => Leases {
            file: file.to_path_buf(),
            leases: Vec::new(),
            errors: vec![ConfigError {
                file: file.to_path_buf(),
                line: None,
                key: None,
                message: if e.kind() == std::io::ErrorKind::NotFound {
                    "no lease file (dnsmasq has not written it yet?)".into()
                } else {
                    format!("cannot read the lease file: {e}")
                },
            }],
        },
    }
}

/// Parses the text of a lease file; `file` names it in errors.
pub fn parse_leases(file: &Path, text: &str) -> Leases {
    let mut out = Leases {
        file: file.to_path_buf(),
        ..Leases::default()
    };
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let fields: Vec<&str> = raw.split_whitespace().collect();
        match fields.as_slice() {
            [] => {}
            ["duid", ..] => {}
            [expiry, mac, ip, rest @ ..] if rest.len() <= 2 => {
                let bad = |what: String| ConfigError {
                    file: file.to_path_buf(),
                    line: Some(line),
                    key: None,
                    message: format!("not a lease: {what}"),
                };
                let Ok(expiry) = expiry.parse::<u64>() else {
                    out.errors
                        .push(bad(format!("expiry {expiry:?} is not a number")));
                    continue;
                };
                let ip = match ip.parse::<IpAddr>() {
                    Ok(IpAddr::V4(ip)) => ip,
                    Ok(IpAddr::V6(_)) => continue,
                    Err(_) => {
                        out.errors
                            .push(bad(format!("{ip:?} is not an IP address")));
                        continue;
                    }
                };
                let opt = |s: Option<&&str>| s.filter(|s| **s != "*").map(|s| s.to_string());
                out.leases.push(Lease {
                    expiry,
                    mac: mac.to_ascii_lowercase(),
                    ip,
                    hostname: opt(rest.first()),
                    client_id: opt(rest.get(1)),
                    line,
                });
            }
            _ => out.errors.push(ConfigError {
                file: file.to_path_buf(),
                line: Some(line),
                key: None,
                message: format!(
                    "not a lease: expected \"<expiry> <mac> <ip> <hostname> <client-id>\", got {raw:?}"
                ),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_instance;
    use std::fs;

    const SAMPLE: &str = "\
1700000600 02:00:00:00:00:01 10.1.0.5 app1 01:02:00:00:00:00:01
0 02:00:00:00:00:02 10.1.0.6 * *
1700000000 02:00:00:00:00:03 10.1.0.7 old *
duid 00:01:00:01:2c:5f:2b:3a:02:00:00:00:00:01
1700000600 305419896 fd00::5 app1 00:01:00:01:2c:5f:2b:3a:02:00:00:00:00:01

1700000600 02:00:00:00:00:04 10.1.0.8 app4
";

    #[test]
    fn a_lease_file_parses_and_skips_ipv6() {
        let leases = parse_leases(Path::new("/l"), SAMPLE);
        assert!(leases.errors.is_empty(), "{:#?}", leases.errors);
        assert_eq!(leases.leases.len(), 4);
        let first = &leases.leases[0];
        assert_eq!(first.expiry, 1_700_000_600);
        assert_eq!(first.mac, "02:00:00:00:00:01");
        assert_eq!(first.mac_bytes(), Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(first.ip, Ipv4Addr::new(10, 1, 0, 5));
        assert_eq!(first.hostname.as_deref(), Some("app1"));
        assert_eq!(first.client_id.as_deref(), Some("01:02:00:00:00:00:01"));
        assert_eq!(first.line, 1);
        let second = &leases.leases[1];
        assert_eq!(
            (second.hostname.clone(), second.client_id.clone()),
            (None, None)
        );
        assert_eq!(leases.leases[3].line, 7);
        assert_eq!(leases.leases[3].client_id, None);
    }

    #[test]
    fn expired_leases_hold_nothing_and_zero_never_expires() {
        let leases = parse_leases(Path::new("/l"), SAMPLE);
        let now = 1_700_000_300;
        assert!(leases.holds(Ipv4Addr::new(10, 1, 0, 5), now));
        assert!(leases.holds(Ipv4Addr::new(10, 1, 0, 6), u64::MAX));
        assert!(!leases.holds(Ipv4Addr::new(10, 1, 0, 7), now));
        assert!(!leases.holds(Ipv4Addr::new(10, 1, 0, 9), now));
        assert_eq!(
            leases
                .lease_for(Ipv4Addr::new(10, 1, 0, 5), now)
                .map(|l| l.mac.as_str()),
            Some("02:00:00:00:00:01")
        );
    }

    #[test]
    fn bad_lines_are_errors_that_hide_no_good_line() {
        let text = "garbage\nsoon 02:00:00:00:00:01 10.1.0.5 a *\n1 02:00:00:00:00:01 ten a *\n1 a b c d e f\n1700000600 02:00:00:00:00:09 10.1.0.9 * *\n";
        let leases = parse_leases(Path::new("/l"), text);
        assert_eq!(leases.leases.len(), 1);
        assert_eq!(leases.leases[0].line, 5);
        let lines: Vec<_> = leases.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![Some(1), Some(2), Some(3), Some(4)]);
        assert!(leases.errors.iter().all(|e| e.file == Path::new("/l")));
    }

    #[test]
    fn an_instance_reads_its_lease_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bn1.leases");
        let text = format!(
            "bridge = \"bn1\"\nipv4 = \"10.1.0.1/24\"\nlease-file = \"{}\"\n",
            path.display()
        );
        let ni = parse_instance("a", Path::new("/a.toml"), &text).unwrap();
        // No file yet: no leases, an error, no panic.
        let none = ni.read_leases();
        assert!(none.leases.is_empty());
        assert_eq!(none.errors.len(), 1);
        assert!(
            none.errors[0].message.contains("no lease file"),
            "{:?}",
            none.errors
        );
        assert!(!ni.lease_holds(Ipv4Addr::new(10, 1, 0, 5)));

        fs::write(
            &path,
            "0 02:00:00:00:00:01 10.1.0.5 app1 *\n0 02:00:00:00:00:02 10.9.0.5 stale *\n",
        )
        .unwrap();
        assert_eq!(ni.read_leases().leases.len(), 2);
        assert!(ni.lease_holds(Ipv4Addr::new(10, 1, 0, 5)));
        assert!(!ni.lease_holds(Ipv4Addr::new(10, 1, 0, 6)));
        // Outside the subnet: not this instance's, whatever the file says.
        assert!(!ni.lease_holds(Ipv4Addr::new(10, 9, 0, 5)));

        // Unreadable (a directory): an error, not a panic.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        let unreadable = ni.read_leases();
        assert!(unreadable.leases.is_empty());
        assert!(unreadable.errors[0].message.contains("cannot read"));
    }
}
