//! A DHCP and DNS client on one of an [`avahi::Lab`]'s bridges: its own network
//! namespace with a chosen MAC and no address, asking with busybox's `udhcpc` and
//! `nslookup`, as a device's app would ask the bridge's dnsmasq.

use crate::avahi::{Lab, sh};
use std::process::Command;

pub struct DhcpClient {
    /// Its network namespace (removed with the lab's app namespaces).
    pub ns: String,
}

impl DhcpClient {
    /// Plugs a new client into bridge `b` of `lab` with `mac`; the lab removes it.
    pub fn on_bridge(lab: &mut Lab, b: usize, mac: &str) -> DhcpClient {
        let stem = &lab.dev[..lab.dev.len() - 1];
        let (ns, veth) = (format!("{stem}c{b}"), format!("{stem}w{b}"));
        lab.apps.push(ns.clone());
        sh(&format!(
            "ip netns add {ns} && ip -n {ns} link set lo up && \
             ip -n {dev} link add {veth} type veth peer name eth0 netns {ns} && \
             ip -n {dev} link set {veth} master {br} up && \
             ip -n {ns} link set eth0 address {mac} up",
            dev = lab.dev,
            br = lab.bridges[b],
        ));
        DhcpClient { ns }
    }

    /// Runs `command` with `sh -c` in the client's namespace: success, stdout + stderr.
    pub fn run(&self, command: &str) -> (bool, String) {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.ns, "sh", "-c", command])
            .output()
            .expect("ip netns exec");
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    }

    /// The address a DHCP exchange offers the client (it does not configure it).
    pub fn dhcp(&self) -> Option<String> {
        let (ok, text) = self.run("busybox udhcpc -i eth0 -n -q -t 3 -T 1 -s /bin/true 2>&1");
        let line = text.lines().find(|l| l.contains("lease of"))?;
        ok.then(|| {
            line.split_whitespace()
                .skip_while(|w| *w != "of")
                .nth(1)
                .map(str::to_string)
        })?
    }

    /// The A record `server` gives for `name`, if any.
    pub fn lookup(&self, name: &str, server: &str) -> Option<String> {
        let (_, text) = self.run(&format!("busybox nslookup -type=a {name} {server} 2>&1"));
        // busybox prints the server first ("Address: 10.x.1.1:53"), then the answer.
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("Address:"))
            .map(str::trim)
            .find(|a| !a.contains(':') && !a.contains('#'))
            .map(str::to_string)
    }
}
