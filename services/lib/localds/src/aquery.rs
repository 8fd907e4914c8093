//! The direct method: an mDNS A query for the host on one bridge, as a legacy unicast
//! query (RFC 6762 §6.7): from the bridge's address and an ephemeral port, to
//! 224.0.0.251:5353; responders answer by unicast at once (avahi in well under 1 ms).
//!
//! A response counts only if (audit finding 10):
//! - it arrived on this bridge: the socket is bound to the bridge device
//!   (SO_BINDTODEVICE, socket(7); no capability needed since Linux 5.7);
//! - it repeats the query's id, random per query. A response to a legacy unicast query
//!   MUST repeat it (§6.7, which avahi does); multicast responses carry id 0 (§18.1), so
//!   the browse methods can't check one. Apps on the bridge see the multicast query and
//!   its id: the check stops stray, late and off-link responses, not an app on the link;
//! - it came from port 5353 (§6: responses from any other port are ignored) and from
//!   the address it answers with: an app answers for itself, never for another address;
//! - that address passes `accept` (a host address of the bridge's subnet other than the
//!   bridge's own: see `resolve::is_app_address`).
//!
//! Every distinct address so answered is reported, until the give-up time: the resolver
//! may have set the first one aside (it failed an earlier download) and wait for another.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const MDNS_PORT: u16 = 5353;
const MDNS: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 251), MDNS_PORT);
/// When to (re)send, from the start: a responder still probing its name answers later.
const SENDS_MS: [u64; 4] = [0, 250, 750, 1500];
/// With no more answers by then, this method is finished on this bridge.
pub const GIVE_UP: Duration = Duration::from_millis(2000);

