//! The order and arguments of every confinement step, without root: the steps run
//! against [`RecordingSys`], which records each syscall and fails the ones it is told
//! to. (That the kernel then does what the calls ask is checked as root, end to end:
//! `tests/privileges.rs`, `tests/confinement.rs`.)

use super::sys::{Call, CapSets, RecordingSys};
use super::*;
use crate::spec::{Bind, IdRef, Mkdir, Rlimit, RunSpec};
use libc::{
    CLONE_NEWNET, CLONE_NEWNS, MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE,
    MS_RDONLY, MS_REC, MS_REMOUNT, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_NOFOLLOW, O_PATH, O_RDONLY,
    O_WRONLY, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, c_ulong,
};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const BIND_RESOLVE: u64 = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
const MKDIR_RESOLVE: u64 = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS;
/// The first fd [`RecordingSys`] hands out: the new root's, in a service's steps.
const ROOT_FD: i32 = 100;

/// A service's plan made in a scratch directory (its roots, bind sources, devices).
struct Lab {
    dir: TempDir,
}

impl Lab {
    fn new() -> Self {
        Lab {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A file or directory in the scratch directory, made.
    fn path(&self, name: &str, dir: bool) -> PathBuf {
        let p = self.dir.path().join(name);
        if dir {
            std::fs::create_dir_all(&p).unwrap();
        } else {
            std::fs::write(&p, "").unwrap();
        }
        p
    }

    fn root(&self) -> String {
        self.dir.path().join("roots/svc").display().to_string()
    }

    fn plan(&self, run: &RunSpec, extra: &[(PathBuf, PathBuf)]) -> Plan {
        let roots = self.dir.path().join("roots");
        prepare("svc", run, ids(run).unwrap(), &roots, extra).unwrap()
    }

    /// Every `[run]` feature at once.
    fn everything(&self) -> RunSpec {
        RunSpec {
            uid: Some(IdRef::Id(1000)),
            gid: Some(IdRef::Id(1000)),
            additional_gids: vec![IdRef::Id(5)],
            capabilities: vec![cap("NET_BIND_SERVICE"), cap("NET_ADMIN")],
            ambient: vec![cap("NET_BIND_SERVICE")],
            binds: vec![
                Bind {
                    src: self.path("dl", true),
                    dst: "/persist/dl".into(),
                    readonly: false,
                },
                Bind {
                    src: self.path("ca", true),
                    dst: "/etc/ssl/certs".into(),
                    readonly: true,
                },
            ],
            mkdir: vec![Mkdir {
                path: "/persist/dl/tmp".into(),
                owner: Some((IdRef::Id(1000), None)),
                mode: 0o750,
            }],
            devices: vec![self.path("watchdog", false)],
            net_none: true,
            pid_new: false,
            readonly: true,
            rlimits: vec![nofile(1024, 2048)],
            oom_score_adj: Some(500),
            no_new_privileges: true,
            env: vec![],
            cwd: Some("/persist/dl".into()),
        }
    }

    /// zedinit's notify socket for the service, as `sys/executor.rs` passes it.
    fn notify(&self) -> Vec<(PathBuf, PathBuf)> {
        vec![(
            self.dir.path().join("notify/svc.sock"),
            "/run/zedctr/notify.sock".into(),
        )]
    }
}

fn cap(name: &str) -> u8 {
    crate::caps::parse(name).unwrap()
}

fn nofile(soft: u64, hard: u64) -> Rlimit {
    Rlimit {
        resource: libc::RLIMIT_NOFILE as i32,
        name: "nofile",
        soft,
        hard,
    }
}

/// Runs a service's steps against `sys`: the result and the calls made.
fn run_own(plan: &Plan, sys: RecordingSys) -> (Result<(), SpawnError>, Vec<Call>, RecordingSys) {
    let result = own(&sys, plan);
    let calls = sys.calls();
    (result, calls, sys)
}

fn mount(
    src: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: c_ulong,
    data: Option<&str>,
) -> Call {
    Call::Mount {
        src: src.map(String::from),
        target: target.into(),
        fstype: fstype.map(String::from),
        flags,
        data: data.map(String::from),
    }
}

fn openat2(dir: i32, path: &str, flags: i32, resolve: u64) -> Call {
    Call::Openat2 {
        dir,
        path: path.into(),
        flags,
        resolve,
    }
}

fn prctl(option: i32, arg2: c_ulong, arg3: c_ulong) -> Call {
    Call::Prctl { option, arg2, arg3 }
}

fn text(p: &Path) -> String {
    p.display().to_string()
}

/// Where `want` is in `calls` (the first of several).
fn index_of(calls: &[Call], want: &Call) -> usize {
    calls
        .iter()
        .position(|c| c == want)
        .unwrap_or_else(|| panic!("{want:?} not among {calls:#?}"))
}

/// The calls of the credential steps: those after the pivot_root step (its last call is
/// the chdir to the new "/").
fn credential_calls(calls: &[Call]) -> &[Call] {
    let pivot = index_of(
        calls,
        &Call::PivotRoot {
            new_root: ".".into(),
            put_old: ".".into(),
        },
    );
    &calls[pivot + 3..]
}

/// The bounding-set drops for every capability this kernel knows but those kept.
fn bounding_drops(plan_last_cap: u8, keep: &[u8]) -> Vec<Call> {
    (0..=plan_last_cap)
        .filter(|c| !keep.contains(c))
        .map(|c| prctl(libc::PR_CAPBSET_DROP, c.into(), 0))
        .collect()
}

#[test]
fn a_service_gets_its_own_root_in_the_order_the_kernel_requires() {
    let lab = Lab::new();
    let plan = lab.plan(&RunSpec::default(), &[]);
    let (result, calls, _) = run_own(&plan, RecordingSys::new());
    assert_eq!(result, Ok(()));
    let root = lab.root();
    let mut want = vec![
        Call::Unshare(CLONE_NEWNS),
        mount(None, "/", None, MS_REC | MS_PRIVATE, None),
        mount(Some("/"), &root, None, MS_BIND, None),
        Call::Open {
            path: root.clone(),
            flags: O_PATH | O_DIRECTORY | O_CLOEXEC,
            mode: 0,
        },
        mount(
            Some("proc"),
            &format!("{root}/proc"),
            Some("proc"),
            MS_NOSUID | MS_NODEV | MS_NOEXEC,
            None,
        ),
        mount(
            Some("tmpfs"),
            &format!("{root}/dev"),
            Some("tmpfs"),
            MS_NOSUID | MS_NOEXEC,
            Some("mode=755,size=64k"),
        ),
    ];
    // The base devices this host has, each over a file already there (the fake's
    // access succeeds).
    assert!(
        plan.devices.len() >= 5,
        "the host's /dev: {:?}",
        plan.devices
    );
    for (src, dst) in &plan.devices {
        let (src, dst) = (src.to_str().unwrap(), dst.to_str().unwrap());
        assert_eq!(dst, format!("{root}{src}"));
        want.push(Call::Access(dst.into()));
        want.push(mount(Some(src), dst, None, MS_BIND, None));
    }
    want.extend([
        Call::Mkdir {
            path: format!("{root}/dev/pts"),
            mode: 0o755,
        },
        mount(
            Some("devpts"),
            &format!("{root}/dev/pts"),
            Some("devpts"),
            MS_NOSUID | MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=620"),
        ),
        Call::Symlink {
            target: "pts/ptmx".into(),
            link: format!("{root}/dev/ptmx"),
        },
        mount(
            Some("tmpfs"),
            &format!("{root}/run"),
            Some("tmpfs"),
            MS_NOSUID | MS_NODEV,
            Some("mode=755,size=16m"),
        ),
        Call::Close(ROOT_FD),
        Call::Chdir(root.clone()),
        Call::PivotRoot {
            new_root: ".".into(),
            put_old: ".".into(),
        },
        Call::Umount2 {
            target: ".".into(),
            flags: MNT_DETACH,
        },
        Call::Chdir("/".into()),
    ]);
    // Root without capabilities: every one dropped, ids 0, nothing raised.
    want.extend(bounding_drops(plan.creds.last_cap, &[]));
    want.extend([
        prctl(libc::PR_SET_KEEPCAPS, 1, 0),
        Call::Setgroups(vec![]),
        Call::Setresgid(0, 0, 0),
        Call::Setresuid(0, 0, 0),
        Call::Capset(CapSets {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }),
        Call::Chdir("/".into()),
    ]);
    assert_eq!(calls, want);
}

#[test]
fn the_bounding_set_is_dropped_before_setresuid_capset_after_ambient_last() {
    let lab = Lab::new();
    let run = RunSpec {
        uid: Some(IdRef::Id(1000)),
        gid: Some(IdRef::Id(1001)),
        additional_gids: vec![IdRef::Id(5), IdRef::Id(6)],
        capabilities: vec![cap("NET_BIND_SERVICE"), cap("NET_ADMIN")],
        ambient: vec![cap("NET_BIND_SERVICE")],
        no_new_privileges: true,
        cwd: Some("/srv".into()),
        ..RunSpec::default()
    };
    let plan = lab.plan(&run, &[]);
    let (result, calls, _) = run_own(&plan, RecordingSys::new());
    assert_eq!(result, Ok(()));
    let keep = (1u64 << 10) | (1 << 12);
    let mut want = bounding_drops(plan.creds.last_cap, &[10, 12]);
    want.extend([
        prctl(libc::PR_SET_KEEPCAPS, 1, 0),
        Call::Setgroups(vec![5, 6]),
        Call::Setresgid(1001, 1001, 1001),
        Call::Setresuid(1000, 1000, 1000),
        Call::Capset(CapSets {
            effective: keep,
            permitted: keep,
            inheritable: keep,
        }),
        prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as c_ulong,
            10,
        ),
        prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0),
        Call::Chdir("/srv".into()),
    ]);
    assert_eq!(credential_calls(&calls), want);
}

