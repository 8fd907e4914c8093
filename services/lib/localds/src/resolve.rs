//! Resolving a `.local` datastore host on the network-instance bridges: every method
//! started together within one budget, the answer chosen by [`crate::choose::decide`].
//!
//! What an answer must be to count (audit finding 10): an address of an app on that
//! bridge ([`is_app_address`]: never the bridge's own, which would make the device
//! connect to itself), heard on that bridge; for the A query also from that very
//! address with the query's id (`aquery`). The network instance confirms an answer (a
//! lease, a reservation or a `hosts` entry naming the host at that address: `confirm`),
//! never an address merely leased to someone.

use crate::browse::{self, Heard as BrowseHeard};
use crate::choose::{Decision, Heard, Method, Why, decide, starts_settling};
use crate::confirm::{Confirmed, confirmation};
use netinst::NetworkInstance;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

pub const DEFAULT_BUDGET: Duration = Duration::from_secs(4);

/// How long the other bridges are waited for after a method's first usable answer, when
/// the network instance does not confirm it (`choose`). Responders answer the A query
/// at once (RFC 6762 §6: a unique record; avahi in well under 1 ms), so the window only
/// has to cover the other bridge's answer being late on a loaded machine: measured with
/// the same app name on two bridges (BENCHMARKS.md, "`.local` on several bridges"), the
/// second answer came 0.01 ms after the first (median), 0.8 ms (p90) and 7.8 ms at worst
/// in 30 lookups with both CPUs saturated; 50 ms is six times that worst case.
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(50);

/// A host ending in `.local` (any case, trailing dot or not) is a local datastore.
pub fn is_local(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h.ends_with(".local") && h.len() > ".local".len()
}

#[derive(Debug, Clone)]
pub struct Options {
    /// In preference order.
    pub methods: Vec<Method>,
    pub budget: Duration,
    /// After a method's first usable answer, how long the other bridges may still
    /// answer it (unless the instance confirms the answer: then none).
    pub settle: Duration,
    /// (bridge, address) pairs that failed this download before (refused connections,
    /// or served what failed it): used only if nothing else answers
    /// (`choose::Heard::set_aside`).
    pub set_aside: Vec<(String, Ipv4Addr)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            methods: Method::ALL.to_vec(),
            budget: DEFAULT_BUDGET,
            settle: DEFAULT_SETTLE,
            set_aside: Vec::new(),
        }
    }
}

/// Where the host was found: on which bridge, at which address, and our address there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Candidate {
    pub bridge: String,
    pub bridge_ip: Ipv4Addr,
    pub ip: Ipv4Addr,
    /// A lease names the host at this address (also in `confirmed`, kept for readers
    /// of the earlier output).
    pub leased: bool,
    /// What in the network instance confirms this address as the host, if anything.
    pub confirmed: Option<Confirmed>,
    /// When its answer came, in µs from the start of the lookup.
    pub answered_us: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Found {
    pub resolved_by: &'static str,
    /// Why it was taken when it was: every bridge heard, confirmed, or the settle window.
    pub taken: Why,
    /// Best first; the rest are for failover on a connect failure.
    pub candidates: Vec<Candidate>,
    pub warning: Option<String>,
    pub elapsed_ms: u64,
    /// The same in µs (a lookup on one bridge takes well under 1 ms).
    pub elapsed_us: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct NotFound {
    /// "method on bridge" for every pair tried.
    pub tried: Vec<String>,
    pub notes: Vec<String>,
    pub elapsed_ms: u64,
}

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not found by mDNS within {} ms; tried {}",
            self.elapsed_ms,
            self.tried.join(", ")
        )?;
        if !self.notes.is_empty() {
            write!(f, " ({})", self.notes.join("; "))?;
        }
        Ok(())
    }
}

