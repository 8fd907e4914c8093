//! The parser: good files, and one test per kind of error, each asserting file, line
//! and key.

use super::*;
use crate::{DEFAULT_LEASE_DIR, Ipv4Net};
use std::path::PathBuf;

const FILE: &str = "/ni/blue.toml";

fn parse(text: &str) -> Result<NetworkInstance, Vec<ConfigError>> {
    parse_instance("blue", Path::new(FILE), text)
}

fn errors_of(text: &str) -> Vec<ConfigError> {
    match parse(text) {
        Ok(i) => panic!("expected errors, got {i:?}"),
        Err(errors) => errors,
    }
}

/// A valid base: line 1 bridge, line 2 ipv4; tests append from line 3 on.
fn base(rest: &str) -> String {
    format!("bridge = \"bn1\"\nipv4 = \"10.1.0.1/24\"\n{rest}")
}

/// Asserts exactly one error, at `line` and `key`, whose message contains `needle`.
fn one(text: &str, line: Option<usize>, key: Option<&str>, needle: &str) {
    let errors = errors_of(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = &errors[0];
    assert_eq!(e.file, PathBuf::from(FILE));
    assert_eq!(e.line, line, "{e}");
    assert_eq!(e.key.as_deref(), key, "{e}");
    assert!(e.message.contains(needle), "{e} lacks {needle:?}");
}

#[test]
fn a_full_instance_gets_every_field() {
    let text = r#"
bridge = "bn1"
ipv4 = "10.1.0.1/24"
dhcp-range = "10.1.0.100, 10.1.0.200"
servers = ["1.1.1.1", "2606:4700:4700::1111"]
hosts = [{ name = "app1", ip = "10.1.0.5" }, { name = "db.example", ip = "fd00::5" }]
dhcp-hosts = [
  { mac = "02:00:00:00:00:01", ip = "10.1.0.5", name = "app1" },
  { mac = "02:00:00:00:00:0A", ip = "10.1.0.6" },
]
lease-file = "/run/dnsmasq/bn1.leases"
"#;
    let i = parse(text).expect("valid");
    assert_eq!(i.name, "blue");
    assert_eq!(i.file, PathBuf::from(FILE));
    assert_eq!(i.bridge, "bn1");
    assert_eq!(
        i.ipv4,
        Ipv4Net {
            addr: Ipv4Addr::new(10, 1, 0, 1),
            prefix: 24
        }
    );
    assert_eq!(i.ipv4.to_string(), "10.1.0.1/24");
    assert_eq!(i.ipv4.network(), Ipv4Addr::new(10, 1, 0, 0));
    assert_eq!(i.ipv4.broadcast(), Ipv4Addr::new(10, 1, 0, 255));
    assert_eq!(i.ipv4.netmask(), Ipv4Addr::new(255, 255, 255, 0));
    assert_eq!(
        i.dhcp_range,
        Some((Ipv4Addr::new(10, 1, 0, 100), Ipv4Addr::new(10, 1, 0, 200)))
    );
    assert_eq!(
        i.servers,
        vec![
            "1.1.1.1".parse::<IpAddr>().unwrap(),
            "2606:4700:4700::1111".parse().unwrap()
        ]
    );
    assert_eq!(
        i.hosts,
        vec![
            HostEntry {
                name: "app1".into(),
                ip: "10.1.0.5".parse().unwrap()
            },
            HostEntry {
                name: "db.example".into(),
                ip: "fd00::5".parse().unwrap()
            },
        ]
    );
    assert_eq!(
        i.dhcp_hosts,
        vec![
            DhcpHost {
                mac: [2, 0, 0, 0, 0, 1],
                ip: Ipv4Addr::new(10, 1, 0, 5),
                name: Some("app1".into())
            },
            DhcpHost {
                mac: [2, 0, 0, 0, 0, 0x0a],
                ip: Ipv4Addr::new(10, 1, 0, 6),
                name: None
            },
        ]
    );
    assert_eq!(
        i.dhcp_host_for(&[2, 0, 0, 0, 0, 1]).map(|h| h.ip),
        Some(Ipv4Addr::new(10, 1, 0, 5))
    );
    assert_eq!(i.lease_path(), PathBuf::from("/run/dnsmasq/bn1.leases"));
    assert_eq!(i.line_of("bridge"), Some(2));
    assert_eq!(i.line_of("dhcp-hosts"), Some(7));
    assert!(i.contains(Ipv4Addr::new(10, 1, 0, 77)));
    assert!(!i.contains(Ipv4Addr::new(10, 1, 1, 77)));
}

#[test]
fn a_minimal_instance_gets_the_defaults() {
    let i = parse(&base("")).expect("valid");
    assert_eq!(i.dhcp_range, None);
    assert!(i.servers.is_empty() && i.hosts.is_empty() && i.dhcp_hosts.is_empty());
    assert_eq!(i.lease_file, None);
    assert_eq!(
        i.lease_path(),
        Path::new(DEFAULT_LEASE_DIR).join("bn1.leases")
    );
}

#[test]
fn tables_of_arrays_and_any_key_order_work() {
    let text = r#"
dhcp-range = "10.2.0.10,10.2.0.20"
ipv4 = "10.2.0.1/16"
bridge = "br-blue.2"

[[hosts]]
name = "app1"
ip = "10.2.0.5"

[[dhcp-hosts]]
mac = "02:00:00:00:00:01"
ip = "10.2.3.4"
"#;
    let i = parse(text).expect("valid");
    assert_eq!(i.bridge, "br-blue.2");
    assert_eq!(i.hosts.len(), 1);
    assert_eq!(i.dhcp_hosts[0].ip, Ipv4Addr::new(10, 2, 3, 4));
}

#[test]
fn point_to_point_prefixes_have_no_network_address() {
    for (net, ok) in [
        ("10.1.0.0/31", true),
        ("10.1.0.1/31", true),
        ("10.1.0.7/32", true),
        ("10.1.0.0/30", false),
        ("10.1.0.3/30", false),
        ("10.1.0.1/30", true),
    ] {
        let text = format!("bridge = \"b\"\nipv4 = \"{net}\"");
        assert_eq!(parse(&text).is_ok(), ok, "{net}");
    }
}

#[test]
fn a_syntax_error_names_its_line() {
    one(
        &base("servers = [\"1.1.1.1\"\nhosts = 3\n"),
        Some(4),
        None,
        "TOML syntax",
    );
}

#[test]
fn a_duplicate_key_is_a_syntax_error() {
    one(&base("bridge = \"bn2\"\n"), Some(3), None, "TOML syntax");
}

#[test]
fn a_bad_file_name_is_reported() {
    let errors = parse_instance("bad name", Path::new("/ni/bad name.toml"), &base(""))
        .expect_err("bad name");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].line, None);
    assert_eq!(errors[0].key, None);
    assert!(errors[0].message.contains("bad file name"), "{}", errors[0]);
}

