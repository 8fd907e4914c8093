//! The direct method: an mDNS A query for the host on one bridge, as a legacy unicast
//! query (RFC 6762 §6.7): from the bridge's address and an ephemeral port, to
//! 224.0.0.251:5353; responders answer by unicast at once (avahi in well under 1 ms).

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

const MDNS: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 251), 5353);
/// When to (re)send, from the start: a responder still probing its name answers later.
const SENDS_MS: [u64; 4] = [0, 250, 750, 1500];
/// With no answer by then, this method is finished on this bridge.
pub const GIVE_UP: Duration = Duration::from_millis(2000);

/// Asks for `host` on the bridge whose address is `bridge_ip`; returns the first IPv4
/// answer that `accept` likes (in the bridge's subnet), or None by `deadline`.
pub fn query(
    host: &str,
    bridge_ip: Ipv4Addr,
    deadline: Instant,
    accept: impl Fn(Ipv4Addr) -> bool,
) -> Result<Option<Ipv4Addr>, String> {
    let socket = UdpSocket::bind(SocketAddrV4::new(bridge_ip, 0))
        .map_err(|e| format!("bind {bridge_ip}: {e}"))?;
    set_multicast_if(&socket, bridge_ip)
        .map_err(|e| format!("multicast interface {bridge_ip}: {e}"))?;
    socket
        .set_multicast_loop_v4(false)
        .map_err(|e| format!("multicast loop: {e}"))?;
    let id = (std::process::id() as u16) ^ (Instant::now().elapsed().subsec_nanos() as u16);
    let packet = crate::dns::a_query(id, host)
        .ok_or_else(|| format!("{host:?} is not a valid host name"))?;
    let start = Instant::now();
    let give_up = deadline.min(start + GIVE_UP);
    let mut sends = SENDS_MS
        .iter()
        .map(|ms| start + Duration::from_millis(*ms))
        .peekable();
    let mut buf = [0u8; 9000];
    loop {
        let now = Instant::now();
        if now >= give_up {
            return Ok(None);
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
            Ok((n, _from)) => {
                if let Some(ip) = crate::dns::a_answers(&buf[..n], host)
                    .into_iter()
                    .find(|ip| accept(*ip))
                {
                    return Ok(Some(ip));
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
