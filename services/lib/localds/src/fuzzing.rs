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

/// Question types mdns-sd 0.21 parses (`RRType::from_u16`).
const MDNS_SD_QTYPES: [u16; 11] = [1, 5, 12, 13, 16, 28, 33, 47, 64, 65, 255];

/// The packet for the `mdns_sd_packet` target, with every question's type one mdns-sd
/// knows (A in place of any other). mdns-sd skips a question of an unknown type, by
/// design, but its fuzz entry point asserts that every question counted in the header
/// was kept, so any such packet "crashed" that target (found in its first second).
/// Where the names run out or go wrong the packet is left as it is: mdns-sd refuses it.
pub fn known_question_types(packet: &[u8]) -> Vec<u8> {
    let mut out = packet.to_vec();
    let Some(count) = packet.get(4..6) else {
        return out;
    };
    let mut pos = 12;
    for _ in 0..u16::from_be_bytes([count[0], count[1]]) {
        let Some(end) = name_end(packet, pos) else {
            return out;
        };
        let Some(qtype) = packet.get(end..end + 2) else {
            return out;
        };
        if !MDNS_SD_QTYPES.contains(&u16::from_be_bytes([qtype[0], qtype[1]])) {
            out[end..end + 2].copy_from_slice(&1u16.to_be_bytes());
        }
        pos = end + 4;
    }
    out
}

/// Where the name at `pos` ends, read as mdns-sd reads it: labels up to a zero length
/// or a pointer (two bytes, ending the name).
fn name_end(packet: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let length = *packet.get(pos)?;
        match length & 0xc0 {
            0x00 if length == 0 => return Some(pos + 1),
            0x00 => pos += 1 + usize::from(length),
            0xc0 => return Some(pos + 2),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_question_types_become_a_and_nothing_else_changes() {
        // What the mdns_sd_packet target found: the name is "ap\0\0" (a NUL ends no
        // label), so the question's type is "lo" (0x6c6f), unknown to mdns-sd.
        let found = b"\0\0\0\0\0\x01\0\0\0\0\0\0\x04ap\0\0\0local\0\0\x01\0\x01";
        let fixed = known_question_types(found);
        assert_eq!(&fixed[18..20], &[0, 1]);
        assert_eq!(fixed[..18], found[..18]);
        assert_eq!(fixed[20..], found[20..]);
        assert_eq!(known_question_types(&fixed), fixed, "known types stay");
        // A pointer ends a name; a bad length leaves the packet alone.
        let pointer = b"\0\0\0\0\0\x01\0\0\0\0\0\0\xc0\x0c\x00\x63\x00\x01";
        assert_eq!(&known_question_types(pointer)[14..16], &[0, 1]);
        let bad = b"\0\0\0\0\0\x01\0\0\0\0\0\0\x80\x00\x00\x63";
        assert_eq!(known_question_types(bad), bad.to_vec());
    }
}