#[test]
fn no_new_privileges_is_set_only_when_declared() {
    let lab = Lab::new();
    let plan = lab.plan(&RunSpec::default(), &[]);
    let (_, calls, _) = run_own(&plan, RecordingSys::new());
    assert!(
        !calls.iter().any(
            |c| matches!(c, Call::Prctl { option, .. } if *option == libc::PR_SET_NO_NEW_PRIVS)
        ),
        "{calls:#?}"
    );
}

#[test]
fn rlimits_and_oom_score_adj_are_set_while_still_root() {
    let lab = Lab::new();
    let core = Rlimit {
        resource: libc::RLIMIT_CORE as i32,
        name: "core",
        soft: 0,
        hard: 0,
    };
    let run = RunSpec {
        uid: Some(IdRef::Id(1000)),
        rlimits: vec![nofile(1024, 2048), core],
        oom_score_adj: Some(500),
        ..RunSpec::default()
    };
    let plan = lab.plan(&run, &[]);
    let (result, calls, sys) = run_own(&plan, RecordingSys::new());
    assert_eq!(result, Ok(()));
    let creds = credential_calls(&calls);
    let oom_fd = ROOT_FD + 1;
    assert_eq!(
        creds[..6],
        [
            Call::Setrlimit {
                resource: libc::RLIMIT_NOFILE as i32,
                soft: 1024,
                hard: 2048,
            },
            Call::Setrlimit {
                resource: libc::RLIMIT_CORE as i32,
                soft: 0,
                hard: 0,
            },
            Call::Open {
                path: "/proc/self/oom_score_adj".into(),
                flags: O_WRONLY | O_CLOEXEC,
                mode: 0,
            },
            Call::Write {
                fd: oom_fd,
                data: b"500".to_vec(),
            },
            Call::Close(oom_fd),
            prctl(libc::PR_CAPBSET_DROP, 0, 0),
        ]
    );
    assert!(index_of(&calls, &creds[4]) < index_of(&calls, &Call::Setresuid(1000, 1000, 1000)));
    assert_eq!(sys.open_fds(), Vec::<i32>::new());
}

