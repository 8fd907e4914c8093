//! One instance file → a [`NetworkInstance`], every problem collected with its file,
//! line and key (spans from `toml::de::DeTable`).

use crate::net::{
    Ipv4Net, check_bridge_name, check_dns_label, check_dns_name, check_instance_name, format_mac,
    parse_mac,
};
use crate::{ConfigError, DhcpHost, HostEntry, NetworkInstance};
use confkit::toml_reader::{Reader, a_type};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

const KEYS: &str = "bridge, ipv4, dhcp-range, servers, hosts, dhcp-hosts, lease-file";

/// Parses one instance file. `name` is the file stem; `file` is only used in errors and
/// kept in the result.
pub fn parse_instance(
    name: &str,
    file: &Path,
    text: &str,
) -> Result<NetworkInstance, Vec<ConfigError>> {
    let mut cx = Cx {
        r: Reader::new(file, text),
    };
    if let Err(message) = check_instance_name(name) {
        cx.whole_file(format!("bad file name: {message}"));
    }
    let Some(root) = cx.parse() else {
        return Err(cx.r.finish());
    };
    let instance = cx.instance(name, root.get_ref());
    match instance {
        Some(instance) if !cx.has_errors() => Ok(instance),
        _ => Err(cx.r.finish()),
    }
}

type Value<'i> = Spanned<DeValue<'i>>;

/// An instance file being read: the shared reader (errors with file, line and key, put
/// back in file order at the end).
struct Cx<'a> {
    r: Reader<'a>,
}

confkit::reader_context!(Cx, r);

