//! Just enough DNS (RFC 1035) for one mDNS A query and its answers.

use std::net::Ipv4Addr;

/// A standard query (RD off) for `name`'s A record, class IN, with `id`.
pub fn a_query(id: u16, name: &str) -> Option<Vec<u8>> {
    let mut p = Vec::with_capacity(12 + name.len() + 6);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&[0, 1, 0, 1]); // QTYPE A, QCLASS IN
    Some(p)
}

/// A packet's id, if it is long enough to have one.
pub fn id(packet: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*packet.first()?, *packet.get(1)?]))
}

/// The A records for `name` (case-insensitive, trailing dot ignored) in a response.
pub fn a_answers(packet: &[u8], name: &str) -> Vec<Ipv4Addr> {
    let want = normalize(name);
    let mut out = Vec::new();
    if packet.len() < 12 || packet[2] & 0x80 == 0 {
        return out; // not a response
    }
    let count = |i: usize| u16::from_be_bytes([packet[i], packet[i + 1]]) as usize;
    let (qd, records) = (count(4), count(6) + count(8) + count(10));
    let mut pos = 12;
    for _ in 0..qd {
        let Some((_, next)) = read_name(packet, pos) else {
            return out;
        };
        pos = next + 4;
    }
    for _ in 0..records {
        let Some((owner, next)) = read_name(packet, pos) else {
            return out;
        };
        if next + 10 > packet.len() {
            return out;
        }
        let rtype = u16::from_be_bytes([packet[next], packet[next + 1]]);
        let class = u16::from_be_bytes([packet[next + 2], packet[next + 3]]) & 0x7fff; // cache-flush bit
        let len = u16::from_be_bytes([packet[next + 8], packet[next + 9]]) as usize;
        let data = next + 10;
        if data + len > packet.len() {
            return out;
        }
        if rtype == 1 && class == 1 && len == 4 && normalize(&owner) == want {
            out.push(Ipv4Addr::new(
                packet[data],
                packet[data + 1],
                packet[data + 2],
                packet[data + 3],
            ));
        }
        pos = data + len;
    }
    out
}

/// Lowercase, no trailing dot: how host names are compared.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Reads a possibly compressed name at `pos`; returns it and the position after it.
fn read_name(packet: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    for _ in 0..64 {
        let len = *packet.get(pos)? as usize;
        if len & 0xc0 == 0xc0 {
            let target = ((len & 0x3f) << 8) | *packet.get(pos + 1)? as usize;
            end.get_or_insert(pos + 2);
            pos = target;
            continue;
        }
        if len == 0 {
            return Some((name, end.unwrap_or(pos + 1)));
        }
        let label = packet.get(pos + 1..pos + 1 + len)?;
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(&String::from_utf8_lossy(label));
        pos += 1 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(name_bytes: &[u8], ip: [u8; 4], rtype: u8) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0];
        p.extend_from_slice(name_bytes);
        p.extend_from_slice(&[0, 1, 0, 1]);
        p.extend_from_slice(&[0xc0, 12]); // pointer to the question's name
        p.extend_from_slice(&[0, rtype, 0x80, 1, 0, 0, 0, 120, 0, 4]);
        p.extend_from_slice(&ip);
        p
    }

    #[test]
    fn builds_a_query() {
        let q = a_query(0x1234, "app1.local.").expect("query");
        assert_eq!(&q[..12], &[0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..], b"\x04app1\x05local\x00\x00\x01\x00\x01");
        assert!(a_query(1, "a..local").is_none());
    }

    #[test]
    fn reads_compressed_a_answers_matching_exactly() {
        let p = response(b"\x04App1\x05local\x00", [10, 1, 0, 5], 1);
        assert_eq!(
            a_answers(&p, "app1.local"),
            vec![Ipv4Addr::new(10, 1, 0, 5)]
        );
        assert_eq!(
            a_answers(&p, "APP1.local."),
            vec![Ipv4Addr::new(10, 1, 0, 5)]
        );
        assert!(
            a_answers(&p, "app1-2.local").is_empty(),
            "exact match, not a substring"
        );
        assert!(a_answers(&p, "app.local").is_empty());
        let aaaa = response(b"\x04app1\x05local\x00", [10, 1, 0, 5], 28);
        assert!(a_answers(&aaaa, "app1.local").is_empty());
    }

    #[test]
    fn survives_garbage() {
        for junk in [
            &b""[..],
            b"\x00\x00\x84",
            &[0xff; 40],
            b"\x00\x00\x84\x00\x00\x01\x00\x05\x00\x00\x00\x00\xc0\x0c",
        ] {
            assert!(a_answers(junk, "x.local").is_empty());
        }
    }
}