#[test]
fn a_failed_oom_score_adj_write_reports_its_step_and_goes_no_further() {
    let lab = Lab::new();
    let run = RunSpec {
        oom_score_adj: Some(-500),
        ..RunSpec::default()
    };
    let plan = lab.plan(&run, &[]);
    let sys = RecordingSys::new().fail_when(|c| matches!(c, Call::Write { .. }), libc::EACCES);
    let (result, calls, sys) = run_own(&plan, sys);
    assert_eq!(
        result,
        Err(SpawnError {
            step: Step::OomScoreAdj,
            errno: libc::EACCES
        })
    );
    assert_eq!(calls.last(), Some(&Call::Close(ROOT_FD + 1)));
    assert_eq!(sys.open_fds(), Vec::<i32>::new());
}

#[test]
fn net_none_unshares_the_network_after_pivot_root_and_before_the_credentials() {
    let lab = Lab::new();
    let plan = lab.plan(&RunSpec::default(), &[]);
    let (_, without, _) = run_own(&plan, RecordingSys::new());
    assert!(!without.contains(&Call::Unshare(CLONE_NEWNET)));
    let run = RunSpec {
        net_none: true,
        ..RunSpec::default()
    };
    let plan = lab.plan(&run, &[]);
    let (result, calls, _) = run_own(&plan, RecordingSys::new());
    assert_eq!(result, Ok(()));
    assert_eq!(credential_calls(&calls)[0], Call::Unshare(CLONE_NEWNET));
}

