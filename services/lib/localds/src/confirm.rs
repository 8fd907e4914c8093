//! What on the device confirms that an address answering for a host is the app of that
//! name: the network instance says so itself, so the answer can be taken at once
//! instead of waiting for the other bridges (`choose::decide`).
//!
//! Three things do, checked in this order (pure functions, the callers read the files):
//! - a dnsmasq **lease** of that address to a client that gave the host's name (the
//!   app's DHCP host name must then be the datastore's name);
//! - a **reservation** (`dhcp-hosts`) of that address under the host's name: the static
//!   address docs/local-datastore.md asks for HTTPS, which never shows in a lease file
//!   when the app sets it itself;
//! - a **`hosts`** entry of the instance naming the host with that address.
//!
//! A name matches with or without `.local`, case aside; an entry for another name, or for
//! the name at another address, confirms nothing.

use crate::dns::normalize;
use netinst::{Leases, NetworkInstance};
use std::net::{IpAddr, Ipv4Addr};

/// Why an answer was taken as the app's, when the instance confirms it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confirmed {
    Lease,
    Reservation,
    Hosts,
}

/// Whether `name` (as a lease, reservation or hosts entry gives it) names `host`: the
/// same name, case aside, with or without `.local`.
pub fn names(name: Option<&str>, host: &str) -> bool {
    let Some(name) = name else {
        return false;
    };
    let want = normalize(host);
    let want = want.strip_suffix(".local").unwrap_or(&want);
    let have = normalize(name);
    have.strip_suffix(".local").unwrap_or(&have) == want
}

/// What in `instance` (and its `leases`, read at `now_epoch`) confirms `ip` as `host`.
pub fn confirmation(
    instance: &NetworkInstance,
    leases: &Leases,
    now_epoch: u64,
    ip: Ipv4Addr,
    host: &str,
) -> Option<Confirmed> {
    if !instance.contains(ip) {
        return None;
    }
    if leases
        .lease_for(ip, now_epoch)
        .is_some_and(|l| names(l.hostname.as_deref(), host))
    {
        return Some(Confirmed::Lease);
    }
    if instance
        .dhcp_hosts
        .iter()
        .any(|r| r.ip == ip && names(r.name.as_deref(), host))
    {
        return Some(Confirmed::Reservation);
    }
    if instance
        .hosts
        .iter()
        .any(|h| h.ip == IpAddr::V4(ip) && names(Some(&h.name), host))
    {
        return Some(Confirmed::Hosts);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(text: &str) -> NetworkInstance {
        netinst::parse_instance("net", std::path::Path::new("/x/net.toml"), text).expect("instance")
    }

    fn leases(text: &str) -> Leases {
        netinst::parse_leases(std::path::Path::new("/x/bn1.leases"), text)
    }

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 1, 0, last)
    }

    #[test]
    fn a_name_matches_with_or_without_local_case_aside() {
        assert!(names(Some("dsapp"), "dsapp.local"));
        assert!(names(Some("DSApp"), "dsapp.local."));
        assert!(names(Some("dsapp.local"), "dsapp.local"));
        assert!(!names(Some("other"), "dsapp.local"));
        assert!(!names(Some("dsapp-2"), "dsapp.local"));
        assert!(!names(None, "dsapp.local"), "no name in the lease (`*`)");
    }

    #[test]
    fn a_reservation_or_hosts_entry_confirms_its_name_at_its_address_only() {
        let net = instance(
            "bridge = \"bn1\"\nipv4 = \"10.1.0.1/24\"\n\
             dhcp-hosts = [{ mac = \"02:00:00:00:00:05\", ip = \"10.1.0.5\", name = \"dsapp\" },\
                           { mac = \"02:00:00:00:00:06\", ip = \"10.1.0.6\" }]\n\
             hosts = [{ name = \"web.local\", ip = \"10.1.0.7\" }, { name = \"far\", ip = \"10.9.0.7\" }]\n",
        );
        let none = netinst::Leases::default();
        let check = |last, host| confirmation(&net, &none, 0, ip(last), host);
        assert_eq!(check(5, "dsapp.local"), Some(Confirmed::Reservation));
        assert_eq!(check(5, "other.local"), None, "another name");
        assert_eq!(
            check(6, "dsapp.local"),
            None,
            "a reservation without a name"
        );
        assert_eq!(check(9, "dsapp.local"), None, "the name at another address");
        assert_eq!(check(7, "WEB.local"), Some(Confirmed::Hosts));
        assert_eq!(check(7, "dsapp.local"), None);
        // An entry outside the bridge's subnet can't confirm an answer heard on it.
        let far = Ipv4Addr::new(10, 9, 0, 7);
        assert_eq!(confirmation(&net, &none, 0, far, "far.local"), None);
    }

    #[test]
    fn a_lease_naming_the_host_comes_first() {
        let net = instance(
            "bridge = \"bn1\"\nipv4 = \"10.1.0.1/24\"\n\
             hosts = [{ name = \"dsapp\", ip = \"10.1.0.5\" }]\n",
        );
        let named = leases("0 02:00:00:00:00:01 10.1.0.5 dsapp *\n");
        assert_eq!(
            confirmation(&net, &named, 100, ip(5), "dsapp.local"),
            Some(Confirmed::Lease)
        );
        let other = leases("0 02:00:00:00:00:01 10.1.0.5 someone *\n");
        assert_eq!(
            confirmation(&net, &other, 100, ip(5), "dsapp.local"),
            Some(Confirmed::Hosts),
            "a lease to another name does not confirm, the hosts entry does"
        );
    }
}