#[test]
fn an_unknown_key_is_an_error() {
    one(
        &base("dns = [\"1.1.1.1\"]\n"),
        Some(3),
        Some("dns"),
        "unknown key",
    );
}

#[test]
fn an_unknown_table_is_an_error() {
    one(
        &base("\n[dhcp]\nrange = 1\n"),
        Some(4),
        Some("dhcp"),
        "unknown key",
    );
}

#[test]
fn a_missing_bridge_is_an_error() {
    one("ipv4 = \"10.1.0.1/24\"", None, Some("bridge"), "missing");
}

#[test]
fn a_missing_ipv4_is_an_error() {
    one("bridge = \"bn1\"", None, Some("ipv4"), "missing");
}

#[test]
fn a_bridge_must_be_a_string() {
    one(
        "ipv4 = \"10.1.0.1/24\"\nbridge = 7",
        Some(2),
        Some("bridge"),
        "must be a string, not an integer",
    );
}

#[test]
fn a_bridge_name_is_at_most_15_characters() {
    one(
        "ipv4 = \"10.1.0.1/24\"\nbridge = \"a-very-long-name0\"",
        Some(2),
        Some("bridge"),
        "15 characters",
    );
    assert!(parse("ipv4 = \"10.1.0.1/24\"\nbridge = \"a-very-long-nam\"").is_ok());
}

