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

/// Runs `sh -c SCRIPT ARGS...` as PID 1 of a new pid namespace (`unshare --pid --fork
/// --mount-proc --kill-child`), for tests where zedinit is not that PID 1 but a
/// subreaper under it. Returns unshare's process and the shell's pid as seen from here.
pub fn shell_in_new_pid_namespace<I, S>(script: &str, args: I) -> (std::process::Child, i32)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let unshare = in_new_pid_namespace(None)
        .args(["sh", "-c", script])
        .args(args)
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("unshare");
    let id = unshare.id() as i32;
    let mut shell = None;
    wait_until("the namespace's shell", || {
        shell = zedinit::sys::proc::children_of(id).into_iter().next();
        shell.is_some()
    });
    (unshare, shell.expect("shell"))
}

/// Writes a probe service `name` with the given extra probe args and [run] body, its
/// report going to `<lab>/out/<name>.json` (bound at /run/out).
pub fn probe_service(lab: &Lab, name: &str, probe_args: &str, run: &str) {
    let out = lab.path("out");
    std::fs::create_dir_all(&out).expect("out dir");
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    let bin = bin_dir();
    lab.write_service(
        name,
        &format!(
            "command = [\"{TESTKIT}\", \"probe\", \"/run/out/{name}.json\"{probe_args}]\ntype = \"oneshot\"\n[restart]\npolicy = \"never\"\n[run]\nbinds = [\"{bin}:{bin}:ro\", \"{}:/run/out\"{}]\n{run}",
            out.display(),
            extra_binds(run)
        ),
    );
}

/// Binds given in the test's run body as `# binds: "a:b", "c:d"` are appended.
pub fn extra_binds(run: &str) -> String {
    run.lines()
        .find_map(|l| l.strip_prefix("# binds: "))
        .map(|b| format!(", {b}"))
        .unwrap_or_default()
}

pub fn report(lab: &Lab, name: &str) -> serde_json::Value {
    lab.wait_state(name, "done");
    serde_json::from_str(&lab.read(&format!("out/{name}.json"))).expect("probe report")
}
