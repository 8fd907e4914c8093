//! What zedinit's integration tests share: the workspace harness (`tests/lab`: zedinit
//! as PID 1 of a namespace, waits, the skip policy) and the paths of this package's own
//! binaries.

#![allow(dead_code, unused_imports)]

pub use lab::zedinit::*;
pub use lab::{DEADLINE, require_root, wait_until};

pub const ZEDINIT: &str = env!("CARGO_BIN_EXE_zedinit");
pub const TESTKIT: &str = env!("CARGO_BIN_EXE_zedctr-testkit");

/// supctl is another package's binary: found (and under nextest built) by the harness.
pub fn supctl_bin() -> std::path::PathBuf {
    lab::bin("supctl")
}

/// Zombie children of `parent` right now.
pub fn zombies_of(parent: i32) -> Vec<i32> {
    zedinit::sys::proc::children_of(parent)
        .into_iter()
        .filter(|pid| zedinit::sys::proc::stat_of(*pid).is_some_and(|(state, _)| state == 'Z'))
        .collect()
}
