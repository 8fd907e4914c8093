//! What the dnsmasq tests share beyond the workspace harness (`tests/lab`): the network
//! instance of the lab's first bridge, written as EVE's writer should.

use lab::avahi::{Lab, sh};
use lab::dhcp_client::DhcpClient;
use lab::wait_until;
use std::path::Path;

/// Writes the first bridge's network instance to `0-net.toml`: `hosts` (name, last
/// octet), the reservation of `.5` for `reserve` (a MAC) if given, and its lease file.
/// As a writer should: a hidden name, then a rename.
pub fn write_instance(net: &Lab, hosts: &[(&str, u8)], reserve: Option<&str>, leases: &Path) {
    let ip = |last: u8| net.ip(0, last);
    let hosts: Vec<String> = hosts
        .iter()
        .map(|(name, last)| format!("{{ name = \"{name}\", ip = \"{}\" }}", ip(*last)))
        .collect();
    let reservation = match reserve {
        Some(mac) => format!(
            "dhcp-hosts = [{{ mac = \"{mac}\", ip = \"{}\", name = \"client\" }}]\n",
            ip(5)
        ),
        None => String::new(),
    };
    let text = format!(
        "bridge = \"{}\"\nipv4 = \"{}/24\"\ndhcp-range = \"{},{}\"\nhosts = [{}]\n{reservation}lease-file = \"{}\"\n",
        net.bridges[0],
        ip(1),
        ip(100),
        ip(200),
        hosts.join(", "),
        leases.display()
    );
    let hidden = net.instances().join(".0-net.toml");
    std::fs::write(&hidden, text).expect("instance");
    std::fs::rename(&hidden, net.instances().join("0-net.toml")).expect("rename");
}

/// The client asks the bridge's dnsmasq for an address until it gets one, which must be
/// `reserved`; once the lease (of `mac`) is in `leases`, the client takes the address.
pub fn take_reserved_lease(client: &DhcpClient, reserved: &str, leases: &Path, mac: &str) {
    let mut got = None;
    wait_until("a DHCP lease from the bridge's dnsmasq", || {
        got = client.dhcp();
        got.is_some()
    });
    assert_eq!(got.as_deref(), Some(reserved), "the reserved address");
    wait_until("the lease on file", || {
        std::fs::read_to_string(leases).is_ok_and(|t| t.contains(mac))
    });
    sh(&format!(
        "ip -n {} addr add {reserved}/24 dev eth0",
        client.ns
    ));
}