#[test]
fn pid_new_is_no_step_here_the_child_is_cloned_into_its_pid_namespace() {
    let lab = Lab::new();
    let mut run = lab.everything();
    let (_, host_pid, _) = run_own(&lab.plan(&run, &[]), RecordingSys::new());
    run.pid_new = true;
    let (_, new_pid, _) = run_own(&lab.plan(&run, &[]), RecordingSys::new());
    assert_eq!(host_pid, new_pid);
}

#[test]
fn binds_are_mounted_on_their_mount_point_opened_beneath_the_root_ro_ones_remounted() {
    let lab = Lab::new();
    let dl = lab.path("dl", true);
    let ca = lab.path("ca", true);
    let run = RunSpec {
        binds: vec![
            Bind {
                src: dl.clone(),
                dst: "/persist/dl".into(),
                readonly: false,
            },
            Bind {
                src: ca.clone(),
                dst: "/etc/ssl/certs".into(),
                readonly: true,
            },
        ],
        ..RunSpec::default()
    };
    let plan = lab.plan(&run, &[]);
    // The source is nosuid,nodev,noexec: the read-only remount keeps all three.
    let sys = RecordingSys::new().mount_flags(libc::ST_NOSUID | libc::ST_NODEV | libc::ST_NOEXEC);
    let (result, calls, sys) = run_own(&plan, sys);
    assert_eq!(result, Ok(()));
    let dir = O_PATH | O_CLOEXEC | O_DIRECTORY;
    let root = lab.root();
    let run_tmpfs = mount(
        Some("tmpfs"),
        &format!("{root}/run"),
        Some("tmpfs"),
        MS_NOSUID | MS_NODEV,
        Some("mode=755,size=16m"),
    );
    let start = index_of(&calls, &run_tmpfs) + 1;
    let want = [
        openat2(ROOT_FD, "persist", dir, BIND_RESOLVE),
        Call::Close(101),
        openat2(ROOT_FD, "persist/dl", dir, BIND_RESOLVE),
        mount(Some(&text(&dl)), "/proc/self/fd/102", None, MS_BIND, None),
        Call::Close(102),
        openat2(ROOT_FD, "etc", dir, BIND_RESOLVE),
        Call::Close(103),
        openat2(ROOT_FD, "etc/ssl", dir, BIND_RESOLVE),
        Call::Close(104),
        openat2(ROOT_FD, "etc/ssl/certs", dir, BIND_RESOLVE),
        mount(Some(&text(&ca)), "/proc/self/fd/105", None, MS_BIND, None),
        Call::Close(105),
        // A fresh lookup: the fd above names the directory under the mount.
        openat2(ROOT_FD, "etc/ssl/certs", O_PATH | O_CLOEXEC, BIND_RESOLVE),
        Call::Statvfs("/proc/self/fd/106".into()),
        mount(
            None,
            "/proc/self/fd/106",
            None,
            MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            None,
        ),
        Call::Close(106),
        Call::Close(ROOT_FD),
    ];
    assert_eq!(calls[start..start + want.len()], want);
    assert_eq!(sys.open_fds(), Vec::<i32>::new());
}