/// Whether `ip` may be the answer on a bridge whose address is `net`: a host address of
/// its subnet (not the network or broadcast address) other than the bridge's own.
pub fn is_app_address(net: &netinst::Ipv4Net, ip: Ipv4Addr) -> bool {
    net.is_host(ip) && ip != net.addr
}

enum Msg {
    Answer(Method, usize, Ipv4Addr),
    Finished(Method, usize),
    Note(String),
}

/// Looks `host` up on the bridges of `instances` (network-instance order).
pub fn resolve(
    host: &str,
    instances: &[NetworkInstance],
    opts: &Options,
) -> Result<Found, NotFound> {
    let start = Instant::now();
    let deadline = start + opts.budget;
    let bridges: Vec<(String, netinst::Ipv4Net)> = instances
        .iter()
        .map(|i| (i.bridge.clone(), i.ipv4))
        .collect();
    let tried: Vec<String> = opts
        .methods
        .iter()
        .flat_map(|m| {
            bridges
                .iter()
                .map(move |(b, _)| format!("{} on {b}", m.name()))
        })
        .collect();
    let (tx, rx) = mpsc::channel::<Msg>();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    if opts.methods.contains(&Method::AQuery) {
        for (b, (name, net)) in bridges.iter().enumerate() {
            let (tx, host, net, name) = (tx.clone(), host.to_string(), *net, name.clone());
            let stop = stop.clone();
            workers.push(std::thread::spawn(move || {
                let result = crate::aquery::query(
                    &host,
                    &name,
                    net.addr,
                    deadline,
                    &stop,
                    |ip| is_app_address(&net, ip),
                    |ip| tx.send(Msg::Answer(Method::AQuery, b, ip)).is_ok(),
                );
                if let Err(e) = result {
                    let _ = tx.send(Msg::Note(format!("a-query on {name}: {e}")));
                }
                tx.send(Msg::Finished(Method::AQuery, b))
            }));
        }
    }
    let browsed: Vec<Method> = opts
        .methods
        .iter()
        .copied()
        .filter(|m| m.service_type().is_some())
        .collect();
    if !browsed.is_empty() && !bridges.is_empty() {
        let (btx, brx) = mpsc::channel::<BrowseHeard>();
        let (host, bridges2, stop2) = (host.to_string(), bridges.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            browse::browse(&host, &browsed, &bridges2, deadline, &stop2, &btx);
            Ok(())
        }));
        let tx2 = tx.clone();
        workers.push(std::thread::spawn(move || {
            for heard in brx {
                let msg = match heard {
                    BrowseHeard::Answer(m, b, ip) => Msg::Answer(m, b, ip),
                    BrowseHeard::Note(n) => Msg::Note(n),
                };
                if tx2.send(msg).is_err() {
                    break;
                }
            }
            Ok(())
        }));
    }
    drop(tx);
    let now_epoch = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let leases: Vec<netinst::Leases> = instances.iter().map(|i| i.read_leases()).collect();
    let confirmed_as = |b: usize, ip: Ipv4Addr| {
        confirmation(instances.get(b)?, leases.get(b)?, now_epoch, ip, host)
    };
    let confirmed = |b: usize, ip: Ipv4Addr| confirmed_as(b, ip).is_some();
    let mut heard = Heard {
        set_aside: opts
            .set_aside
            .iter()
            .filter_map(|(bridge, ip)| {
                let b = bridges.iter().position(|(name, _)| name == bridge)?;
                Some((b, *ip))
            })
            .collect(),
        ..Heard::default()
    };
    let mut notes = Vec::new();
    // When each method's settle window ends (`choose`), and when each answer came.
    let mut windows: Vec<(Method, Instant)> = Vec::new();
    let mut answered_at: Vec<(usize, Ipv4Addr, Instant)> = Vec::new();
    let decision = loop {
        let now = Instant::now();
        for (m, end) in &windows {
            if *end <= now && !heard.settled.contains(m) {
                heard.settled.push(*m);
            }
        }
        let decision = decide(&opts.methods, bridges.len(), &heard, confirmed);
        if decision != Decision::Wait {
            break decision;
        }
        // Until the next message, the end of a settle window, or the budget.
        let next = windows
            .iter()
            .map(|(_, end)| *end)
            .filter(|end| *end > now)
            .fold(deadline, Instant::min);
        let msg = rx.recv_timeout(next.saturating_duration_since(now));
        let now = Instant::now();
        match msg {
            Ok(Msg::Answer(m, b, ip)) => {
                if starts_settling(&heard, m, b, ip) {
                    windows.push((m, now + opts.settle));
                }
                if !answered_at
                    .iter()
                    .any(|(ab, aip, _)| (*ab, *aip) == (b, ip))
                {
                    answered_at.push((b, ip, now));
                }
                heard.answers.push((m, b, ip));
            }
            Ok(Msg::Finished(m, b)) => heard.finished.push((m, b)),
            Ok(Msg::Note(n)) => notes.push(n),
            // A settle window ended: looked at on the next turn.
            Err(mpsc::RecvTimeoutError::Timeout) if now < deadline => {}
            Err(_) => heard.out_of_time = true,
        }
    };
    stop.store(true, Ordering::Relaxed);
    // The A queries end by their own deadline; the browse stops at once. Don't wait for
    // them here: the answer is ready now.
    drop(workers);
    let elapsed = start.elapsed();
    let (elapsed_ms, elapsed_us) = (elapsed.as_millis() as u64, elapsed.as_micros() as u64);
    match decision {
        Decision::Take {
            method,
            candidates,
            why,
        } => {
            let candidates: Vec<Candidate> = candidates
                .into_iter()
                .map(|(b, ip)| {
                    let confirmed = confirmed_as(b, ip);
                    Candidate {
                        bridge: bridges[b].0.clone(),
                        bridge_ip: bridges[b].1.addr,
                        ip,
                        leased: confirmed == Some(Confirmed::Lease),
                        confirmed,
                        answered_us: answered_at
                            .iter()
                            .find(|(ab, aip, _)| (*ab, *aip) == (b, ip))
                            .map_or(0, |(_, _, t)| t.duration_since(start).as_micros() as u64),
                    }
                })
                .collect();
            let warning = (candidates.len() > 1).then(|| {
                let names: Vec<String> = candidates
                    .iter()
                    .map(|c| format!("{} ({})", c.bridge, c.ip))
                    .collect();
                format!(
                    "{host} answers on several bridges: {}; using {}",
                    names.join(", "),
                    candidates[0].bridge
                )
            });
            Ok(Found {
                resolved_by: method.name(),
                taken: why,
                candidates,
                warning,
                elapsed_ms,
                elapsed_us,
            })
        }
        _ => Err(NotFound {
            tried,
            notes,
            elapsed_ms,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_app_addresses_of_the_bridge_subnet_are_answers() {
        let net = netinst::Ipv4Net::parse("10.77.0.1/24").expect("net");
        let ip = |last| Ipv4Addr::new(10, 77, 0, last);
        assert!(is_app_address(&net, ip(5)));
        assert!(is_app_address(&net, ip(254)));
        assert!(!is_app_address(&net, ip(1)), "the bridge's own address");
        assert!(!is_app_address(&net, ip(0)), "the network address");
        assert!(!is_app_address(&net, ip(255)), "the broadcast address");
        assert!(!is_app_address(&net, Ipv4Addr::new(10, 78, 0, 5)));
        assert!(!is_app_address(&net, Ipv4Addr::LOCALHOST));
        // /31 (RFC 3021): both addresses are hosts; the bridge's is still not an answer.
        let p2p = netinst::Ipv4Net::parse("10.9.0.0/31").expect("net");
        assert!(is_app_address(&p2p, Ipv4Addr::new(10, 9, 0, 1)));
        assert!(!is_app_address(&p2p, Ipv4Addr::new(10, 9, 0, 0)));
    }
}
