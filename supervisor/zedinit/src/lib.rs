//! zedinit: PID 1 and service supervisor (the library behind the `zedinit` binary; supctl
//! links it for `check` and `export`, which read definitions with zedinit's own parser).
//!
//! Layout, decide vs do:
//! - pure policy and data: [`spec`], [`parse`], [`graph`], [`policy`], [`rescan`], [`codepages`],
//!   [`core`] (the state machine, driven through the narrow [`core::Executor`] trait), [`verbs`] (what each control verb does);
//! - thin OS work: [`sys`] (reaping, spawning, signals, epoll), [`server`] (the control
//!   socket; its protocol is the `zedctr-proto` crate), [`event_loop`] (ties them together);
//! - [`escape`]: service-controlled text made safe for a terminal (console output, supctl);
//! - [`fuzzing`]: one entry point per fuzz target (`fuzz/`), replayed by the tests.

pub mod caps;
pub mod codepages;
pub mod core;
pub mod escape;
pub mod event_loop;
pub mod exit;
pub mod fuzzing;
pub mod graph;
pub mod log;
pub mod output;
pub mod parse;
pub mod policy;
pub mod rescan;
pub mod server;
pub mod signal_names;
pub mod spec;
pub mod sys;
pub mod token;
pub mod verbs;

pub use zedctr_proto::{CONTROL_SOCKET_ENV, DEFAULT_CONTROL_SOCKET};

/// Where service logs go unless `--log-dir` says otherwise.
pub const DEFAULT_LOG_DIR: &str = "/var/log/zedctr";
/// Definition directories read when no `--services-dir` is given: static ones from the
/// image, then generated ones (dnsmasq-render writes there).
pub const DEFAULT_SERVICES_DIRS: [&str; 2] = ["/etc/zedctr/services", "/run/zedctr/services"];
