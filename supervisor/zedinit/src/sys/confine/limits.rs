//! The service's resource limits and its OOM score: set while the child is still root,
//! so a lowered limit never needs a capability it is about to lose.

use super::plan::Creds;
use super::step::{At, SpawnError, Step};
use super::sys::{Fd, Sys};

pub fn rlimits<S: Sys>(sys: &S, creds: &Creds) -> Result<(), SpawnError> {
    for (resource, limit) in &creds.rlimits {
        sys.setrlimit(*resource, limit).at(Step::Rlimits)?;
    }
    Ok(())
}

/// Writes `oomScoreAdj` to /proc/self/oom_score_adj (inherited across exec).
pub fn oom_score_adj<S: Sys>(sys: &S, creds: &Creds) -> Result<(), SpawnError> {
    let Some(value) = &creds.oom_value else {
        return Ok(());
    };
    let fd = sys
        .open(&creds.oom_path, libc::O_WRONLY | libc::O_CLOEXEC, 0)
        .at(Step::OomScoreAdj)?;
    let fd = Fd::new(sys, fd);
    let bytes = value.as_bytes();
    match sys.write(fd.raw(), bytes).at(Step::OomScoreAdj)? {
        // A short write to a /proc file: nothing was taken.
        n if n != bytes.len() => Err(libc::EIO).at(Step::OomScoreAdj),
        _ => Ok(()),
    }
}
