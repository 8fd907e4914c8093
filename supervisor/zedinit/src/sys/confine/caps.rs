//! The service's capabilities: the bounding set dropped to what it declared while the
//! child is still root, kept across the uid change (PR_SET_KEEPCAPS), set after it,
//! then raised into the ambient set; and no_new_privs.

use super::plan::Creds;
use super::step::{At, SpawnError, Step};
use super::sys::{CapSets, Sys};
use libc::c_ulong;

/// Drops every capability not declared from the bounding set, up to the highest this
/// kernel knows: exec can then never grant one (a setuid-root or file-capability
/// program included).
pub fn drop_bounding<S: Sys>(sys: &S, creds: &Creds) -> Result<(), SpawnError> {
    for cap in 0..=creds.last_cap {
        if creds.keep & (1 << cap) == 0 {
            sys.prctl(libc::PR_CAPBSET_DROP, c_ulong::from(cap), 0)
                .at(Step::DropBounding)?;
        }
    }
    Ok(())
}

/// Keeps the permitted set across setresuid (which otherwise clears it when no uid
/// is 0 any more).
pub fn keep_caps<S: Sys>(sys: &S) -> Result<(), SpawnError> {
    sys.prctl(libc::PR_SET_KEEPCAPS, 1, 0).at(Step::KeepCaps)
}

/// Permitted = effective = inheritable = declared (inheritable too: the ambient set
/// can only hold what is permitted and inheritable).
pub fn set_caps<S: Sys>(sys: &S, creds: &Creds) -> Result<(), SpawnError> {
    sys.capset(CapSets {
        effective: creds.keep,
        permitted: creds.keep,
        inheritable: creds.keep,
    })
    .at(Step::SetCaps)
}

/// The ambient set: what a non-root service's program gets as effective on exec.
pub fn raise_ambient<S: Sys>(sys: &S, creds: &Creds) -> Result<(), SpawnError> {
    for cap in &creds.ambient {
        sys.prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as c_ulong,
            c_ulong::from(*cap),
        )
        .at(Step::RaiseAmbient)?;
    }
    Ok(())
}

/// PR_SET_NO_NEW_PRIVS if declared: exec grants nothing (setuid bits, file
/// capabilities) from here on.
pub fn no_new_privs<S: Sys>(sys: &S, creds: &Creds) -> Result<(), SpawnError> {
    if !creds.no_new_privs {
        return Ok(());
    }
    sys.prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0)
        .at(Step::NoNewPrivileges)
}