#[test]
fn a_bridge_name_has_no_slash_or_whitespace() {
    for bad in ["br/0", "br 0", "br:0", "", ".."] {
        one(
            &format!("ipv4 = \"10.1.0.1/24\"\nbridge = \"{bad}\""),
            Some(2),
            Some("bridge"),
            "interface name",
        );
    }
}

#[test]
fn ipv4_needs_a_prefix() {
    one(
        "bridge = \"b\"\nipv4 = \"10.1.0.1\"",
        Some(2),
        Some("ipv4"),
        "no \"/prefix\"",
    );
}

#[test]
fn ipv4_needs_an_ipv4_address() {
    for bad in ["10.1.0/24", "fd00::1/64", "10.1.0.01/24"] {
        one(
            &format!("bridge = \"b\"\nipv4 = \"{bad}\""),
            Some(2),
            Some("ipv4"),
            "not an IPv4 address",
        );
    }
}

#[test]
fn ipv4_prefix_is_0_to_32() {
    for bad in ["33", "-1", "+8", "", "24x"] {
        one(
            &format!("bridge = \"b\"\nipv4 = \"10.1.0.1/{bad}\""),
            Some(2),
            Some("ipv4"),
            "prefix length",
        );
    }
}

#[test]
fn ipv4_is_not_the_network_address() {
    one(
        "bridge = \"b\"\nipv4 = \"10.1.0.0/24\"",
        Some(2),
        Some("ipv4"),
        "network address of 10.1.0.0/24: give the bridge's own address, e.g. 10.1.0.1/24",
    );
}

#[test]
fn ipv4_is_not_the_broadcast_address() {
    one(
        "bridge = \"b\"\nipv4 = \"10.1.0.255/24\"",
        Some(2),
        Some("ipv4"),
        "broadcast address",
    );
}

#[test]
fn ipv4_is_unicast() {
    for bad in ["127.0.0.1/8", "224.0.0.1/24", "0.0.0.0/0"] {
        one(
            &format!("bridge = \"b\"\nipv4 = \"{bad}\""),
            Some(2),
            Some("ipv4"),
            "cannot be a bridge's address",
        );
    }
}

#[test]
fn dhcp_range_is_two_addresses() {
    one(
        &base("dhcp-range = \"10.1.0.100-10.1.0.200\""),
        Some(3),
        Some("dhcp-range"),
        "\"first,last\"",
    );
    one(
        &base("dhcp-range = \"10.1.0.100,ten\""),
        Some(3),
        Some("dhcp-range"),
        "\"ten\" is not an IPv4 address",
    );
}

#[test]
fn dhcp_range_is_inside_the_subnet() {
    one(
        &base("dhcp-range = \"10.1.0.100,10.1.1.200\""),
        Some(3),
        Some("dhcp-range"),
        "10.1.1.200 is outside the instance's subnet 10.1.0.0/24",
    );
}

#[test]
fn dhcp_range_holds_no_network_or_broadcast_address() {
    one(
        &base("dhcp-range = \"10.1.0.100,10.1.0.255\""),
        Some(3),
        Some("dhcp-range"),
        "network or broadcast",
    );
}

#[test]
fn dhcp_range_starts_before_it_ends() {
    one(
        &base("dhcp-range = \"10.1.0.200,10.1.0.100\""),
        Some(3),
        Some("dhcp-range"),
        "starts after it ends",
    );
}

#[test]
fn dhcp_range_leaves_out_the_bridge_address() {
    one(
        &base("dhcp-range = \"10.1.0.1,10.1.0.100\""),
        Some(3),
        Some("dhcp-range"),
        "includes the bridge's own address 10.1.0.1",
    );
    one(
        "dhcp-range = \"10.1.0.2,10.1.0.100\"\nbridge = \"b\"\nipv4 = \"10.1.0.50/24\"",
        Some(1),
        Some("dhcp-range"),
        "includes the bridge's own address",
    );
}