#[test]
fn a_missing_mount_point_is_made_beneath_the_root_an_empty_file_for_a_file_bind() {
    let lab = Lab::new();
    let conf = lab.path("app.conf", false);
    let run = RunSpec {
        binds: vec![Bind {
            src: conf.clone(),
            dst: "/etc/app.conf".into(),
            readonly: false,
        }],
        ..RunSpec::default()
    };
    let plan = lab.plan(&run, &[]);
    let missing = |path: &'static str| move |c: &Call| matches!(c, Call::Openat2 { path: p, .. } if p == path);
    let sys = RecordingSys::new()
        .fail_when(missing("etc"), libc::ENOENT)
        .fail_when(missing("etc/app.conf"), libc::ENOENT);
    let (result, calls, sys) = run_own(&plan, sys);
    assert_eq!(result, Ok(()));
    let dir = O_PATH | O_CLOEXEC | O_DIRECTORY;
    let start = index_of(&calls, &openat2(ROOT_FD, "etc", dir, BIND_RESOLVE));
    let want = [
        // /etc is missing: made in the root (no fd opened for the failed lookup).
        openat2(ROOT_FD, "etc", dir, BIND_RESOLVE),
        Call::Mkdirat {
            dir: ROOT_FD,
            name: "etc".into(),
            mode: 0o755,
        },
        openat2(ROOT_FD, "etc", dir, BIND_RESOLVE),
        Call::Close(101),
        // The mount point is missing: an empty file, made through its parent's fd,
        // never following a symlink.
        openat2(ROOT_FD, "etc/app.conf", O_PATH | O_CLOEXEC, BIND_RESOLVE),
        openat2(ROOT_FD, "etc", dir, BIND_RESOLVE),
        Call::Openat {
            dir: 102,
            path: "app.conf".into(),
            flags: O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
            mode: 0o644,
        },
        Call::Close(103),
        Call::Close(102),
        openat2(ROOT_FD, "etc/app.conf", O_PATH | O_CLOEXEC, BIND_RESOLVE),
        mount(Some(&text(&conf)), "/proc/self/fd/104", None, MS_BIND, None),
        Call::Close(104),
    ];
    assert_eq!(calls[start..start + want.len()], want);
    assert_eq!(sys.open_fds(), Vec::<i32>::new());
}

#[test]
fn the_notify_socket_is_bound_into_the_private_run_as_a_file() {
    let lab = Lab::new();
    let extra = lab.notify();
    let plan = lab.plan(&RunSpec::default(), &extra);
    let (result, calls, _) = run_own(&plan, RecordingSys::new());
    assert_eq!(result, Ok(()));
    let root = lab.root();
    let run_tmpfs = mount(
        Some("tmpfs"),
        &format!("{root}/run"),
        Some("tmpfs"),
        MS_NOSUID | MS_NODEV,
        Some("mode=755,size=16m"),
    );
    let point = openat2(
        ROOT_FD,
        "run/zedctr/notify.sock",
        O_PATH | O_CLOEXEC,
        BIND_RESOLVE,
    );
    let at = index_of(&calls, &point);
    assert!(index_of(&calls, &run_tmpfs) < at);
    let fd = 100 + calls[..=at].iter().filter(|c| c.opens()).count() as i32 - 1;
    assert_eq!(
        calls[at + 1],
        mount(
            Some(&text(&extra[0].0)),
            &format!("/proc/self/fd/{fd}"),
            None,
            MS_BIND,
            None
        )
    );
    // Not read-only: no remount.
    assert!(!calls.iter().any(|c| matches!(c, Call::Statvfs(_))));
}

