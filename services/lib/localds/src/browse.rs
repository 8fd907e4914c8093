//! The browse methods: DNS-SD browses of `_workstation._tcp`, `_http._tcp` and
//! `_https._tcp` with mdns-sd, on the bridges only and IPv4 only (LAB-NOTES: it uses
//! every interface, `lo` and IPv6 included, unless told otherwise; a daemon dropped
//! without `shutdown()` leaks its thread and sockets).

use crate::choose::Method;
use crate::dns::normalize;
use mdns_sd::{IfKind, ScopedIp, ServiceDaemon, ServiceEvent};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// What a browse reports to the resolver.
pub enum Heard {
    Answer(Method, usize, Ipv4Addr),
    Note(String),
}

/// Runs the browses of `methods` until `deadline` or `stop`, sending matching IPv4
/// answers (bridge index by the interface they came in on, an app address of that
/// bridge: `resolve::is_app_address`). Blocks; always shuts the daemon down.
///
/// Unlike the A query, a browse can't check who answered: multicast responses carry
/// id 0 (RFC 6762 §18.1) and mdns-sd merges records without telling their sender. The A
/// query comes first in the preference order, and whatever an answer leads to is
/// verified by its sha256 (the downloader sets an endpoint aside when it fails).
pub fn browse(
    host: &str,
    methods: &[Method],
    bridges: &[(String, netinst::Ipv4Net)],
    deadline: Instant,
    stop: &Arc<AtomicBool>,
    out: &Sender<Heard>,
) {
    let daemon = match ServiceDaemon::new() {
        Ok(d) => d,
        Err(e) => {
            let _ = out.send(Heard::Note(format!("mdns: {e}")));
            return;
        }
    };
    // Order matters: none, then the bridges, then no IPv6 on them.
    let _ = daemon.disable_interface(IfKind::All);
    for (name, _) in bridges {
        let _ = daemon.enable_interface(IfKind::Name(name.clone()));
    }
    let _ = daemon.disable_interface(IfKind::IPv6);
    let want = normalize(host);
    let mut receivers = Vec::new();
    for &m in methods {
        if let Some(ty) = m.service_type() {
            match daemon.browse(ty) {
                Ok(rx) => receivers.push((m, rx)),
                Err(e) => {
                    let _ = out.send(Heard::Note(format!("browse {ty}: {e}")));
                }
            }
        }
    }
    'outer: while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        for (method, rx) in &receivers {
            while let Ok(event) = rx.try_recv() {
                idle = false;
                let ServiceEvent::ServiceResolved(info) = event else {
                    continue;
                };
                if normalize(&info.host) != want {
                    continue;
                }
                for addr in &info.addresses {
                    // IPv6-only answers are skipped: keep listening for the IPv4 one.
                    let ScopedIp::V4(v4) = addr else { continue };
                    let ip = *v4.addr();
                    let via: Vec<&str> =
                        v4.interface_ids().iter().map(|i| i.name.as_str()).collect();
                    let bridge = bridges.iter().position(|(name, net)| {
                        crate::resolve::is_app_address(net, ip)
                            && (via.is_empty() || via.contains(&name.as_str()))
                    });
                    if let Some(b) = bridge {
                        if out.send(Heard::Answer(*method, b, ip)).is_err() {
                            break 'outer;
                        }
                    }
                }
            }
        }
        if idle {
            // The receivers have no blocking select; a short nap bounds the latency.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    if let Ok(done) = daemon.shutdown() {
        let _ = done.recv_timeout(Duration::from_secs(1));
    }
}