#[test]
fn servers_is_an_array_of_addresses() {
    one(
        &base("servers = \"1.1.1.1\""),
        Some(3),
        Some("servers"),
        "must be an array of IP addresses",
    );
    one(
        &base("servers = [\"1.1.1.1\", 8]"),
        Some(3),
        Some("servers[1]"),
        "must be a string, not an integer",
    );
    one(
        &base("servers = [\n  \"1.1.1.1\",\n  \"1.1.1.1:53\",\n]"),
        Some(5),
        Some("servers[1]"),
        "not an IP address",
    );
}

#[test]
fn a_server_is_listed_once_and_is_unicast() {
    one(
        &base("servers = [\"1.1.1.1\", \"1.1.1.1\"]"),
        Some(3),
        Some("servers[1]"),
        "listed twice",
    );
    one(
        &base("servers = [\"0.0.0.0\"]"),
        Some(3),
        Some("servers[0]"),
        "cannot be a DNS server",
    );
}

#[test]
fn hosts_is_an_array_of_tables() {
    one(
        &base("hosts = { name = \"a\", ip = \"10.1.0.5\" }"),
        Some(3),
        Some("hosts"),
        "must be an array of tables",
    );
    one(
        &base("hosts = [\"app1 10.1.0.5\"]"),
        Some(3),
        Some("hosts[0]"),
        "each entry must be a table such as { name = \"app1\", ip = \"10.1.0.5\" }, not a string",
    );
}

#[test]
fn a_host_entry_has_only_name_and_ip() {
    one(
        &base("hosts = [{ name = \"a\", ip = \"10.1.0.5\", ttl = 5 }]"),
        Some(3),
        Some("hosts[0].ttl"),
        "unknown key (an entry has: name, ip)",
    );
}

#[test]
fn a_host_entry_needs_both_fields() {
    one(
        &base("hosts = [\n  { name = \"a\", ip = \"10.1.0.5\" },\n  { name = \"b\" },\n]"),
        Some(5),
        Some("hosts[1]"),
        "needs both name and ip",
    );
}

#[test]
fn a_host_name_is_a_dns_name() {
    for bad in ["app_1", "-app", "a..b", "app.", ""] {
        one(
            &base(&format!(
                "hosts = [{{ name = \"{bad}\", ip = \"10.1.0.5\" }}]"
            )),
            Some(3),
            Some("hosts[0].name"),
            "DNS name",
        );
    }
}

#[test]
fn a_host_ip_is_an_address() {
    one(
        &base("[[hosts]]\nname = \"a\"\nip = \"app1\""),
        Some(5),
        Some("hosts[0].ip"),
        "\"app1\" is not an IP address",
    );
}

#[test]
fn a_host_entry_is_listed_once() {
    one(
        &base("hosts = [{ name = \"a\", ip = \"10.1.0.5\" }, { name = \"a\", ip = \"10.1.0.5\" }]"),
        Some(3),
        Some("hosts[1]"),
        "listed twice",
    );
    // The same name with two addresses is two records, not an error.
    assert!(
        parse(&base(
            "hosts = [{ name = \"a\", ip = \"10.1.0.5\" }, { name = \"a\", ip = \"10.1.0.6\" }]"
        ))
        .is_ok()
    );
}

#[test]
fn a_reservation_mac_is_six_hex_pairs() {
    for bad in [
        "02:00:00:00:00",
        "02-00-00-00-00-01",
        "02:00:00:00:00:0g",
        "2:0:0:0:0:1",
    ] {
        one(
            &base(&format!(
                "dhcp-hosts = [{{ mac = \"{bad}\", ip = \"10.1.0.5\" }}]"
            )),
            Some(3),
            Some("dhcp-hosts[0].mac"),
            "is not a MAC address",
        );
    }
}

#[test]
fn a_reservation_mac_is_a_clients() {
    one(
        &base("dhcp-hosts = [{ mac = \"01:00:5e:00:00:01\", ip = \"10.1.0.5\" }]"),
        Some(3),
        Some("dhcp-hosts[0].mac"),
        "multicast",
    );
}