#[test]
fn mkdir_makes_the_directory_without_following_symlinks_then_chmods_and_chowns_its_fd() {
    let lab = Lab::new();
    let run = RunSpec {
        mkdir: vec![
            Mkdir {
                path: "/persist/dl/tmp".into(),
                owner: Some((IdRef::Id(1000), Some(IdRef::Id(50)))),
                mode: 0o750,
            },
            Mkdir {
                path: "/data".into(),
                owner: None,
                mode: 0o700,
            },
        ],
        ..RunSpec::default()
    };
    let plan = lab.plan(&run, &[]);
    // /data is there already: fine, its mode is still set.
    let sys = RecordingSys::new().fail_when(
        |c| matches!(c, Call::Mkdirat { name, .. } if name == "data"),
        libc::EEXIST,
    );
    let (result, calls, sys) = run_own(&plan, sys);
    assert_eq!(result, Ok(()));
    let start = index_of(
        &calls,
        &openat2(
            ROOT_FD,
            "persist/dl",
            O_PATH | O_DIRECTORY | O_CLOEXEC,
            MKDIR_RESOLVE,
        ),
    );
    let want = [
        openat2(
            ROOT_FD,
            "persist/dl",
            O_PATH | O_DIRECTORY | O_CLOEXEC,
            MKDIR_RESOLVE,
        ),
        Call::Mkdirat {
            dir: 101,
            name: "tmp".into(),
            mode: 0o750,
        },
        Call::Openat {
            dir: 101,
            path: "tmp".into(),
            flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
            mode: 0,
        },
        Call::Fchmod {
            fd: 102,
            mode: 0o750,
        },
        Call::Fchown {
            fd: 102,
            uid: 1000,
            gid: 50,
        },
        Call::Close(102),
        Call::Close(101),
        // At the top: made in the root's fd directly.
        Call::Mkdirat {
            dir: ROOT_FD,
            name: "data".into(),
            mode: 0o700,
        },
        Call::Openat {
            dir: ROOT_FD,
            path: "data".into(),
            flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
            mode: 0,
        },
        Call::Fchmod {
            fd: 103,
            mode: 0o700,
        },
        Call::Close(103),
        Call::Close(ROOT_FD),
    ];
    assert_eq!(calls[start..start + want.len()], want);
    assert_eq!(sys.open_fds(), Vec::<i32>::new());
}

#[test]
fn a_symlink_in_a_mkdir_path_fails_step_mkdir_before_pivot_root() {
    let lab = Lab::new();
    let run = RunSpec {
        mkdir: vec![Mkdir {
            path: "/var/lib/app".into(),
            owner: None,
            mode: 0o755,
        }],
        ..RunSpec::default()
    };
    let plan = lab.plan(&run, &[]);
    let sys = RecordingSys::new().fail_when(
        |c| matches!(c, Call::Openat2 { resolve, .. } if *resolve == MKDIR_RESOLVE),
        libc::ELOOP,
    );
    let (result, calls, sys) = run_own(&plan, sys);
    assert_eq!(
        result,
        Err(SpawnError {
            step: Step::Mkdir,
            errno: libc::ELOOP
        })
    );
    assert!(!calls.iter().any(|c| matches!(c, Call::PivotRoot { .. })));
    assert_eq!(sys.open_fds(), Vec::<i32>::new());
}

#[test]
fn readonly_remounts_the_root_after_binds_and_mkdirs_keeping_its_flags() {
    let lab = Lab::new();
    let mut run = lab.everything();
    run.net_none = false;
    let plan = lab.plan(&run, &lab.notify());
    let sys = RecordingSys::new().mount_flags(libc::ST_NOSUID | libc::ST_NODEV | libc::ST_RELATIME);
    let (result, calls, _) = run_own(&plan, sys);
    assert_eq!(result, Ok(()));
    let root = lab.root();
    let statvfs = index_of(&calls, &Call::Statvfs(root.clone()));
    assert_eq!(
        calls[statvfs + 1],
        mount(
            None,
            &root,
            None,
            MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | libc::MS_RELATIME,
            None
        )
    );
    let last_mkdir = calls
        .iter()
        .rposition(|c| matches!(c, Call::Fchown { .. }))
        .unwrap();
    let last_bind = calls
        .iter()
        .rposition(|c| matches!(c, Call::Mount { flags, .. } if *flags == MS_BIND))
        .unwrap();
    assert!(last_bind < statvfs && last_mkdir < statvfs);
    assert!(statvfs < index_of(&calls, &Call::Close(ROOT_FD)));
    // Without readonly: the root is left as it is.
    run.readonly = false;
    let plan = lab.plan(&run, &[]);
    let (_, calls, _) = run_own(&plan, RecordingSys::new());
    assert!(!calls.contains(&Call::Statvfs(root)));
}

