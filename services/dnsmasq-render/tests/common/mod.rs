//! What the dnsmasq tests share beyond the workspace harness (`tests/lab`): the network
//! instance of the lab's first bridge, written as EVE's writer should.

use lab::avahi::Lab;
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
