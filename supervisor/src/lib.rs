//! zedctr's supervisor: the library behind `zedinit` (PID 1) and `supctl`.
//!
//! Layout, decide vs do:
//! - pure policy and data: [`spec`], [`parse`], [`graph`], [`policy`], [`rescan`], [`memory`],
//!   [`core`] (the state machine, driven through the narrow [`core::Executor`] trait),
//!   [`protocol`];
//! - thin OS work: [`sys`] (reaping, spawning, signals, epoll), [`server`] (the control
//!   socket), [`event_loop`] (ties them together), [`client`] (used by supctl and tests);
//! - [`escape`]: service-controlled text made safe for a terminal (supctl's output);
//! - [`export`]: `supctl export linuxkit` (build.yml's reader and the YAML writer);
//! - [`fuzzing`]: one entry point per fuzz target (`fuzz/`), replayed by the tests.

pub mod caps;
pub mod client;
pub mod control;
pub mod core;
pub mod durations;
pub mod escape;
pub mod event_loop;
pub mod exit;
pub mod export;
pub mod fuzzing;
pub mod graph;
pub mod log;
pub mod logs;
pub mod memory;
pub mod parse;
pub mod policy;
pub mod protocol;
pub mod rescan;
pub mod server;
pub mod signals;
pub mod spec;
pub mod status;
pub mod sys;

/// Default location of the control socket (DESIGN.md "Control protocol").
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/zedctr/control.sock";
/// Where service logs go unless `--log-dir` says otherwise.
pub const DEFAULT_LOG_DIR: &str = "/var/log/zedctr";
/// Environment variable naming the control socket for every binary that talks to zedinit.
pub const CONTROL_SOCKET_ENV: &str = "ZEDCTR_CONTROL_SOCKET";
/// Definition directories read when no `--services-dir` is given: static ones from the
/// image, then generated ones (dnsmasq-render writes there).
pub const DEFAULT_SERVICES_DIRS: [&str; 2] = ["/etc/zedctr/services", "/run/zedctr/services"];