#[test]
fn a_declared_device_is_bound_over_a_file_made_in_the_fresh_dev() {
    let lab = Lab::new();
    let watchdog = lab.path("watchdog", false);
    let run = RunSpec {
        devices: vec![watchdog.clone()],
        ..RunSpec::default()
    };
    let plan = lab.plan(&run, &[]);
    let target = format!("{}{}", lab.root(), text(&watchdog));
    let absent = target.clone();
    let sys =
        RecordingSys::new().fail_when(move |c| *c == Call::Access(absent.clone()), libc::ENOENT);
    let (result, calls, sys) = run_own(&plan, sys);
    assert_eq!(result, Ok(()));
    let at = index_of(&calls, &Call::Access(target.clone()));
    // Its parents, each made if missing (EEXIST is the common answer), then the file.
    let parents: Vec<Call> = target
        .match_indices('/')
        .skip(1)
        .map(|(i, _)| Call::Mkdir {
            path: target[..i].into(),
            mode: 0o755,
        })
        .collect();
    assert_eq!(calls[at + 1..at + 1 + parents.len()], parents);
    let rest = &calls[at + 1 + parents.len()..];
    let fd = ROOT_FD + 1;
    assert_eq!(
        rest[..3],
        [
            Call::Open {
                path: target.clone(),
                flags: O_WRONLY | O_CREAT | O_CLOEXEC,
                mode: 0o644,
            },
            Call::Close(fd),
            mount(Some(&text(&watchdog)), &target, None, MS_BIND, None),
        ]
    );
    let pts = index_of(
        &calls,
        &Call::Mkdir {
            path: format!("{}/dev/pts", lab.root()),
            mode: 0o755,
        },
    );
    assert!(at < pts);
    assert_eq!(sys.open_fds(), Vec::<i32>::new());
}

#[test]
fn a_failing_bind_stops_before_pivot_root_and_reports_step_bind() {
    let lab = Lab::new();
    let run = lab.everything();
    let plan = lab.plan(&run, &[]);
    let src = text(&run.binds[1].src);
    let sys = RecordingSys::new().fail_when(
        move |c| matches!(c, Call::Mount { src: Some(s), .. } if *s == src),
        libc::EACCES,
    );
    let (result, calls, sys) = run_own(&plan, sys);
    assert_eq!(
        result,
        Err(SpawnError {
            step: Step::Bind,
            errno: libc::EACCES
        })
    );
    let failed = calls
        .iter()
        .position(
            |c| matches!(c, Call::Mount { src: Some(s), .. } if *s == text(&run.binds[1].src)),
        )
        .unwrap();
    // Nothing after it but closing what was open.
    assert!(
        calls[failed + 1..]
            .iter()
            .all(|c| matches!(c, Call::Close(_))),
        "{:#?}",
        &calls[failed..]
    );
    assert!(!calls.iter().any(|c| matches!(c, Call::PivotRoot { .. })));
    assert_eq!(sys.open_fds(), Vec::<i32>::new());
}

#[test]
fn every_fd_the_child_opens_is_cloexec_and_closed_by_the_end() {
    let lab = Lab::new();
    let plan = lab.plan(&lab.everything(), &lab.notify());
    let (result, calls, sys) = run_own(&plan, RecordingSys::new());
    assert_eq!(result, Ok(()));
    for c in &calls {
        let flags = match c {
            Call::Open { flags, .. } | Call::Openat { flags, .. } | Call::Openat2 { flags, .. } => {
                *flags
            }
            _ => continue,
        };
        assert_ne!(flags & O_CLOEXEC, 0, "{c:?}: not CLOEXEC");
    }
    assert_eq!(sys.open_fds(), Vec::<i32>::new());
}

/// Fails each call of a full run in turn: the run must stop at it (but for the calls
/// whose failure is an answer, not an error), report its step with the errno, make no
/// call after it but closes, and the steps reported must come in [`Step`]'s order.
/// Returns the steps seen.
fn fail_each_call(
    calls: usize,
    run: impl Fn(RecordingSys) -> (Result<(), SpawnError>, Vec<Call>, RecordingSys),
) -> Vec<Step> {
    let mut seen: Vec<Step> = Vec::new();
    for n in 0..calls {
        let (result, calls, sys) = run(RecordingSys::new().fail_at(n, libc::EPERM));
        // An access(2) that fails means "not there yet"; a failed close is not looked at.
        if matches!(calls[n], Call::Access(_) | Call::Close(_)) {
            assert_eq!(result, Ok(()), "call {n}: {:?}", calls[n]);
            continue;
        }
        let Err(SpawnError { step, errno }) = result else {
            panic!("call {n} ({:?}) failed and the run went on", calls[n]);
        };
        assert_eq!(errno, libc::EPERM);
        assert!(
            calls[n + 1..].iter().all(|c| matches!(c, Call::Close(_))),
            "call {n} ({:?}) failed, then: {:#?}",
            calls[n],
            &calls[n + 1..]
        );
        assert_eq!(
            sys.open_fds(),
            Vec::<i32>::new(),
            "call {n}: {:?}",
            calls[n]
        );
        if let Some(last) = seen.last() {
            assert!(
                *last <= step,
                "call {n} ({:?}): {step:?} after {last:?}",
                calls[n]
            );
        }
        if seen.last() != Some(&step) {
            seen.push(step);
        }
    }
    seen
}

