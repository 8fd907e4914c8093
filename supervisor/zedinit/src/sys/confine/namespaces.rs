//! Namespaces other than the mount namespace (which [`mounts`](super::mounts) makes):
//! a new, empty network namespace for `net = "none"`, and a probe's way into its
//! service's namespaces. Both need CAP_SYS_ADMIN, so they come before the credentials.
//!
//! `pid = "new"` is not applied here: the child is cloned into its pid namespace
//! (`CLONE_NEWPID`, `sys/launch.rs`), since unshare(2) would move only its children.

use super::plan::Join;
use super::step::{At, SpawnError, Step};
use super::sys::Sys;
use std::os::fd::AsRawFd;

pub fn unshare_net<S: Sys>(sys: &S) -> Result<(), SpawnError> {
    sys.unshare(libc::CLONE_NEWNET).at(Step::UnshareNet)
}

/// Into the running service's mount namespace (if the probe runs a program from the
/// service's root) and network namespace.
pub fn enter<S: Sys>(sys: &S, join: &Join) -> Result<(), SpawnError> {
    if let Some(mnt) = &join.mnt {
        sys.setns(mnt.as_raw_fd(), libc::CLONE_NEWNS)
            .at(Step::EnterNamespaces)?;
        // The probe starts at the service's root, whatever its cwd was in zedinit's.
        sys.chdir(c"/").at(Step::EnterNamespaces)?;
    }
    sys.setns(join.net.as_raw_fd(), libc::CLONE_NEWNET)
        .at(Step::EnterNamespaces)
}
