//! One entry point per fuzz target of this crate (`fuzz/fuzz_targets/`): a plain
//! function of the input bytes that returns on any input, panicking only when a parser
//! panicked or a checked property broke. `tests/fuzz_corpus.rs` replays the committed
//! corpus (`fuzz/corpus/<target>/`) through the same functions on the stable toolchain.

use crate::changes::{Reservation, reservations};
use crate::render::{HEADER, Layout, render, service_name};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// dnsmasq's options this renderer writes; any other key in a rendered configuration
/// was injected through an instance's value.
const CONF_KEYS: [&str; 16] = [
    "interface",
    "listen-address",
    "bind-interfaces",
    "except-interface",
    "no-resolv",
    "no-hosts",
    "server",
    "hostsdir",
    "dhcp-range",
    "dhcp-hostsdir",
    "dhcp-leasefile",
    "dhcp-authoritative",
    "dhcp-option",
    "log-facility",
    "pid-file",
    "conf-file",
];

/// Reads a generated definition (service name, file, text) the way zedinit does and
/// returns its `[run]` binds as (source, read-only), or why it refused it. The caller
/// passes zedinit's parser: this crate only talks to zedinit, it does not link it.
pub type DefinitionReader<'a> =
    &'a dyn Fn(&str, &Path, &str) -> Result<Vec<(PathBuf, bool)>, String>;

/// A network-instance file rendered, and every rendered file read back the way its
/// reader reads it: the definition by zedinit's parser (accepted, confined), the
/// reservations by this crate's reader, the hosts file and the configuration line by
/// line. Each must say exactly what the instance says, nothing more.
pub fn render_roundtrip(data: &[u8], read_definition: DefinitionReader<'_>) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/run/zedctr/network-instances/blue.toml");
    let Ok(instance) = netinst::parse_instance("blue", file, text) else {
        return;
    };
    let layout = Layout {
        out_dir: "/run/zedctr/dnsmasq".into(),
        services_dir: "/run/zedctr/services".into(),
        dnsmasq: "/usr/sbin/dnsmasq".into(),
    };
    let r = render(&instance, &layout);
    let header = format!("{HEADER}{}", file.display());
    for text in [&r.conf, &r.hosts, &r.dhcp_hosts, &r.definition] {
        assert_eq!(text.lines().next(), Some(header.as_str()));
    }

    let name = service_name(&instance.bridge);
    let files = layout.files(&instance.bridge);
    let binds = read_definition(&name, &files.definition, &r.definition)
        .unwrap_or_else(|e| panic!("zedinit refuses the definition: {e}\n{}", r.definition));
    assert!(
        binds
            .iter()
            .any(|(src, readonly)| *src == r.lease_file && !readonly),
        "the lease file is bound writable"
    );

    let want: BTreeSet<Reservation> = instance
        .dhcp_hosts
        .iter()
        .map(|h| Reservation {
            mac: netinst::format_mac(&h.mac),
            ip: h.ip.to_string(),
        })
        .collect();
    assert_eq!(reservations(&r.dhcp_hosts), want, "reservations");

    let hosts: Vec<(String, String)> = body(&r.hosts)
        .map(|l| {
            let (ip, name) = l.split_once(' ').expect("`<ip> <name>`");
            (ip.to_string(), name.to_string())
        })
        .collect();
    let want: Vec<(String, String)> = instance
        .hosts
        .iter()
        .map(|h| (h.ip.to_string(), h.name.clone()))
        .collect();
    assert_eq!(hosts, want, "hosts");

    let conf: Vec<(&str, &str)> = body(&r.conf)
        .map(|l| l.split_once('=').unwrap_or((l, "")))
        .collect();
    for (key, _) in &conf {
        assert!(
            CONF_KEYS.contains(key),
            "option {key:?} injected\n{}",
            r.conf
        );
    }
    let values = |key: &str| -> Vec<&str> {
        conf.iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect()
    };
    assert_eq!(values("interface"), [instance.bridge.as_str()]);
    let servers: Vec<String> = instance.servers.iter().map(|s| s.to_string()).collect();
    assert_eq!(values("server"), servers);
    if !values("dhcp-range").is_empty() {
        let lease = r.lease_file.display().to_string();
        assert_eq!(values("dhcp-leasefile"), [lease.as_str()]);
    }
}

/// The lines after the header, comments skipped.
fn body(text: &str) -> impl Iterator<Item = &str> {
    text.lines().skip(1).filter(|l| !l.starts_with('#'))
}
