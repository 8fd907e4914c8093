//! Resolving a `.local` datastore host on the network-instance bridges: every method
//! started together within one budget, the answer chosen by [`crate::choose::decide`].

use crate::browse::{self, Heard as BrowseHeard};
use crate::choose::{Decision, Heard, Method, decide};
use netinst::NetworkInstance;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

pub const DEFAULT_BUDGET: Duration = Duration::from_secs(4);

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
    /// (bridge, address) pairs that refused connections before (a retry after a connect
    /// failure): used only if no other bridge answers (`choose::Heard::refused`).
    pub refused: Vec<(String, Ipv4Addr)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            methods: Method::ALL.to_vec(),
            budget: DEFAULT_BUDGET,
            refused: Vec::new(),
        }
    }
}

/// Where the host was found: on which bridge, at which address, and our address there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Candidate {
    pub bridge: String,
    pub bridge_ip: Ipv4Addr,
    pub ip: Ipv4Addr,
    pub leased: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Found {
    pub resolved_by: &'static str,
    /// Best first; the rest are for failover on a connect failure.
    pub candidates: Vec<Candidate>,
    pub warning: Option<String>,
    pub elapsed_ms: u64,
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
            workers.push(std::thread::spawn(move || {
                match crate::aquery::query(&host, net.addr, deadline, |ip| net.contains(ip)) {
                    Ok(Some(ip)) => tx.send(Msg::Answer(Method::AQuery, b, ip)),
                    Ok(None) => tx.send(Msg::Finished(Method::AQuery, b)),
                    Err(e) => {
                        let _ = tx.send(Msg::Note(format!("a-query on {name}: {e}")));
                        tx.send(Msg::Finished(Method::AQuery, b))
                    }
                }
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
    let leased = |b: usize, ip: Ipv4Addr| leases.get(b).is_some_and(|l| l.holds(ip, now_epoch));
    let mut heard = Heard {
        refused: opts
            .refused
            .iter()
            .filter_map(|(bridge, ip)| {
                let b = bridges.iter().position(|(name, _)| name == bridge)?;
                Some((b, *ip))
            })
            .collect(),
        ..Heard::default()
    };
    let mut notes = Vec::new();
    let decision = loop {
        let decision = decide(&opts.methods, bridges.len(), &heard, leased);
        if decision != Decision::Wait {
            break decision;
        }
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Msg::Answer(m, b, ip)) => heard.answers.push((m, b, ip)),
            Ok(Msg::Finished(m, b)) => heard.finished.push((m, b)),
            Ok(Msg::Note(n)) => notes.push(n),
            Err(_) => heard.out_of_time = true,
        }
    };
    stop.store(true, Ordering::Relaxed);
    // The A queries end by their own deadline; the browse stops at once. Don't wait for
    // them here: the answer is ready now.
    drop(workers);
    let elapsed_ms = start.elapsed().as_millis() as u64;
    match decision {
        Decision::Take { method, candidates } => {
            let candidates: Vec<Candidate> = candidates
                .into_iter()
                .map(|(b, ip)| Candidate {
                    bridge: bridges[b].0.clone(),
                    bridge_ip: bridges[b].1.addr,
                    ip,
                    leased: leased(b, ip),
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
                candidates,
                warning,
                elapsed_ms,
            })
        }
        _ => Err(NotFound {
            tried,
            notes,
            elapsed_ms,
        }),
    }
}