/// Asks for `host` on `bridge` (whose address is `bridge_ip`) until the give-up time,
/// `deadline` or `stop`. Calls `found` once per distinct address answered that `accept`
/// likes; `found` returning false ends the query (nobody is listening any more).
pub fn query(
    host: &str,
    bridge: &str,
    bridge_ip: Ipv4Addr,
    deadline: Instant,
    stop: &AtomicBool,
    accept: impl Fn(Ipv4Addr) -> bool,
    mut found: impl FnMut(Ipv4Addr) -> bool,
) -> Result<(), String> {
    let socket = UdpSocket::bind(SocketAddrV4::new(bridge_ip, 0))
        .map_err(|e| format!("bind {bridge_ip}: {e}"))?;
    bind_to_device(&socket, bridge).map_err(|e| format!("bind to device {bridge}: {e}"))?;
    set_multicast_if(&socket, bridge_ip)
        .map_err(|e| format!("multicast interface {bridge_ip}: {e}"))?;
    socket
        .set_multicast_loop_v4(false)
        .map_err(|e| format!("multicast loop: {e}"))?;
    let id = random_id();
    let packet = crate::dns::a_query(id, host)
        .ok_or_else(|| format!("{host:?} is not a valid host name"))?;
    let start = Instant::now();
    let give_up = deadline.min(start + GIVE_UP);
    let mut sends = SENDS_MS
        .iter()
        .map(|ms| start + Duration::from_millis(*ms))
        .peekable();
    let mut reported: Vec<Ipv4Addr> = Vec::new();
    let mut buf = [0u8; 9000];
    loop {
        let now = Instant::now();
        if now >= give_up || stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        while sends.peek().is_some_and(|t| *t <= now) {
            sends.next();
            socket
                .send_to(&packet, MDNS)
                .map_err(|e| format!("send on {bridge_ip}: {e}"))?;
        }
        let next = sends.peek().copied().unwrap_or(give_up).min(give_up);
        let wait = next
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        socket
            .set_read_timeout(Some(wait))
            .map_err(|e| format!("{e}"))?;
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                for ip in answered(&buf[..n], from, id, host) {
                    if accept(ip) && !reported.contains(&ip) {
                        reported.push(ip);
                        if !found(ip) {
                            return Ok(());
                        }
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(format!("receive on {bridge_ip}: {e}")),
        }
    }
}

/// The addresses a response from `from` gives for `host`, keeping only what its sender
/// may say: the response to query `id`, from port 5353, and only the sender's own
/// address. Pure, for the tests.
pub fn answered(packet: &[u8], from: SocketAddr, id: u16, host: &str) -> Vec<Ipv4Addr> {
    let SocketAddr::V4(from) = from else {
        return Vec::new();
    };
    if from.port() != MDNS_PORT || crate::dns::id(packet) != Some(id) {
        return Vec::new();
    }
    crate::dns::a_answers(packet, host)
        .into_iter()
        .filter(|ip| ip == from.ip())
        .collect()
}

/// A query id from the kernel's random source (getrandom(2)); the clock if that fails.
fn random_id() -> u16 {
    let mut bytes = [0u8; 2];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer we own.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n == 2 {
        return u16::from_ne_bytes(bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ (nanos >> 16)) as u16 ^ std::process::id() as u16
}

/// SO_BINDTODEVICE: only packets that arrived on `device` reach the socket, and what it
/// sends leaves by it (socket(7)).
fn bind_to_device(socket: &UdpSocket, device: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt reads `device.len()` bytes of the name, a live &str we own; the
    // kernel takes the name without a terminating NUL when the length is given.
    let ret = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            device.as_ptr().cast(),
            device.len() as libc::socklen_t,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// IP_MULTICAST_IF: the query leaves by this bridge (ip(7)).
fn set_multicast_if(socket: &UdpSocket, ip: Ipv4Addr) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let addr = libc::in_addr {
        s_addr: u32::from(ip).to_be(),
    };
    // SAFETY: setsockopt reads `addr` (a plain in_addr we own) for its stated length.
    let ret = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&addr as *const libc::in_addr).cast(),
            std::mem::size_of::<libc::in_addr>() as libc::socklen_t,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response with `id` holding one A record `host` → `ip`.
    fn response(id: u16, ip: [u8; 4]) -> Vec<u8> {
        let mut p = id.to_be_bytes().to_vec();
        p.extend_from_slice(&[0x84, 0x00, 0, 0, 0, 1, 0, 0, 0, 0]);
        p.extend_from_slice(b"\x05dsapp\x05local\x00");
        p.extend_from_slice(&[0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4]);
        p.extend_from_slice(&ip);
        p
    }

    fn from(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((ip, port))
    }

    #[test]
    fn an_app_answers_for_itself_from_port_5353_with_the_query_id() {
        let p = response(0x1234, [10, 1, 0, 5]);
        assert_eq!(
            answered(&p, from([10, 1, 0, 5], 5353), 0x1234, "dsapp.local"),
            vec![Ipv4Addr::new(10, 1, 0, 5)]
        );
        // Another sender naming that address: someone answering for another.
        assert!(answered(&p, from([10, 1, 0, 7], 5353), 0x1234, "dsapp.local").is_empty());
        // Not the query's id (a stray, late or blind answer; multicast responses: 0).
        assert!(answered(&p, from([10, 1, 0, 5], 5353), 0x4321, "dsapp.local").is_empty());
        let multicast = response(0, [10, 1, 0, 5]);
        assert!(answered(&multicast, from([10, 1, 0, 5], 5353), 0x1234, "dsapp.local").is_empty());
        // Not from the mDNS port.
        assert!(answered(&p, from([10, 1, 0, 5], 40000), 0x1234, "dsapp.local").is_empty());
        // Another name.
        assert!(answered(&p, from([10, 1, 0, 5], 5353), 0x1234, "other.local").is_empty());
    }

    #[test]
    fn ids_vary() {
        let ids: Vec<u16> = (0..16).map(|_| random_id()).collect();
        assert!(ids.windows(2).any(|w| w[0] != w[1]), "{ids:?}");
    }
}