#[test]
fn a_service_stops_at_whichever_call_fails_and_its_steps_come_in_order() {
    let lab = Lab::new();
    let plan = lab.plan(&lab.everything(), &lab.notify());
    let (result, calls, _) = run_own(&plan, RecordingSys::new());
    assert_eq!(result, Ok(()));
    let seen = fail_each_call(calls.len(), |sys| run_own(&plan, sys));
    // Every step of a service's list is reached, and can fail.
    let steps: Vec<Step> = Step::ALL
        .iter()
        .copied()
        .filter(|s| !matches!(s, Step::EnterNamespaces | Step::Setup | Step::Exec))
        .collect();
    assert_eq!(seen, steps);
}

fn probe_of(run: &RunSpec, with_mounts: bool) -> Join {
    prepare_join(run, std::process::id() as i32, with_mounts).unwrap()
}

fn run_join(j: &Join, sys: RecordingSys) -> (Result<(), SpawnError>, Vec<Call>, RecordingSys) {
    let result = join(&sys, j);
    let calls = sys.calls();
    (result, calls, sys)
}

#[test]
fn a_probe_enters_its_services_namespaces_then_takes_its_credentials() {
    use std::os::fd::AsRawFd;
    let lab = Lab::new();
    let run = lab.everything();
    let probe = probe_of(&run, true);
    let (result, calls, _) = run_join(&probe, RecordingSys::new());
    assert_eq!(result, Ok(()));
    let mnt = probe.mnt.as_ref().unwrap().as_raw_fd();
    let net = probe.net.as_raw_fd();
    assert_eq!(
        calls[..4],
        [
            Call::Setns {
                fd: mnt,
                nstype: CLONE_NEWNS
            },
            Call::Chdir("/".into()),
            Call::Setns {
                fd: net,
                nstype: CLONE_NEWNET
            },
            Call::Setrlimit {
                resource: libc::RLIMIT_NOFILE as i32,
                soft: 1024,
                hard: 2048
            },
        ]
    );
    // Its service's credentials, exactly: what a service's own steps end with.
    let plan = lab.plan(&run, &[]);
    let (_, own_calls, _) = run_own(&plan, RecordingSys::new());
    let creds = credential_calls(&own_calls);
    // (The service unshares its network first; the fds of the oom write differ.)
    let strip = |calls: &[Call]| -> Vec<Call> {
        calls
            .iter()
            .filter(|c| !matches!(c, Call::Unshare(_) | Call::Write { .. } | Call::Close(_)))
            .cloned()
            .collect()
    };
    assert_eq!(strip(&calls[3..]), strip(creds));
    // No mount of its own, no new namespace.
    assert!(!calls.iter().any(|c| matches!(
        c,
        Call::Mount { .. } | Call::Unshare(_) | Call::PivotRoot { .. }
    )));
    // A tcp probe (zedinit's own binary) stays in zedinit's mount namespace.
    let probe = probe_of(&run, false);
    let (_, calls, _) = run_join(&probe, RecordingSys::new());
    assert_eq!(
        calls[0],
        Call::Setns {
            fd: probe.net.as_raw_fd(),
            nstype: CLONE_NEWNET
        }
    );
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::Setns { nstype, .. } if *nstype == CLONE_NEWNS))
    );
}

#[test]
fn a_probe_stops_at_whichever_call_fails_and_its_steps_come_in_order() {
    let lab = Lab::new();
    let probe = probe_of(&lab.everything(), true);
    let (result, calls, _) = run_join(&probe, RecordingSys::new());
    assert_eq!(result, Ok(()));
    let seen = fail_each_call(calls.len(), |sys| run_join(&probe, sys));
    let steps: Vec<Step> = Step::ALL
        .iter()
        .copied()
        .filter(|s| *s >= Step::EnterNamespaces && !matches!(s, Step::Setup | Step::Exec))
        .collect();
    assert_eq!(seen, steps);
}
