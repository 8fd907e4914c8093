//! logtail: follows `/var/log/*.log` (or any `DIR/GLOB`) across rotation and prints
//! each new line on the console as `FILE: line`, in place of init.sh's `tail -f`.
//! Decisions (what to follow, from where; how bytes become lines) are plain functions
//! in `plan` and `lines`; `entry` says which directory entries may be read and opens
//! them; `tailer` does the file and inotify work.

pub mod console;
pub mod copy;
pub mod entry;
pub mod fuzzing;
pub mod lines;
pub mod pattern;
pub mod plan;
pub mod state;
pub mod tailer;
