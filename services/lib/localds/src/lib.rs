//! The `.local` datastore (seeds/local-datastore-zeroconf.md): a download URL whose host
//! ends in `.local` names an app on the device, found by mDNS on the network-instance
//! bridges only. See docs/local-datastore.md for the app side.

pub mod aquery;
pub mod browse;
pub mod choose;
pub mod confirm;
pub mod dns;
pub mod fuzzing;
pub mod resolve;

pub use choose::{Method, Why};
pub use confirm::Confirmed;
pub use resolve::{Candidate, Found, NotFound, Options, is_local, resolve};
