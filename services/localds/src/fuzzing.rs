//! One entry point per fuzz target of this crate (`fuzz/fuzz_targets/`): a plain
//! function of the input bytes that returns on any input, panicking only when a parser
//! panicked or a checked property broke. `tests/fuzz_corpus.rs` replays the committed
//! corpus (`fuzz/corpus/<target>/`) through the same functions on the stable toolchain.
//! (mdns-sd's own packet parser, used by the browses, has its fuzz entry point in
//! mdns-sd: the `mdns_sd_packet` target calls it.)

use crate::aquery::answered;
use crate::dns::{a_answers, a_query, id};
use std::net::{Ipv4Addr, SocketAddr};

/// A datagram an app VM sends to the A query's socket: only the queried name's A
/// records, and of those only the sender's own address, come out.
pub fn dns_answer(data: &[u8]) {
    let host = "app1.local";
    let sender = Ipv4Addr::new(10, 1, 0, 5);
    let from = SocketAddr::from((sender, 5353));
    let all = a_answers(data, host);
    assert!(
        all.len() <= data.len() / 14,
        "more answers than the packet holds"
    );
    if let Some(query_id) = id(data) {
        let kept = answered(data, from, query_id, host);
        assert!(kept.iter().all(|ip| *ip == sender));
        assert_eq!(kept.len(), all.iter().filter(|ip| **ip == sender).count());
        assert!(answered(data, from, query_id.wrapping_add(1), host).is_empty());
        assert!(answered(data, SocketAddr::from((sender, 53)), query_id, host).is_empty());
    }
    // The bytes as a name: a query for it is well formed and is no answer.
    if let Ok(name) = std::str::from_utf8(data) {
        if let Some(query) = a_query(7, name) {
            assert_eq!(id(&query), Some(7));
            assert!(a_answers(&query, name).is_empty());
        }
    }
}
