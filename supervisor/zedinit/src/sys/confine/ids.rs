//! Who the service runs as: its groups, gid and uid, in that order (setgroups and
//! setresgid need CAP_SETGID, which setresuid to a non-root uid clears).
//!
//! Raw syscalls, not glibc's wrappers, which hang in a cloned child (see
//! `sys/launch.rs` `raw`, behind [`LinuxSys`](super::sys::LinuxSys)).

use super::plan::Creds;
use super::step::{At, SpawnError, Step};
use super::sys::Sys;

pub fn set_ids<S: Sys>(sys: &S, creds: &Creds) -> Result<(), SpawnError> {
    let ids = &creds.ids;
    sys.setgroups(&ids.groups).at(Step::SetIds)?;
    sys.setresgid(ids.gid, ids.gid, ids.gid).at(Step::SetIds)?;
    sys.setresuid(ids.uid, ids.uid, ids.uid).at(Step::SetIds)
}
