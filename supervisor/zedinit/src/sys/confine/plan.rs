//! The plan, resolved in zedinit before clone: everything the child's steps need —
//! names looked up (/etc/passwd, /etc/group), paths made NUL-terminated and cut into
//! components, masks computed, buffers allocated — so the child only makes syscalls.
//!
//! [`prepare`] makes a service's [`Plan`], [`prepare_join`] a probe's [`Join`];
//! [`ids`] resolves the uid, gid and groups once per start (zedinit also needs them for
//! the service's heartbeat file).

use crate::spec::{IdRef, RunSpec};
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

/// The device nodes every service gets.
const BASE_DEVICES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// A path inside the new root, cut into what the child walks: for each component, the
/// path from the root up to and including it (relative, as openat2 wants) and its name.
/// Never empty: the root itself is refused.
pub(super) struct Beneath {
    pub(super) prefixes: Vec<CString>,
    pub(super) names: Vec<CString>,
}

impl Beneath {
    fn new(path: &Path) -> Result<Self, String> {
        let mut prefixes = Vec::new();
        let mut names = Vec::new();
        let mut so_far = PathBuf::new();
        for c in path.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(name) => {
                    so_far.push(name);
                    prefixes.push(cstr(&so_far)?);
                    names.push(cstr(name)?);
                }
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(format!(
                        "{}: `..` leaves the service's root",
                        path.display()
                    ));
                }
            }
        }
        if names.is_empty() {
            return Err(format!("{}: names the root itself", path.display()));
        }
        Ok(Beneath { prefixes, names })
    }
}

/// A declared bind (or a file zedinit made for the service).
pub(super) struct BindPlan {
    pub(super) src: CString,
    pub(super) dst: Beneath,
    pub(super) readonly: bool,
    /// The mount point to make is a directory (else an empty file).
    pub(super) is_dir: bool,
}

/// A `[run] mkdir`.
pub(super) struct MkdirPlan {
    pub(super) path: Beneath,
    pub(super) mode: u32,
    pub(super) owner: Option<(u32, u32)>,
}

/// Who a service runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    /// Its supplementary groups (`additionalGids`).
    pub groups: Vec<libc::gid_t>,
}

/// The credential steps, shared by a service and its probes.
pub(super) struct Creds {
    pub(super) rlimits: Vec<(i32, libc::rlimit)>,
    pub(super) oom_path: CString,
    pub(super) oom_value: Option<CString>,
    /// The declared capabilities (bit n: capability n).
    pub(super) keep: u64,
    /// The highest capability this kernel knows: the bounding set is dropped up to it.
    pub(super) last_cap: u8,
    pub(super) ids: Ids,
    pub(super) ambient: Vec<u8>,
    pub(super) no_new_privs: bool,
    pub(super) cwd: CString,
}

/// Everything a service's child needs, resolved before clone.
pub struct Plan {
    pub(super) root: CString,
    pub(super) proc_dir: CString,
    pub(super) dev_dir: CString,
    pub(super) pts_dir: CString,
    pub(super) ptmx: CString,
    pub(super) run_dir: CString,
    /// (device on the host, its mount point in the new /dev).
    pub(super) devices: Vec<(CString, CString)>,
    pub(super) binds: Vec<BindPlan>,
    pub(super) mkdirs: Vec<MkdirPlan>,
    pub(super) readonly: bool,
    pub(super) net_none: bool,
    pub(super) creds: Creds,
}

/// A probe's way into its running service: its namespaces and its credentials.
impl Plan {
    /// Whether the child writes `/proc/self/oom_score_adj`, which is per memory: such a
    /// child must not share zedinit's (`sys/launch.rs`).
    pub fn sets_oom_score(&self) -> bool {
        self.creds.oom_value.is_some()
    }
}

pub struct Join {
    /// `None`: stay in zedinit's mount namespace (a `tcp` probe runs zedinit's binary).
    pub(super) mnt: Option<OwnedFd>,
    pub(super) net: OwnedFd,
    pub(super) creds: Creds,
}

fn cstr(path: impl AsRef<Path>) -> Result<CString, String> {
    CString::new(path.as_ref().as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{}: path holds a NUL byte", path.as_ref().display()))
}

fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Looks a user up in /etc/passwd: (uid, primary gid).
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn lookup_group(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[0] == name).then(|| f[2].parse().ok())?
    })
}

