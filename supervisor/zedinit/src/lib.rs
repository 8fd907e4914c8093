//! zedinit: PID 1 and service supervisor (the library behind the `zedinit` binary; supctl
//! links it for `check` and `export`, which read definitions with zedinit's own parser).
//!
//! Layout, decide vs do:
//! - pure policy and data: [`spec`], [`parse`], [`graph`], [`policy`], [`rescan`], [`memory`],
//!   [`core`] (the state machine, driven through the narrow [`core::Executor`] trait);
//! - thin OS work: [`sys`] (reaping, spawning, signals, epoll), [`server`] (the control
//!   socket; its protocol is the `zedctr-proto` crate), [`event_loop`] (ties them together);
//! - [`escape`]: service-controlled text made safe for a terminal (console output, supctl);
//! - [`fuzzing`]: one entry point per fuzz target (`fuzz/`), replayed by the tests.

pub mod caps;
pub mod control;
pub mod core;
pub mod escape;
pub mod event_loop;
pub mod exit;
pub mod fuzzing;
pub mod graph;
pub mod log;
pub mod logs;
pub mod memory;
pub mod parse;
pub mod policy;
pub mod rescan;
pub mod server;
pub mod signals;
pub mod spec;
pub mod sys;

pub use zedctr_proto::{CONTROL_SOCKET_ENV, DEFAULT_CONTROL_SOCKET};

/// Where service logs go unless `--log-dir` says otherwise.
pub const DEFAULT_LOG_DIR: &str = "/var/log/zedctr";
/// Definition directories read when no `--services-dir` is given: static ones from the
/// image, then generated ones (dnsmasq-render writes there).
pub const DEFAULT_SERVICES_DIRS: [&str; 2] = ["/etc/zedctr/services", "/run/zedctr/services"];
