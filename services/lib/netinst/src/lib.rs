//! Network instances (DESIGN.md "Network instances"): one TOML file per instance in a
//! watched directory (by default [`DEFAULT_DIR`], `/run/zedctr/network-instances/`).
//! zedrouter or an operator writes them; zedctr creates no bridges. dnsmasq-render and
//! the downloader read them through this crate: [`load_dir`] parses and checks every
//! file, [`Watcher`] says when to load again, [`NetworkInstance::read_leases`] reads
//! what the instance's dnsmasq handed out.
//!
//! The instance's name is the file stem (`blue.toml` → `blue`). Every key:
//!
//! ```toml
//! bridge = "bn1"                      # required: the (existing) bridge interface
//! ipv4 = "10.1.0.1/24"                # required: the bridge's own address and prefix
//! dhcp-range = "10.1.0.100,10.1.0.200"   # optional: addresses DHCP hands out
//! servers = ["1.1.1.1", "2606:4700:4700::1111"]   # upstream DNS, in order
//! hosts = [{ name = "app1", ip = "10.1.0.5" }]     # names the instance's DNS answers
//! dhcp-hosts = [{ mac = "02:00:00:00:00:01", ip = "10.1.0.5", name = "app1" }]
//! lease-file = "/run/zedctr/dnsmasq/bn1.leases"   # default: DEFAULT_LEASE_DIR/<bridge>.leases
//! ```
//!
//! `hosts` and `dhcp-hosts` may also be written as `[[hosts]]` / `[[dhcp-hosts]]`
//! tables. The field reference, with every rule, is in this crate's README.md.
//!
//! Errors are collected, never stopped at: every unknown key, bad value and conflict,
//! each as `file:line: key: message` ([`ConfigError`]); a bad file never hides the good
//! ones. Keys inside list entries are named with a 0-based index: `dhcp-hosts[1].mac`.
//!
//! Writers should write `.<name>.toml` (files starting with '.' are ignored) or any
//! name not ending in `.toml`, then rename it into place, so readers never see half a
//! file.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

pub mod fuzzing;
mod leases;
mod load;
mod net;
mod parse;
mod watch;

pub use leases::{Lease, Leases, parse_leases};
pub use load::{Loaded, load_dir, load_dirs};
pub use net::{
    Ipv4Net, check_bridge_name, check_dns_label, check_dns_name, check_instance_name, format_mac,
    parse_mac,
};
pub use parse::parse_instance;
pub use watch::Watcher;

/// Where network instances live on a device.
pub const DEFAULT_DIR: &str = "/run/zedctr/network-instances";

/// Where an instance's lease file is when it names none: `<this>/<bridge>.leases`
/// (next to dnsmasq-render's `<bridge>.conf`).
pub const DEFAULT_LEASE_DIR: &str = "/run/zedctr/dnsmasq";

/// One problem in one network-instance file (or lease file): file, line, dotted key
/// (`dhcp-hosts[0].mac`) and message, shared with the other config parsers.
pub use confkit::ConfigError;

/// A DNS name the instance's dnsmasq answers (`hosts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// A DNS name: labels of letters, digits and '-', separated by dots.
    pub name: String,
    /// IPv4 or IPv6; need not be in the instance's subnet.
    pub ip: IpAddr,
}

/// A DHCP reservation (`dhcp-hosts`): this MAC always gets this address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpHost {
    pub mac: [u8; 6],
    /// A host address in the instance's subnet, not the bridge's own.
    pub ip: Ipv4Addr,
    /// The host name given to the client (one DNS label), if any.
    pub name: Option<String>,
}

/// One network instance, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInstance {
    /// The file stem.
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// The bridge interface (a Linux interface name, ≤ 15 characters).
    pub bridge: String,
    /// The bridge's own address and the subnet's prefix.
    pub ipv4: Ipv4Net,
    /// First and last address DHCP hands out (inclusive); `None`: no dynamic range.
    pub dhcp_range: Option<(Ipv4Addr, Ipv4Addr)>,
    /// Upstream DNS servers, in order; empty: none.
    pub servers: Vec<IpAddr>,
    /// Names the instance's DNS answers.
    pub hosts: Vec<HostEntry>,
    /// DHCP reservations.
    pub dhcp_hosts: Vec<DhcpHost>,
    /// The dnsmasq lease file, if the file names one; see [`NetworkInstance::lease_path`].
    pub lease_file: Option<PathBuf>,
    /// The line of each top-level key in the file (for errors found later).
    pub key_lines: Vec<(&'static str, usize)>,
}

impl NetworkInstance {
    /// `ip` is in the instance's subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.ipv4.contains(ip)
    }

    /// The bridge's own address.
    pub fn address(&self) -> Ipv4Addr {
        self.ipv4.addr
    }

    /// The lease file: `lease-file`, or `DEFAULT_LEASE_DIR/<bridge>.leases`.
    pub fn lease_path(&self) -> PathBuf {
        match &self.lease_file {
            Some(p) => p.clone(),
            None => Path::new(DEFAULT_LEASE_DIR).join(format!("{}.leases", self.bridge)),
        }
    }

    /// The IPv4 leases in [`lease_path`](Self::lease_path). Never fails: a missing or
    /// unreadable file gives no leases and an error in [`Leases::errors`].
    pub fn read_leases(&self) -> Leases {
        leases::read_leases(&self.lease_path())
    }

    /// The instance's dnsmasq holds an unexpired lease for `ip`, which is in the subnet.
    /// False when the lease file cannot be read.
    pub fn lease_holds(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && self.read_leases().holds(ip, leases::now_epoch())
    }

    /// The reservation for `mac`, if any.
    pub fn dhcp_host_for(&self, mac: &[u8; 6]) -> Option<&DhcpHost> {
        self.dhcp_hosts.iter().find(|h| &h.mac == mac)
    }

    /// The line of a top-level key (`"bridge"`) in the file, if it is there.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.key_lines
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, line)| *line)
    }
}