impl Cx<'_> {
    fn instance(&mut self, name: &str, root: &DeTable<'_>) -> Option<NetworkInstance> {
        let mut key_lines = Vec::new();
        let mut bridge = None;
        let mut ipv4: Option<(Ipv4Net, Range<usize>)> = None;
        let mut ipv4_bad = false;
        let mut range: Option<(Ipv4Addr, Ipv4Addr, Range<usize>)> = None;
        let mut servers = Vec::new();
        let mut hosts = Vec::new();
        let mut dhcp_hosts: Vec<(DhcpHost, Range<usize>, String)> = Vec::new();
        let mut lease_file = None;
        let mut failed = false;

        for (key, value) in root.iter() {
            let k = key.get_ref().as_ref();
            let line = self.line(&key.span());
            let before = self.error_count();
            match k {
                "bridge" => {
                    key_lines.push(("bridge", line));
                    if let Some(text) = self.string(k, value) {
                        match check_bridge_name(&text) {
                            Ok(()) => bridge = Some(text),
                            Err(e) => self.error(&value.span(), k, e),
                        }
                    }
                }
                "ipv4" => {
                    key_lines.push(("ipv4", line));
                    ipv4_bad = true;
                    if let Some(text) = self.string(k, value) {
                        match Ipv4Net::parse(&text).and_then(|n| n.check_interface().map(|_| n)) {
                            Ok(net) => {
                                ipv4 = Some((net, value.span()));
                                ipv4_bad = false;
                            }
                            Err(e) => self.error(&value.span(), k, e),
                        }
                    }
                }
                "dhcp-range" => {
                    key_lines.push(("dhcp-range", line));
                    if let Some(text) = self.string(k, value) {
                        match parse_range(&text) {
                            Ok((start, end)) => range = Some((start, end, value.span())),
                            Err(e) => self.error(&value.span(), k, e),
                        }
                    }
                }
                "servers" => {
                    key_lines.push(("servers", line));
                    servers = self.servers(value);
                }
                "hosts" => {
                    key_lines.push(("hosts", line));
                    hosts = self.hosts(value);
                }
                "dhcp-hosts" => {
                    key_lines.push(("dhcp-hosts", line));
                    dhcp_hosts = self.dhcp_hosts(value);
                }
                "lease-file" => {
                    key_lines.push(("lease-file", line));
                    if let Some(text) = self.string(k, value) {
                        match check_lease_file(&text) {
                            Ok(()) => lease_file = Some(PathBuf::from(text)),
                            Err(why) => self.error(&value.span(), k, why),
                        }
                    }
                }
                _ => self.error(
                    &key.span(),
                    k,
                    format!("unknown key (the keys are: {KEYS})"),
                ),
            }
            failed |= self.error_count() > before;
        }

        if bridge.is_none() && !key_lines.iter().any(|(k, _)| *k == "bridge") {
            self.missing(
                "bridge",
                "every network instance names its bridge interface",
            );
        }
        if ipv4.is_none() && !ipv4_bad {
            self.missing(
                "ipv4",
                "every network instance gives the bridge's address and prefix, e.g. \"10.1.0.1/24\"",
            );
        }
        // Checks against the subnet, once it is known (keys may come in any order).
        if let Some((net, _)) = &ipv4 {
            let net = *net;
            if let Some((start, end, span)) = &range {
                self.check_range(net, *start, *end, span);
            }
            for (host, span, key) in &dhcp_hosts {
                if !net.is_host(host.ip) {
                    self.error(
                        span,
                        &format!("{key}.ip"),
                        format!(
                            "{} is not a host address in the instance's subnet {}",
                            host.ip,
                            net.subnet_string()
                        ),
                    );
                } else if host.ip == net.addr {
                    self.error(
                        span,
                        &format!("{key}.ip"),
                        format!("{} is the bridge's own address", host.ip),
                    );
                }
            }
        }
        if failed || self.has_errors() {
            return None;
        }
        Some(NetworkInstance {
            name: name.to_string(),
            file: self.file.to_path_buf(),
            bridge: bridge?,
            ipv4: ipv4?.0,
            dhcp_range: range.map(|(s, e, _)| (s, e)),
            servers,
            hosts,
            dhcp_hosts: dhcp_hosts.into_iter().map(|(h, _, _)| h).collect(),
            lease_file,
            key_lines,
        })
    }

    fn check_range(&mut self, net: Ipv4Net, start: Ipv4Addr, end: Ipv4Addr, span: &Range<usize>) {
        let key = "dhcp-range";
        let subnet = net.subnet_string();
        for ip in [start, end] {
            if !net.is_host(ip) {
                let why = if net.contains(ip) {
                    "is the network or broadcast address of"
                } else {
                    "is outside"
                };
                self.error(
                    span,
                    key,
                    format!("{ip} {why} the instance's subnet {subnet}"),
                );
                return;
            }
        }
        if u32::from(start) > u32::from(end) {
            self.error(
                span,
                key,
                format!("starts after it ends ({start} > {end}): write \"first,last\""),
            );
            return;
        }
        if (u32::from(start)..=u32::from(end)).contains(&u32::from(net.addr)) {
            self.error(
                span,
                key,
                format!(
                    "{start}..{end} includes the bridge's own address {}",
                    net.addr
                ),
            );
        }
    }

    fn string(&mut self, key: &str, value: &Value<'_>) -> Option<String> {
        match value.get_ref().as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.error(
                    &value.span(),
                    key,
                    format!("must be a string, not {}", a_type(value.get_ref())),
                );
                None
            }
        }
    }

    fn array<'t, 'i>(
        &mut self,
        key: &str,
        value: &'t Value<'i>,
        what: &str,
    ) -> Option<&'t [Value<'i>]> {
        match value.get_ref().as_array() {
            Some(array) => Some(array.as_ref()),
            None => {
                self.error(
                    &value.span(),
                    key,
                    format!(
                        "must be an array of {what}, not {}",
                        a_type(value.get_ref())
                    ),
                );
                None
            }
        }
    }

    fn servers(&mut self, value: &Value<'_>) -> Vec<IpAddr> {
        let key = "servers";
        let mut out: Vec<IpAddr> = Vec::new();
        let Some(items) = self.array(key, value, "IP addresses, e.g. [\"1.1.1.1\"]") else {
            return out;
        };
        for (i, item) in items.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let Some(text) = self.string(&k, item) else {
                continue;
            };
            match text.parse::<IpAddr>() {
                Ok(ip) if ip.is_unspecified() || ip.is_multicast() => self.error(
                    &item.span(),
                    &k,
                    format!("{ip} cannot be a DNS server (unspecified or multicast)"),
                ),
                Ok(ip) if out.contains(&ip) => {
                    self.error(&item.span(), &k, format!("{ip} is listed twice"))
                }
                Ok(ip) => out.push(ip),
                Err(_) => self.error(
                    &item.span(),
                    &k,
                    format!("{text:?} is not an IP address (a port or a name is not allowed)"),
                ),
            }
        }
        out
    }

    /// An entry of `hosts` or `dhcp-hosts`: a table with only `allowed` keys, each a
    /// string. Returns the strings found by key (unknown and non-string keys reported).
    fn entry(
        &mut self,
        key: &str,
        item: &Value<'_>,
        allowed: &[&'static str],
        example: &str,
    ) -> Option<Vec<(&'static str, String, Range<usize>)>> {
        let Some(table) = item.get_ref().as_table() else {
            self.error(
                &item.span(),
                key,
                format!(
                    "each entry must be a table such as {example}, not {}",
                    a_type(item.get_ref())
                ),
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (k, v) in table.iter() {
            let name = k.get_ref().as_ref();
            let dotted = format!("{key}.{name}");
            match allowed.iter().find(|a| **a == name) {
                Some(known) => match self.string(&dotted, v) {
                    Some(s) => out.push((*known, s, v.span())),
                    None => ok = false,
                },
                None => {
                    self.error(
                        &k.span(),
                        &dotted,
                        format!("unknown key (an entry has: {})", allowed.join(", ")),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn hosts(&mut self, value: &Value<'_>) -> Vec<HostEntry> {
        let example = "{ name = \"app1\", ip = \"10.1.0.5\" }";
        let mut out: Vec<HostEntry> = Vec::new();
        let Some(items) = self.array("hosts", value, "tables such as {{ name, ip }}") else {
            return out;
        };
        for (i, item) in items.iter().enumerate() {
            let key = format!("hosts[{i}]");
            let Some(fields) = self.entry(&key, item, &["name", "ip"], example) else {
                continue;
            };
            let mut name = None;
            let mut ip = None;
            let mut ok = true;
            for (field, text, span) in fields {
                let dotted = format!("{key}.{field}");
                match field {
                    "name" => match check_dns_name(&text) {
                        Ok(()) => name = Some(text),
                        Err(e) => {
                            self.error(&span, &dotted, e);
                            ok = false;
                        }
                    },
                    _ => match text.parse::<IpAddr>() {
                        Ok(addr) => ip = Some(addr),
                        Err(_) => {
                            self.error(&span, &dotted, format!("{text:?} is not an IP address"));
                            ok = false;
                        }
                    },
                }
            }
            if !ok {
                continue;
            }
            let (Some(name), Some(ip)) = (name, ip) else {
                self.error(
                    &item.span(),
                    &key,
                    format!("needs both name and ip, e.g. {example}"),
                );
                continue;
            };
            let entry = HostEntry { name, ip };
            if out.contains(&entry) {
                self.error(
                    &item.span(),
                    &key,
                    format!("{} → {} is listed twice", entry.name, entry.ip),
                );
                continue;
            }
            out.push(entry);
        }
        out
    }

    fn dhcp_hosts(&mut self, value: &Value<'_>) -> Vec<(DhcpHost, Range<usize>, String)> {
        let example = "{ mac = \"02:00:00:00:00:01\", ip = \"10.1.0.5\", name = \"app1\" }";
        let mut out: Vec<(DhcpHost, Range<usize>, String)> = Vec::new();
        let Some(items) = self.array("dhcp-hosts", value, "tables such as {{ mac, ip, name }}")
        else {
            return out;
        };
        for (i, item) in items.iter().enumerate() {
            let key = format!("dhcp-hosts[{i}]");
            let Some(fields) = self.entry(&key, item, &["mac", "ip", "name"], example) else {
                continue;
            };
            let (mut mac, mut ip, mut name) = (None, None, None);
            let mut ip_span = item.span();
            let mut ok = true;
            for (field, text, span) in fields {
                let dotted = format!("{key}.{field}");
                let result = match field {
                    "mac" => parse_mac(&text).and_then(|m| {
                        if m[0] & 1 == 1 || m == [0; 6] {
                            Err(format!(
                                "{text:?} is a multicast or all-zero MAC, never a client's"
                            ))
                        } else {
                            mac = Some(m);
                            Ok(())
                        }
                    }),
                    "ip" => text
                        .parse::<Ipv4Addr>()
                        .map(|addr| {
                            ip = Some(addr);
                            ip_span = span.clone();
                        })
                        .map_err(|_| format!("{text:?} is not an IPv4 address")),
                    _ => check_dns_label(&text).map(|()| name = Some(text)),
                };
                if let Err(e) = result {
                    self.error(&span, &dotted, e);
                    ok = false;
                }
            }
            if !ok {
                continue;
            }
            let (Some(mac), Some(ip)) = (mac, ip) else {
                self.error(
                    &item.span(),
                    &key,
                    format!("needs mac and ip (name is optional), e.g. {example}"),
                );
                continue;
            };
            if let Some((_, _, other)) = out.iter().find(|(h, _, _)| h.mac == mac) {
                let message = format!("{} is already reserved by {other}", format_mac(&mac));
                self.error(&item.span(), &format!("{key}.mac"), message);
                continue;
            }
            if let Some((_, _, other)) = out.iter().find(|(h, _, _)| h.ip == ip) {
                let message = format!("{ip} is already reserved by {other}");
                self.error(&ip_span, &format!("{key}.ip"), message);
                continue;
            }
            out.push((DhcpHost { mac, ip, name }, ip_span, key));
        }
        out
    }
}

/// `"10.1.0.100,10.1.0.200"` → the two addresses (syntax only).
fn parse_range(text: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let example = "\"first,last\", e.g. \"10.1.0.100,10.1.0.200\"";
    let Some((start, end)) = text.split_once(',') else {
        return Err(format!("must be {example}, not {text:?}"));
    };
    let parse = |s: &str| {
        s.trim()
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("must be {example}: {:?} is not an IPv4 address", s.trim()))
    };
    Ok((parse(start)?, parse(end)?))
}

#[cfg(test)]
mod tests;

/// A lease file's path: absolute, a file named `<something>.leases` in a directory other
/// than `/`, of ASCII letters, digits and `/ . _ - + @` only, with no empty, `.` or `..`
/// parts. Why so narrow:
/// - it is written into dnsmasq's configuration (one option per line), into a bind
///   (`source:destination`) and into a TOML definition: none of `:`, `,`, quotes,
///   whitespace, controls or characters a writer might quote wrongly can reach them;
/// - it is bound writable into a dnsmasq that opens it as root: the `.leases` name keeps
///   it off every file that is not a lease file (`/etc/shadow`, a control socket, a
///   device node, a service definition), whoever writes the instance.
fn check_lease_file(text: &str) -> Result<(), String> {
    let path = std::path::Path::new(text);
    let plain = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+@".contains(&b));
    // Textually: `Path::components` would drop the `.` parts before we saw them.
    let parts_ok = text
        .split('/')
        .skip(1)
        .all(|p| !p.is_empty() && p != "." && p != "..");
    let in_a_dir = path
        .parent()
        .is_some_and(|p| p != std::path::Path::new("/"));
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".leases"))
        .is_some_and(|stem| !stem.is_empty());
    if text.starts_with('/') && plain && parts_ok && in_a_dir && named {
        Ok(())
    } else {
        Err(format!(
            "must be an absolute path to a file named <name>.leases in a directory other \
             than /, of ASCII letters, digits and `/._-+@` only, without `.`/`..` parts, \
             not {text:?}"
        ))
    }
}
