//! Small value types and the checks behind them: IPv4 subnets, MAC addresses, names.

use std::fmt;
use std::net::Ipv4Addr;

/// An interface address with its prefix: `10.1.0.1/24` is the bridge's own address
/// `10.1.0.1` in the subnet `10.1.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    /// The bridge's own address (not the network address).
    pub addr: Ipv4Addr,
    /// 0 to 32.
    pub prefix: u8,
}

impl Ipv4Net {
    /// Parses `"10.1.0.1/24"`. Only the syntax: see [`Ipv4Net::check_interface`] for the
    /// rules an interface address must follow.
    pub fn parse(text: &str) -> Result<Ipv4Net, String> {
        let example = "an IPv4 address with its prefix length, e.g. \"10.1.0.1/24\"";
        let Some((addr, prefix)) = text.split_once('/') else {
            return Err(format!("must be {example}, not {text:?} (no \"/prefix\")"));
        };
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("must be {example}: {addr:?} is not an IPv4 address"))?;
        let prefix = match prefix.parse::<u8>() {
            Ok(p) if p <= 32 && prefix.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => {
                return Err(format!(
                    "must be {example}: the prefix length {prefix:?} is not a number from 0 to 32"
                ));
            }
        };
        Ok(Ipv4Net { addr, prefix })
    }

    /// The rules for a bridge's own address: a unicast address that is neither the
    /// subnet's network nor its broadcast address (for prefixes up to /30).
    pub fn check_interface(&self) -> Result<(), String> {
        let a = self.addr;
        if a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast() {
            return Err(format!(
                "{a} cannot be a bridge's address (unspecified, loopback, multicast or broadcast)"
            ));
        }
        if self.prefix < 31 && a == self.network() {
            return Err(format!(
                "{a} is the network address of {}/{}: give the bridge's own address, e.g. {}/{}",
                self.network(),
                self.prefix,
                Ipv4Addr::from(u32::from(self.network()) + 1),
                self.prefix
            ));
        }
        if self.prefix < 31 && a == self.broadcast() {
            return Err(format!(
                "{a} is the broadcast address of {}/{}: give the bridge's own address",
                self.network(),
                self.prefix
            ));
        }
        Ok(())
    }

    /// The mask as a number (`/24` → `0xffffff00`).
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix.min(32)))
        }
    }

    /// `255.255.255.0` for a /24.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    /// The subnet's first address (`10.1.0.0` for `10.1.0.1/24`).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The subnet's last address (`10.1.0.255` for `10.1.0.1/24`).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// `ip` is in the subnet (network and broadcast addresses included).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }

    /// `ip` is in the subnet and can be a host's address: not the network or broadcast
    /// address, unless the prefix is /31 or /32 (RFC 3021), where every address is a host.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && (self.prefix >= 31 || (ip != self.network() && ip != self.broadcast()))
    }

    /// The two subnets share at least one address (one contains the other).
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let mask = self.mask() & other.mask();
        u32::from(self.addr) & mask == u32::from(other.addr) & mask
    }

    /// The subnet itself, `10.1.0.0/24`.
    pub fn subnet_string(&self) -> String {
        format!("{}/{}", self.network(), self.prefix)
    }
}

impl fmt::Display for Ipv4Net {
    /// `10.1.0.1/24`, as written in the file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `"02:00:00:00:00:01"` (hex pairs, either case, colon-separated) → bytes.
pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let bad = || {
        format!(
            "{text:?} is not a MAC address: six hex pairs separated by ':', e.g. \"02:00:00:00:00:01\""
        )
    };
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in mac.iter_mut() {
        let part = parts.next().ok_or_else(bad)?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

/// Bytes → `"02:00:00:00:00:01"` (lower case, as dnsmasq writes it).
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A DNS name as the instance's dnsmasq answers it: dot-separated labels of letters,
/// digits and '-' (1 to 63 characters, not starting or ending with '-'), at most 253
/// characters, no trailing dot.
pub fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err(format!(
            "{name:?} must be a DNS name of 1 to 253 characters"
        ));
    }
    for label in name.split('.') {
        check_label(label).map_err(|e| format!("{name:?} is not a DNS name: {e}"))?;
    }
    Ok(())
}

/// One DNS label: what a DHCP client's host name must be (`app1`).
pub fn check_dns_label(name: &str) -> Result<(), String> {
    check_label(name).map_err(|e| format!("{name:?} is not a host name (one DNS label): {e}"))
}

fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() || label.len() > 63 {
        return Err("each label (between dots) must be 1 to 63 characters".into());
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err("only letters, digits and '-' (and '.' between labels)".into());
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("a label may not start or end with '-'".into());
    }
    Ok(())
}

/// A bridge name: a valid Linux interface name (1 to 15 bytes, no '/', ':' or
/// whitespace, not "." or ".."), further limited to letters, digits, '.', '_' and '-'
/// because it also names `dnsmasq@<bridge>` and `/run/zedctr/dnsmasq/<bridge>.conf`.
pub fn check_bridge_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!(
            "{name:?} is not an interface name: 1 to 15 characters (Linux's IFNAMSIZ)"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not an interface name"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(format!(
            "{name:?} is not an interface name: only letters, digits, '.', '_' and '-' (no '/', ':' or whitespace)"
        ));
    }
    Ok(())
}

/// An instance's name (its file stem): letters, digits, '.', '_', '-', 1 to 64
/// characters, not starting with '.'.
pub fn check_instance_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "instance name {name:?} (the file stem) must be 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'"
        ))
    }
}
