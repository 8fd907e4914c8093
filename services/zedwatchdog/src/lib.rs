//! zedwatchdog: feeds the device's watchdog once per interval while zedinit answers
//! `health` within a deadline and says healthy, and every touch file registered the EVE
//! way is fresh. The decision is `verdict::decide` (plain data); `observe` gathers its
//! inputs; `device` is the write.

pub mod device;
pub mod observe;
pub mod verdict;