#[test]
fn a_reservation_ip_is_a_host_in_the_subnet() {
    one(
        &base("\n[[dhcp-hosts]]\nmac = \"02:00:00:00:00:01\"\nip = \"10.9.0.5\""),
        Some(6),
        Some("dhcp-hosts[0].ip"),
        "10.9.0.5 is not a host address in the instance's subnet 10.1.0.0/24",
    );
    one(
        &base("dhcp-hosts = [{ mac = \"02:00:00:00:00:01\", ip = \"10.1.0.255\" }]"),
        Some(3),
        Some("dhcp-hosts[0].ip"),
        "not a host address",
    );
}

#[test]
fn a_reservation_is_not_the_bridge_address() {
    one(
        &base("dhcp-hosts = [{ mac = \"02:00:00:00:00:01\", ip = \"10.1.0.1\" }]"),
        Some(3),
        Some("dhcp-hosts[0].ip"),
        "the bridge's own address",
    );
}

#[test]
fn a_reservation_name_is_one_label() {
    one(
        &base("dhcp-hosts = [{ mac = \"02:00:00:00:00:01\", ip = \"10.1.0.5\", name = \"a.b\" }]"),
        Some(3),
        Some("dhcp-hosts[0].name"),
        "one DNS label",
    );
}

#[test]
fn a_reservation_needs_mac_and_ip() {
    one(
        &base("dhcp-hosts = [{ ip = \"10.1.0.5\", name = \"a\" }]"),
        Some(3),
        Some("dhcp-hosts[0]"),
        "needs mac and ip",
    );
}

#[test]
fn a_mac_or_an_ip_is_reserved_once() {
    one(
        &base(
            "dhcp-hosts = [\n { mac = \"02:00:00:00:00:01\", ip = \"10.1.0.5\" },\n { mac = \"02:00:00:00:00:01\", ip = \"10.1.0.6\" },\n]",
        ),
        Some(5),
        Some("dhcp-hosts[1].mac"),
        "02:00:00:00:00:01 is already reserved by dhcp-hosts[0]",
    );
    one(
        &base(
            "dhcp-hosts = [\n { mac = \"02:00:00:00:00:01\", ip = \"10.1.0.5\" },\n { mac = \"02:00:00:00:00:02\", ip = \"10.1.0.5\" },\n]",
        ),
        Some(5),
        Some("dhcp-hosts[1].ip"),
        "10.1.0.5 is already reserved by dhcp-hosts[0]",
    );
}

#[test]
fn lease_file_is_an_absolute_path() {
    one(
        &base("lease-file = \"leases\""),
        Some(3),
        Some("lease-file"),
        "absolute path",
    );
}

#[test]
fn lease_file_is_plain_enough_for_a_config_line_a_bind_and_a_toml_string() {
    for bad in [
        "/run/a\\nport=0.leases",
        "/run/a:b.leases",
        "/run/a,b.leases",
        "/x.leases",
        "/run/../etc/passwd",
        "/run/./l.leases",
        "/run//l.leases",
        "/run/l.leases/",
        // Letters TOML, dnsmasq or a reader could take for something else.
        "/run/a b.leases",
        "/run/a\\\"b.leases",
        "/run/a#b.leases",
        "/run/br\\u00adx.leases",
        "/run/br\\u200bx.leases",
        "/run/br\\u0085x.leases",
        "/run/caf\\u00e9.leases",
    ] {
        let text = base(&format!("lease-file = \"{bad}\""));
        one(
            &text,
            Some(3),
            Some("lease-file"),
            "absolute path to a file",
        );
    }
}

