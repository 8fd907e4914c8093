//! zedinit's control protocol (DESIGN.md "Control protocol"): the requests and answers
//! on its control socket, the status report, and a blocking client. What supctl and the
//! services that talk to zedinit (dnsmasq-render, zedwatchdog) link, instead of PID 1's
//! library.

pub mod client;
pub mod protocol;
pub mod status;

/// Default location of the control socket (DESIGN.md "Control protocol").
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/zedctr/control.sock";
/// Environment variable naming the control socket for every binary that talks to zedinit.
pub const CONTROL_SOCKET_ENV: &str = "ZEDCTR_CONTROL_SOCKET";
