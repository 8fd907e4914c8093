//! Where to connect for a URL: the seam between "which address" and "fetch the bytes".
//!
//! The engine asks a [`Resolver`] for an [`Endpoint`] (the address to connect to and,
//! optionally, the source address to bind), then builds its client with reqwest's
//! `resolve()` override and `local_address()`: the URL itself is never rewritten, so the
//! `Host` header and TLS SNI/verification still use the configured name.
//!
//! Today there is one method, the system resolver (getaddrinfo: /etc/hosts, DNS). The
//! `.local` datastore (DESIGN.md "Downloader and the local datastore") adds a variant
//! that finds the host by mDNS on the network-instance bridges and fills `source`,
//! `bridge` and `resolved_by`; nothing else in the engine changes.

use crate::error::DownloadError;
use reqwest::Url;
use std::net::{IpAddr, SocketAddr};

/// The answer for one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The address the TCP connection goes to (port from the URL).
    pub addr: SocketAddr,
    /// The local address to bind before connecting (`None`: the kernel's route choice).
    pub source: Option<IpAddr>,
    /// The bridge the address was found on (`.local` only).
    pub bridge: Option<String>,
    /// How it was found (`.local` only: "a-query", "workstation", "http", "https").
    pub resolved_by: Option<String>,
    /// `.local` only: the URL's host becomes this address (only the host: scheme, port,
    /// path and query stay), so HTTPS verifies the app's IP in its subjectAltName.
    pub rewrite_host: Option<IpAddr>,
    /// Other bridges the host answered on, tried in order if this one can't connect.
    pub alternates: Vec<Endpoint>,
}

impl Endpoint {
    /// The URL to request from this endpoint.
    pub fn url_for(&self, url: &Url) -> Url {
        let mut u = url.clone();
        if let Some(ip) = self.rewrite_host {
            let _ = u.set_ip_host(ip);
        }
        u
    }
}

/// Where `.local` hosts are looked up: the network-instance bridges, by mDNS.
#[derive(Debug, Clone)]
pub struct LocalDatastore {
    pub instances_dir: std::path::PathBuf,
    pub options: localds::Options,
}

/// How host names become endpoints.
#[derive(Debug, Clone, Default)]
pub enum Resolver {
    /// getaddrinfo through tokio's blocking pool: /etc/hosts, then DNS.
    #[default]
    System,
    /// The system resolver, except for `.local` hosts: local datastores, by mDNS.
    WithLocal(LocalDatastore),
}

/// `.local` endpoints of this download that refused connections, or answered with
/// something that failed it (a wrong hash, a refused status, a redirect...: an app may
/// have answered for a name not its own). A retry's lookup prefers any other answer, on
/// this bridge or another, and comes back to these only when nothing else answers
/// (DESIGN.md: fail over, and re-resolve on failure).
#[derive(Debug, Clone, Default)]
pub struct SetAside(Vec<(String, std::net::Ipv4Addr)>);

impl SetAside {
    /// Sets `endpoint` aside (only `.local` endpoints, found on a bridge, count).
    pub fn add(&mut self, endpoint: &Endpoint) {
        if let (Some(bridge), IpAddr::V4(ip)) = (&endpoint.bridge, endpoint.addr.ip()) {
            let key = (bridge.clone(), ip);
            if !self.0.contains(&key) {
                self.0.push(key);
            }
        }
    }
}

