//! The HTTP client for one attempt: pinned to the resolved endpoint, no proxy, only the
//! configured CA chain when there is one.

use crate::error::{DownloadError, chain};
use crate::resolve::Endpoint;
use reqwest::{Certificate, Client, Url};
use std::sync::Once;
use std::time::Duration;

static PROVIDER: Once = Once::new();

/// reqwest is built with `rustls-no-provider`: rustls needs a process-wide crypto
/// provider before the first TLS client is made. Ring: small, no cmake.
fn ensure_crypto_provider() {
    PROVIDER.call_once(|| {
        // Err means one is already installed (by a test harness, say): use that one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Parses a PEM bundle (one or more certificates) for [`build`].
pub fn parse_ca_chain(pem: &str) -> Result<Vec<Certificate>, DownloadError> {
    let certs = Certificate::from_pem_bundle(pem.as_bytes())
        .map_err(|e| DownloadError::CaChain(chain(&e)))?;
    if certs.is_empty() {
        return Err(DownloadError::CaChain("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// A client whose only route to `url`'s host is `endpoint`.
///
/// - `no_proxy()`: reqwest would otherwise read `http_proxy` (LAB-NOTES), and a device's
///   datastore traffic must go where the endpoint says.
/// - `resolve()`: connect to the endpoint's address while the URL keeps its name, so the
///   `Host` header, SNI and certificate checks see the configured host.
/// - `tls_certs_only()`: a configured chain replaces the system roots (the datastore
///   says whom to trust), as EVE's downloader does with a datastore's CA.
/// - `redirect(Policy::none())`: a 3xx comes back as it is and ends the attempt
///   ([`DownloadError::Redirect`]). Following it would leave the pinned endpoint for any
///   URL the server names, the device's own loopback services included (audit finding 5).
/// - `connect_timeout`: a connect that hangs is a stall too. Body stalls are timed by the
///   engine per chunk, with its own clear error.
pub fn build(
    url: &Url,
    endpoint: &Endpoint,
    ca_chain: Option<&[Certificate]>,
    stall_timeout: Duration,
) -> Result<Client, DownloadError> {
    ensure_crypto_provider();
    let mut builder = Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("zedctr-downloader/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(stall_timeout)
        // One connection per attempt: a retry must not reuse a half-dead one.
        .pool_max_idle_per_host(0)
        .local_address(endpoint.source);
    if let Some(url::Host::Domain(domain)) = url.host() {
        builder = builder.resolve(domain, endpoint.addr);
    }
    if let Some(certs) = ca_chain {
        builder = builder.tls_certs_only(certs.iter().cloned());
    }
    builder.build().map_err(|e| {
        DownloadError::Transport(format!("cannot build the HTTP client: {}", chain(&e)))
    })
}
