//! The downloader: verified, resumable HTTP(S) downloads for EVE's image store.
//!
//! Two front ends share one engine ([`engine::download`]):
//! - `downloader serve` ([`serve`]): requests are files in a watched directory, progress
//!   and results are status files, verified files land at `<download-dir>/<sha256>`;
//! - `downloader fetch` ([`fetch`]): one URL for a person at a terminal.
//!
//! The invariant everything here keeps: a file reaches its final name only after its
//! sha256 matched and it was fsynced (file, then directory); until then it is a `.part`
//! next to it, which a restart resumes from.

pub mod backoff;
pub mod client;
pub mod engine;
pub mod error;
pub mod fetch;
pub mod fuzzing;
pub mod heap;
pub mod heartbeat;
pub mod part;
mod pipeline;
pub mod request;
pub mod resolve;
pub mod serve;
pub mod status;
pub mod watch;
