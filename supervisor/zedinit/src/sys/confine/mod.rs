//! Applying `[run]` in the child, between clone and exec (DESIGN.md "Applying a
//! definition"): the ordered list of steps. Everything is resolved and allocated before
//! clone (`plan`: [`prepare`], [`prepare_join`]); the child only makes syscalls,
//! through `Sys` (`LinuxSys` in zedinit, a recording fake in the tests, which check
//! this order and the arguments without root).
//!
//! - [`own`]: a service's own confinement. Its mount namespace and new root (a
//!   **non-recursive** bind of the image root, so the container's own binds — /hostfs,
//!   /config, /run — are not inherited; /proc; a small /dev with null, zero, full,
//!   random, urandom, tty, pts and only the declared devices; a private /run; the
//!   declared binds and the notify socket; `mkdir`s; read-only remount if `readonly`;
//!   `pivot_root`), `net = "none"`, then `credentials`.
//! - [`join`]: a readiness probe enters its running service's mount and network
//!   namespaces and takes its `credentials`, so it never has more than the service.
//! - `credentials`: rlimits, oom_score_adj; still uid 0, the bounding set dropped to
//!   the declared capabilities, PR_SET_KEEPCAPS; setgroups → setresgid → setresuid;
//!   capset (permitted = effective = inheritable = declared); ambient; no_new_privs; cwd.
//!
//! One file per concern: `mounts`, `namespaces`, `limits`, `caps`, `ids`;
//! `step` names the steps. A failing step stops the list and comes back as a
//! [`SpawnError`] (its [`Step`] and errno), which the child reports across exec: it
//! never execs with more than it declared.

mod caps;
mod ids;
mod limits;
mod mounts;
mod namespaces;
mod plan;
mod step;
mod sys;
#[cfg(test)]
mod tests;

pub use plan::{Ids, Join, Plan, ids, prepare, prepare_join};
pub use step::{SpawnError, Step};

use plan::Creds;
use sys::{LinuxSys, Sys};

/// A service's own confinement, in order.
pub fn own<S: Sys>(sys: &S, plan: &Plan) -> Result<(), SpawnError> {
    // First: every mount below is then made in the service's namespace, not zedinit's.
    mounts::unshare_mount_ns(sys)?;
    // Before any mount: mounts made under a shared parent would propagate back out.
    mounts::make_private(sys)?;
    // Non-recursive: the container's own binds (/hostfs, /config, /run) stay out.
    mounts::bind_image_root(sys, plan)?;
    // Held while the root is furnished: bind and mkdir paths resolve beneath this fd.
    let root = mounts::open_root(sys, plan)?;
    mounts::mount_proc(sys, plan)?;
    mounts::mount_dev(sys, plan)?;
    // Into the fresh /dev tmpfs, which must be mounted first.
    mounts::populate_dev(sys, plan)?;
    mounts::mount_pts(sys, plan)?;
    mounts::mount_run(sys, plan)?;
    // After /run and /dev: a bind into them (the notify socket in /run) lands on their
    // fresh tmpfs, not under it.
    for b in &plan.binds {
        mounts::bind(sys, &root, b)?;
    }
    // After the binds: a declared directory may live in a bound one (/persist/dl/tmp).
    for m in &plan.mkdirs {
        mounts::mkdir(sys, &root, m)?;
    }
    // Last of the mounts: the mkdirs above still write into the root; the mounts on it
    // are their own and keep their flags.
    if plan.readonly {
        mounts::remount_root_readonly(sys, plan)?;
    }
    // Not needed past the mounts (it is CLOEXEC anyway).
    drop(root);
    // After everything is mounted beneath the new root: the old one is then detached.
    mounts::pivot_root(sys, plan)?;
    // While CAP_SYS_ADMIN is still held (the credentials drop it).
    if plan.net_none {
        namespaces::unshare_net(sys)?;
    }
    credentials(sys, &plan.creds)
}

/// A readiness probe's way into its service, in order.
pub fn join<S: Sys>(sys: &S, join: &Join) -> Result<(), SpawnError> {
    // setns needs CAP_SYS_ADMIN: before the credentials drop it.
    namespaces::enter(sys, join)?;
    credentials(sys, &join.creds)
}

/// The credential steps, shared by a service and its probes, in order.
fn credentials<S: Sys>(sys: &S, creds: &Creds) -> Result<(), SpawnError> {
    // While root: raising a hard limit needs CAP_SYS_RESOURCE, which the uid change drops.
    limits::rlimits(sys, creds)?;
    // While root: lowering it needs CAP_SYS_RESOURCE too.
    limits::oom_score_adj(sys, creds)?;
    // Bounding set before setresuid: after it we no longer hold CAP_SETPCAP.
    caps::drop_bounding(sys, creds)?;
    // Before setresuid, which clears the permitted set unless told to keep it.
    caps::keep_caps(sys)?;
    // Groups and gid before the uid: both need CAP_SETGID, which setresuid clears.
    ids::set_ids(sys, creds)?;
    // capset after setresuid: the uid change cleared the effective set.
    caps::set_caps(sys, creds)?;
    // Ambient last: the uid change cleared it, and a raise needs the capability in the
    // permitted and inheritable sets capset just set.
    caps::raise_ambient(sys, creds)?;
    // It only governs what exec grants: any place before exec would do.
    caps::no_new_privs(sys, creds)?;
    // As the service's uid: a cwd it cannot enter fails here, as it would for it.
    mounts::cwd(sys, creds)
}

impl Plan {
    /// Runs in the cloned child: syscalls only, nothing allocated.
    pub fn apply(&self) -> Result<(), SpawnError> {
        own(&LinuxSys, self)
    }
}

impl Join {
    /// Runs in the cloned child: syscalls only, nothing allocated.
    pub fn apply(&self) -> Result<(), SpawnError> {
        join(&LinuxSys, self)
    }
}