impl Resolver {
    /// Resolves the URL's host. An IP literal is its own answer. `set_aside`: endpoints
    /// that failed earlier attempts.
    pub async fn resolve(
        &self,
        url: &Url,
        set_aside: &SetAside,
    ) -> Result<Endpoint, DownloadError> {
        let port = url
            .port_or_known_default()
            .ok_or_else(|| DownloadError::Protocol(format!("{url}: no port for this scheme")))?;
        let host = match url.host() {
            Some(url::Host::Ipv4(ip)) => return Ok(direct(SocketAddr::new(ip.into(), port))),
            Some(url::Host::Ipv6(ip)) => return Ok(direct(SocketAddr::new(ip.into(), port))),
            Some(url::Host::Domain(d)) => d.to_string(),
            None => return Err(DownloadError::Protocol(format!("{url}: no host"))),
        };
        match self {
            Resolver::WithLocal(local) if localds::is_local(&host) => {
                resolve_local(local, &host, port, set_aside).await
            }
            Resolver::System | Resolver::WithLocal(_) => {
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|e| DownloadError::Resolve {
                        host: host.clone(),
                        message: e.to_string(),
                    })?
                    .collect();
                // IPv4 first: EVE's bridges and most datastores are IPv4, and one address
                // per attempt keeps the reported endpoint the one actually used.
                let addr = addrs
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or(addrs.first())
                    .copied()
                    .ok_or_else(|| DownloadError::Resolve {
                        host: host.clone(),
                        message: "no addresses".into(),
                    })?;
                Ok(direct(addr))
            }
        }
    }
}

fn direct(addr: SocketAddr) -> Endpoint {
    Endpoint {
        addr,
        source: None,
        bridge: None,
        resolved_by: None,
        rewrite_host: None,
        alternates: Vec::new(),
    }
}

/// A `.local` host: every method on every network-instance bridge (re-read each time:
/// instances come and go, and the app's address changes on reload, so a failed
/// connect's retry resolves afresh).
async fn resolve_local(
    local: &LocalDatastore,
    host: &str,
    port: u16,
    set_aside: &SetAside,
) -> Result<Endpoint, DownloadError> {
    let (dir, mut options, name) = (
        local.instances_dir.clone(),
        local.options.clone(),
        host.to_string(),
    );
    options.set_aside = set_aside.0.clone();
    let found = tokio::task::spawn_blocking(move || {
        let loaded = netinst::load_dir(&dir);
        if loaded.instances.is_empty() {
            let why = loaded
                .errors
                .first()
                .map(|e| e.to_string())
                .unwrap_or_else(|| format!("no network instance in {}", dir.display()));
            return Err(why);
        }
        localds::resolve(&name, &loaded.instances, &options).map_err(|nf| nf.to_string())
    })
    .await
    .map_err(|e| DownloadError::Resolve {
        host: host.to_string(),
        message: e.to_string(),
    })?
    .map_err(|message| DownloadError::Resolve {
        host: host.to_string(),
        message,
    })?;
    if let Some(warning) = &found.warning {
        tracing::warn!("{warning}");
    }
    let mut endpoints = found.candidates.iter().map(|c| Endpoint {
        addr: SocketAddr::new(c.ip.into(), port),
        // Our address on that bridge: the app has only an on-link route back.
        source: Some(c.bridge_ip.into()),
        bridge: Some(c.bridge.clone()),
        resolved_by: Some(found.resolved_by.to_string()),
        rewrite_host: Some(c.ip.into()),
        alternates: Vec::new(),
    });
    let mut first = endpoints.next().ok_or_else(|| DownloadError::Resolve {
        host: host.to_string(),
        message: "no candidate".into(),
    })?;
    first.alternates = endpoints.collect();
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_need_no_lookup() {
        let url = Url::parse("http://10.1.2.3:8080/x").expect("url");
        let ep = Resolver::System
            .resolve(&url, &SetAside::default())
            .await
            .expect("resolve");
        assert_eq!(ep.addr, "10.1.2.3:8080".parse().expect("addr"));
        let url = Url::parse("https://[fd00::1]/x").expect("url");
        let ep = Resolver::System
            .resolve(&url, &SetAside::default())
            .await
            .expect("resolve");
        assert_eq!(ep.addr, "[fd00::1]:443".parse().expect("addr"));
    }

    #[tokio::test]
    async fn localhost_resolves_through_the_system() {
        let url = Url::parse("http://localhost:9/x").expect("url");
        let ep = Resolver::System
            .resolve(&url, &SetAside::default())
            .await
            .expect("resolve");
        assert!(ep.addr.ip().is_loopback());
        assert_eq!(ep.addr.port(), 9);
    }
}