#[test]
fn lease_file_names_a_lease_file_only() {
    // It is bound writable into dnsmasq, which opens it as root.
    for bad in [
        "/etc/shadow",
        "/run/zedctr/control.sock",
        "/run/zedctr/services/dnsmasq@bn1.toml",
        "/dev/sda",
        "/run/zedctr/dnsmasq/.leases",
        "/run/zedctr/dnsmasq/bn1.leases.bak",
    ] {
        let text = base(&format!("lease-file = \"{bad}\""));
        one(&text, Some(3), Some("lease-file"), "<name>.leases");
    }
    for good in [
        "/run/zedctr/dnsmasq/bn1.leases",
        "/persist/leases/dnsmasq@bn1-2_a+b.leases",
        "/tmp/.tmpAb3/x.y.leases",
    ] {
        let i = parse_instance(
            "a",
            Path::new("/a.toml"),
            &base(&format!("lease-file = \"{good}\"")),
        )
        .unwrap_or_else(|e| panic!("{good}: {e:?}"));
        assert_eq!(i.lease_path(), Path::new(good));
    }
}

#[test]
fn every_error_is_reported_in_line_order() {
    let text = "\
bridge = \"br/0\"
ipv4 = \"10.1.0.0/24\"
dhcp-range = \"x\"
servers = [\"nope\"]
colour = \"blue\"
hosts = [{ name = \"_\", ip = \"1\" }]
dhcp-hosts = [{ mac = \"zz\", ip = \"10.1.0.5\" }]
lease-file = \"rel\"
";
    let errors = errors_of(text);
    let keys: Vec<_> = errors
        .iter()
        .map(|e| (e.line, e.key.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        keys,
        vec![
            (Some(1), "bridge"),
            (Some(2), "ipv4"),
            (Some(3), "dhcp-range"),
            (Some(4), "servers[0]"),
            (Some(5), "colour"),
            (Some(6), "hosts[0].name"),
            (Some(6), "hosts[0].ip"),
            (Some(7), "dhcp-hosts[0].mac"),
            (Some(8), "lease-file"),
        ],
        "{errors:#?}"
    );
}

#[test]
fn an_error_displays_as_file_line_key_message() {
    let errors = errors_of(&base("dns = 1"));
    assert!(
        errors[0]
            .to_string()
            .starts_with("/ni/blue.toml:3: dns: unknown key"),
        "{}",
        errors[0]
    );
    let whole = ConfigError {
        file: "/x.toml".into(),
        line: None,
        key: None,
        message: "cannot read".into(),
    };
    assert_eq!(whole.to_string(), "/x.toml: cannot read");
}

#[test]
fn subnets_overlap_when_one_holds_the_other() {
    let net = |s: &str| Ipv4Net::parse(s).unwrap();
    assert!(net("10.1.0.1/24").overlaps(&net("10.1.0.200/24")));
    assert!(net("10.1.0.1/16").overlaps(&net("10.1.7.1/24")));
    assert!(net("10.1.7.1/24").overlaps(&net("10.1.0.1/16")));
    assert!(!net("10.1.0.1/24").overlaps(&net("10.1.1.1/24")));
    assert!(net("10.1.0.1/0").overlaps(&net("192.168.0.1/24")));
    assert!(net("10.1.0.1/32").contains(Ipv4Addr::new(10, 1, 0, 1)));
    assert!(!net("10.1.0.1/32").contains(Ipv4Addr::new(10, 1, 0, 2)));
}

#[test]
fn macs_round_trip() {
    let mac = parse_mac("02:AB:cd:00:00:01").unwrap();
    assert_eq!(mac, [2, 0xab, 0xcd, 0, 0, 1]);
    assert_eq!(format_mac(&mac), "02:ab:cd:00:00:01");
}

/// The examples people copy: the README's and the crate documentation's.
#[test]
fn the_documented_examples_parse() {
    for (doc, prefix) in [
        (include_str!("../../README.md"), ""),
        (include_str!("../lib.rs"), "//! "),
    ] {
        let lines: Vec<&str> = doc
            .lines()
            .map(|l| l.strip_prefix(prefix).unwrap_or(l))
            .collect();
        let start = lines.iter().position(|l| *l == "```toml").unwrap() + 1;
        let len = lines[start..].iter().position(|l| *l == "```").unwrap();
        let text = lines[start..start + len].join("\n");
        let i = parse(&text).unwrap_or_else(|e| panic!("{e:#?}\n{text}"));
        assert_eq!(i.bridge, "bn1");
        assert!(!i.hosts.is_empty() && !i.dhcp_hosts.is_empty(), "{text}");
    }
}