fn group_id(id: &IdRef, key: &str) -> Result<u32, String> {
    match id {
        IdRef::Id(n) => Ok(*n),
        IdRef::Name(n) => lookup_group(n).ok_or(format!(
            "run.{key}: unknown group {n:?} (not in /etc/group)"
        )),
    }
}

fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Who a service runs as (names looked up in the image's files).
pub fn ids(run: &RunSpec) -> Result<Ids, String> {
    let (uid, user_gid) = match &run.uid {
        None => (0, 0),
        Some(IdRef::Id(n)) => (*n, *n),
        Some(IdRef::Name(n)) => {
            lookup_user(n).ok_or(format!("run.uid: unknown user {n:?} (not in /etc/passwd)"))?
        }
    };
    let gid = match &run.gid {
        None => user_gid,
        Some(g) => group_id(g, "gid")?,
    };
    let groups = run
        .additional_gids
        .iter()
        .map(|g| group_id(g, "additionalGids"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Ids { uid, gid, groups })
}

impl Creds {
    fn prepare(run: &RunSpec, ids: Ids) -> Result<Self, String> {
        let mut keep = 0u64;
        for c in &run.capabilities {
            keep |= 1 << c;
        }
        Ok(Creds {
            rlimits: run
                .rlimits
                .iter()
                .map(|r| {
                    (
                        r.resource,
                        libc::rlimit {
                            rlim_cur: r.soft,
                            rlim_max: r.hard,
                        },
                    )
                })
                .collect(),
            oom_path: cstr("/proc/self/oom_score_adj")?,
            oom_value: run
                .oom_score_adj
                .map(|v| CString::new(v.to_string()))
                .transpose()
                .map_err(|_| "oomScoreAdj")?,
            keep,
            last_cap: last_cap(),
            ids,
            ambient: run.ambient.clone(),
            no_new_privs: run.no_new_privileges,
            cwd: cstr(run.cwd.as_deref().unwrap_or(Path::new("/")))?,
        })
    }
}

fn owner_ids(owner: &(IdRef, Option<IdRef>)) -> Result<(u32, u32), String> {
    let (u, g) = owner;
    let (uid, pgid) = match u {
        IdRef::Id(n) => (*n, *n),
        IdRef::Name(n) => lookup_user(n).ok_or(format!("run.mkdir: unknown user {n:?}"))?,
    };
    let gid = match g {
        None => pgid,
        Some(g) => group_id(g, "mkdir")?,
    };
    Ok((uid, gid))
}

/// The device nodes a service gets: the base ones this host has, and the declared ones
/// (which must exist), each with its mount point under `root`.
fn devices(run: &RunSpec, root: &Path) -> Result<Vec<(CString, CString)>, String> {
    let mut devices = Vec::new();
    for dev in BASE_DEVICES
        .iter()
        .map(Path::new)
        .chain(run.devices.iter().map(PathBuf::as_path))
    {
        if !dev.exists() {
            if run.devices.iter().any(|d| d == dev) {
                return Err(format!("run.devices: {} does not exist", dev.display()));
            }
            continue;
        }
        devices.push((cstr(dev)?, cstr(under(root, dev))?));
    }
    Ok(devices)
}

/// The declared binds, then zedinit's own files for the service.
fn binds(run: &RunSpec, extra: &[(PathBuf, PathBuf)]) -> Result<Vec<BindPlan>, String> {
    let mut binds = Vec::new();
    for b in &run.binds {
        let meta = std::fs::metadata(&b.src)
            .map_err(|e| format!("run.binds: source {}: {e}", b.src.display()))?;
        binds.push(BindPlan {
            src: cstr(&b.src)?,
            dst: Beneath::new(&b.dst).map_err(|e| format!("run.binds: {e}"))?,
            readonly: b.readonly,
            is_dir: meta.is_dir(),
        });
    }
    for (src, dst) in extra {
        binds.push(BindPlan {
            src: cstr(src)?,
            dst: Beneath::new(dst)?,
            readonly: false,
            is_dir: false,
        });
    }
    Ok(binds)
}

fn mkdirs(run: &RunSpec) -> Result<Vec<MkdirPlan>, String> {
    run.mkdir
        .iter()
        .map(|m| {
            Ok(MkdirPlan {
                path: Beneath::new(&m.path).map_err(|e| format!("run.mkdir: {e}"))?,
                mode: m.mode,
                owner: m.owner.as_ref().map(owner_ids).transpose()?,
            })
        })
        .collect()
}

/// Resolves `run` for service `name`, run as `ids` (from [`ids`]): paths, masks,
/// devices. `roots` is where its new root mount point is made; `extra` are (source,
/// destination) files zedinit made for the service (its notify socket, its heartbeat
/// file) to keep reachable in its root.
pub fn prepare(
    name: &str,
    run: &RunSpec,
    ids: Ids,
    roots: &Path,
    extra: &[(PathBuf, PathBuf)],
) -> Result<Plan, String> {
    let root = roots.join(name);
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    Ok(Plan {
        proc_dir: cstr(root.join("proc"))?,
        dev_dir: cstr(root.join("dev"))?,
        pts_dir: cstr(root.join("dev/pts"))?,
        ptmx: cstr(root.join("dev/ptmx"))?,
        run_dir: cstr(root.join("run"))?,
        devices: devices(run, &root)?,
        root: cstr(&root)?,
        binds: binds(run, extra)?,
        mkdirs: mkdirs(run)?,
        readonly: run.readonly,
        net_none: run.net_none,
        creds: Creds::prepare(run, ids)?,
    })
}

/// The way into the running service `pid` for a probe of it.
pub fn prepare_join(run: &RunSpec, pid: i32, with_mounts: bool) -> Result<Join, String> {
    let ns = |kind: &str| {
        std::fs::File::open(format!("/proc/{pid}/ns/{kind}"))
            .map(OwnedFd::from)
            .map_err(|e| format!("/proc/{pid}/ns/{kind}: {e}"))
    };
    Ok(Join {
        mnt: if with_mounts { Some(ns("mnt")?) } else { None },
        net: ns("net")?,
        creds: Creds::prepare(run, ids(run)?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_beneath_the_root_are_cut_into_components_and_refuse_dotdot() {
        let b = Beneath::new(Path::new("/var/run/app.sock")).unwrap();
        let prefixes: Vec<&str> = b.prefixes.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(prefixes, ["var", "var/run", "var/run/app.sock"]);
        let names: Vec<&str> = b.names.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(names, ["var", "run", "app.sock"]);
        assert!(Beneath::new(Path::new("/run/../etc")).is_err());
        assert!(Beneath::new(Path::new("/")).is_err());
    }

    #[test]
    fn numeric_ids_need_no_lookup_and_a_gid_overrides_the_users() {
        let mut run = RunSpec {
            uid: Some(IdRef::Id(1000)),
            ..RunSpec::default()
        };
        let ids_of = |run: &RunSpec| ids(run).unwrap();
        assert_eq!(
            ids_of(&run),
            Ids {
                uid: 1000,
                gid: 1000,
                groups: vec![]
            }
        );
        run.gid = Some(IdRef::Id(50));
        run.additional_gids = vec![IdRef::Id(5), IdRef::Id(6)];
        assert_eq!(
            ids_of(&run),
            Ids {
                uid: 1000,
                gid: 50,
                groups: vec![5, 6]
            }
        );
        run.uid = Some(IdRef::Name("no-such-user-here".into()));
        assert_eq!(
            ids(&run).unwrap_err(),
            "run.uid: unknown user \"no-such-user-here\" (not in /etc/passwd)"
        );
    }

    #[test]
    fn a_declared_device_that_does_not_exist_is_an_error_a_missing_base_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunSpec {
            devices: vec![dir.path().join("watchdog")],
            ..RunSpec::default()
        };
        let err = devices(&run, Path::new("/roots/x")).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        std::fs::write(dir.path().join("watchdog"), "").unwrap();
        let got = devices(&run, Path::new("/roots/x")).unwrap();
        let (src, dst) = got.last().unwrap();
        assert_eq!(
            src.as_bytes(),
            dir.path().join("watchdog").as_os_str().as_encoded_bytes()
        );
        assert_eq!(
            Path::new(dst.to_str().unwrap()),
            under(Path::new("/roots/x"), &dir.path().join("watchdog"))
        );
    }
}
