//! zedwatchdog: feeds the device's watchdog once per interval while zedinit answers
//! `health` within a deadline and says healthy, and every touch file registered the EVE
//! way is fresh and every registered pid alive; or, without zedinit (each service its
//! own container), while the services' heartbeat files are fresh. The decision is
//! `verdict::decide` (plain data); `observe` gathers its inputs, from the
//! registrations `registry` keeps (by inotify); `device` is the write and the driver's ioctls; `boot` and `record` keep
//! why the device last booted and why feeding stopped, in files that outlive a reset.

pub mod boot;
pub mod device;
pub mod observe;
pub mod record;
pub mod registry;
pub mod verdict;
