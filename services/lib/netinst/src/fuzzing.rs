//! One entry point per fuzz target of this crate (`fuzz/fuzz_targets/`): a plain
//! function of the input bytes that returns on any input, panicking only when a parser
//! panicked or a checked property broke. `tests/fuzz_corpus.rs` replays the committed
//! corpus (`fuzz/corpus/<target>/`) through the same functions on the stable toolchain.

use crate::{parse_instance, parse_leases};
use std::path::Path;

/// A network-instance file (`blue.toml`): what it gives holds what the file promises.
pub fn instance(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/run/zedctr/network-instances/blue.toml");
    match parse_instance("blue", file, text) {
        Ok(ni) => {
            assert!(
                crate::check_bridge_name(&ni.bridge).is_ok(),
                "{}",
                ni.bridge
            );
            assert!(ni.ipv4.check_interface().is_ok());
            if let Some((first, last)) = ni.dhcp_range {
                assert!(first <= last && ni.contains(first) && ni.contains(last));
            }
            for host in &ni.dhcp_hosts {
                assert!(ni.ipv4.is_host(host.ip) && host.ip != ni.address());
                assert_eq!(ni.dhcp_host_for(&host.mac).map(|h| h.mac), Some(host.mac));
            }
            for host in &ni.hosts {
                assert!(crate::check_dns_name(&host.name).is_ok(), "{}", host.name);
            }
            let _ = ni.lease_path();
        }
        Err(errors) => assert!(!errors.is_empty(), "a refusal says why"),
    }
}

/// A dnsmasq lease file: every line is a lease, skipped, or an error naming it.
pub fn leases(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count();
    let read = parse_leases(Path::new("/run/zedctr/dnsmasq/bn1.leases"), &text);
    assert!(read.leases.len() + read.errors.len() <= lines);
    for lease in &read.leases {
        assert!(lease.line >= 1 && lease.line <= lines);
        let _ = lease.mac_bytes();
    }
    for error in &read.errors {
        assert!(error.line.is_some_and(|l| l >= 1 && l <= lines), "{error}");
    }
}
