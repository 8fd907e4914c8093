//! `supctl export linuxkit`: every service of the image as linuxkit would run it in a
//! container of its own (the modularization path), from the same definitions zedinit
//! runs. Bind sources are paths inside the zedctr container; linuxkit's are host paths,
//! so each is translated through build.yml's binds (the longest matching container side
//! wins); one that no build.yml bind reaches (a path of the image itself) is an error
//! naming the service and the bind. Binds are written as `mounts:` of type bind with
//! `rprivate` and without `rbind`, as zedinit makes them (non-recursive and private;
//! linuxkit's `binds:` are recursive and shared), read-only where the service's bind or
//! build.yml's says so. Every entry gets its own `/run` tmpfs, as zedinit gives it (unless
//! a bind covers `/run`), and a tmpfs for each `mkdir` inside it. Oneshots go to
//! `onboot:`, longruns to `services:`; what linuxkit has no word for (dependencies, restart
//! policy, heartbeats, conditions, mkdir owners) is carried as comments, the dependency
//! table first.
//!
//! Files: [`build_yml`] (build.yml's reader: a small strict reader of the two things
//! needed, `image:` and `config.binds`, that refuses what it does not understand),
//! [`yaml`] (quoting and comments a YAML 1.1 reader cannot misread), [`markdown`] (the
//! services' inter-dependency list, `supctl export markdown`), and here the
//! mapping of a definition to a linuxkit entry.

mod build_yml;
mod ids;
mod markdown;
mod yaml;

use build_yml::plain;
pub use build_yml::{Container, read_build_yml};
pub use markdown::markdown;
use yaml::{comment, id_text, kebab, list, q};

use std::fmt::Write as _;
use std::path::Path;
use zedinit::spec::{RunSpec, ServiceSpec, ServiceType};

/// Device numbers of nodes a definition may name, for machines that lack them (linuxkit
/// wants type, major and minor; the machine that exports may have no watchdog).
const KNOWN_DEVICES: [(&str, char, u32, u32); 4] = [
    ("/dev/watchdog", 'c', 10, 130),
    ("/dev/fuse", 'c', 10, 229),
    ("/dev/net/tun", 'c', 10, 200),
    ("/dev/kvm", 'c', 10, 232),
];

fn device_numbers(path: &Path) -> Option<(char, u32, u32)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if let Ok(meta) = std::fs::metadata(path) {
        let kind = if meta.file_type().is_char_device() {
            'c'
        } else if meta.file_type().is_block_device() {
            'b'
        } else {
            return None;
        };
        let rdev = meta.rdev();
        return Some((
            kind,
            nix::sys::stat::major(rdev) as u32,
            nix::sys::stat::minor(rdev) as u32,
        ));
    }
    KNOWN_DEVICES
        .iter()
        .find(|(p, ..)| Path::new(p) == path)
        .map(|(_, kind, major, minor)| (*kind, *major, *minor))
}

/// The linuxkit YAML for `specs` (in dependency order as given), or every problem found.
pub fn linuxkit(specs: &[&ServiceSpec], container: &Container) -> Result<String, Vec<String>> {
    let mut errors = Vec::new();
    let mut onboot = String::new();
    let mut services = String::new();
    for spec in specs {
        let Some(run) = &spec.run else {
            errors.push(format!(
                "{}: {}: no [run]: it shares zedinit's root and privileges and has no \
                 container of its own to export",
                spec.file.display(),
                spec.name
            ));
            continue;
        };
        match entry(spec, run, container) {
            Ok(text) if spec.kind == ServiceType::Oneshot => onboot.push_str(&text),
            Ok(text) => services.push_str(&text),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut out = String::from(
        "# supctl export linuxkit: the zedctr image's services, each as a container of its own.\n\
         # linuxkit starts onboot entries in order, then every service at once; what zedinit\n\
         # orders, restarts and watches is below as comments.\n# Dependencies:\n",
    );
    for spec in specs {
        let mut deps = Vec::new();
        if !spec.requires.is_empty() {
            deps.push(format!("requires {}", spec.requires.join(", ")));
        }
        if !spec.after.is_empty() {
            deps.push(format!("after {}", spec.after.join(", ")));
        }
        let deps = if deps.is_empty() {
            "none".to_string()
        } else {
            deps.join("; ")
        };
        let _ = writeln!(out, "#   {}", comment(&format!("{}: {deps}", spec.name)));
    }
    if !onboot.is_empty() {
        let _ = write!(out, "onboot:\n{onboot}");
    }
    if !services.is_empty() {
        let _ = write!(out, "services:\n{services}");
    }
    Ok(out)
}

fn entry(spec: &ServiceSpec, run: &RunSpec, container: &Container) -> Result<String, Vec<String>> {
    let mut errors = Vec::new();
    let problem = |what: String| format!("{}: {}: {what}", spec.file.display(), spec.name);
    let mut e = String::new();
    let _ = writeln!(e, "  - name: {}", q(&spec.name));
    let _ = writeln!(e, "    image: {}", q(&container.image));
    let mut notes = vec![format!(
        "zedinit: critical {}, restart {}",
        spec.critical,
        kebab(&format!("{:?}", spec.restart.policy))
    )];
    for condition in &spec.conditions {
        notes.push(format!(
            "zedinit runs it only if {} {}",
            condition.path.display(),
            if condition.negate {
                "does not exist"
            } else {
                "exists"
            }
        ));
    }
    if let Some(heartbeat) = &spec.heartbeat {
        notes.push(format!(
            "heartbeat: max-age {}s",
            heartbeat.max_age.as_secs()
        ));
    }
    for note in notes {
        let _ = writeln!(e, "    # {}", comment(&note));
    }
    // `[export]` says what differs without zedinit (a service that asked zedinit, or
    // that now supervises its own children, runs otherwise there).
    let command: Vec<String> = spec
        .export
        .command
        .as_ref()
        .unwrap_or(&spec.command)
        .iter()
        .map(|a| q(a))
        .collect();
    let _ = writeln!(e, "    command: {}", list(&command));
    let caps: Vec<String> = spec
        .export
        .capabilities
        .as_ref()
        .unwrap_or(&run.capabilities)
        .iter()
        .map(|c| q(zedinit::caps::name(*c)))
        .collect();
    let _ = writeln!(e, "    capabilities: {}", list(&caps));
    if !run.ambient.is_empty() {
        let ambient: Vec<String> = run
            .ambient
            .iter()
            .map(|c| q(zedinit::caps::name(*c)))
            .collect();
        let _ = writeln!(e, "    ambient: {}", list(&ambient));
    }
    // Mounts, in the order they must be made: its own /run, tmpfs for what it makes
    // inside /run, then its binds (possibly onto both).
    let mut mounts = Vec::new();
    let binds = spec.export.binds.as_ref().unwrap_or(&run.binds);
    let run_is_bound = binds.iter().any(|b| b.dst == Path::new("/run"));
    if !run_is_bound {
        mounts.push(
            "{type: tmpfs, source: tmpfs, destination: \"/run\", options: [nosuid, nodev, \"mode=755\"]}"
                .to_string(),
        );
    }
    let mut host_dirs = Vec::new();
    for dir in &run.mkdir {
        let under = binds
            .iter()
            .filter_map(|b| Some((b, dir.path.strip_prefix(&b.dst).ok()?)))
            .max_by_key(|(b, _)| b.dst.components().count());
        let owner = match &dir.owner {
            Some((user, group)) => format!(
                "{}{}",
                id_text(user),
                group
                    .as_ref()
                    .map(|g| format!(":{}", id_text(g)))
                    .unwrap_or_default()
            ),
            None => "root".into(),
        };
        match under {
            Some((bind, rest)) => match container.host_path(&bind.src.join(rest)) {
                Some((host, _)) => {
                    let _ = writeln!(
                        e,
                        "    # {}",
                        comment(&format!(
                            "zedinit makes {} owned by {owner}, mode {:04o}: linuxkit's mkdir sets neither",
                            dir.path.display(),
                            dir.mode
                        ))
                    );
                    host_dirs.push(q(&host.display().to_string()));
                }
                None => errors.push(problem(format!(
                    "mkdir {}: its bind's source has no host path",
                    dir.path.display()
                ))),
            },
            // Inside its own /run: a tmpfs of its own there (nothing on the host).
            None if !run_is_bound && dir.path.starts_with("/run") && plain(&dir.path) => {
                let _ = writeln!(
                    e,
                    "    # {}",
                    comment(&format!(
                        "zedinit makes {} owned by {owner}: here a tmpfs, owned by root",
                        dir.path.display()
                    ))
                );
                mounts.push(format!(
                    "{{type: tmpfs, source: tmpfs, destination: {}, options: [nosuid, nodev, \"mode={:o}\"]}}",
                    q(&dir.path.display().to_string()),
                    dir.mode
                ));
            }
            None => errors.push(problem(format!(
                "mkdir {}: not under any of its binds or its own /run, so it has no host path",
                dir.path.display()
            ))),
        }
    }
    for bind in binds {
        match container.host_path(&bind.src) {
            Some((host, container_ro)) => {
                let mut options = vec!["bind", "rprivate"];
                if bind.readonly || container_ro {
                    options.push("ro");
                }
                mounts.push(format!(
                    "{{type: bind, source: {}, destination: {}, options: [{}]}}",
                    q(&host.display().to_string()),
                    q(&bind.dst.display().to_string()),
                    options.join(", ")
                ));
            }
            None => errors.push(problem(format!(
                "bind {}:{}: {} is not bound into the zedctr container by build.yml (it is \
                 the image's own, or not a plain path), so it has no host path",
                bind.src.display(),
                bind.dst.display(),
                bind.src.display()
            ))),
        }
    }
    let _ = writeln!(e, "    mounts:");
    for mount in &mounts {
        let _ = writeln!(e, "      - {mount}");
    }
    let net_none = spec.export.net_none.unwrap_or(run.net_none);
    let _ = writeln!(e, "    net: {}", if net_none { "new" } else { "host" });
    if spec.export.pid_host == Some(true) {
        let _ = writeln!(e, "    pid: host");
    }
    let _ = writeln!(e, "    readonly: {}", run.readonly);
    match (&run.uid, &run.gid) {
        (Some(_), None) => errors.push(problem(
            "uid without gid: zedinit uses the user's primary group, linuxkit group 0; \
             declare gid"
                .into(),
        )),
        // Numbers, never names: linuxkit reads a name as a user of its own making.
        (uid, gid) => {
            if let Some(uid) = uid {
                match container.uid(uid) {
                    Ok(n) => {
                        let _ = writeln!(e, "    uid: {n}");
                    }
                    Err(what) => errors.push(problem(format!("uid: {what}"))),
                }
            }
            if let Some(gid) = gid {
                match container.gid(gid) {
                    Ok(n) => {
                        let _ = writeln!(e, "    gid: {n}");
                    }
                    Err(what) => errors.push(problem(format!("gid: {what}"))),
                }
            }
        }
    }
    if !run.additional_gids.is_empty() {
        let mut gids = Vec::new();
        for gid in &run.additional_gids {
            match container.gid(gid) {
                Ok(n) => gids.push(n.to_string()),
                Err(what) => errors.push(problem(format!("additional-gids: {what}"))),
            }
        }
        let _ = writeln!(e, "    additionalGids: {}", list(&gids));
    }
    if run.no_new_privileges {
        let _ = writeln!(e, "    noNewPrivileges: true");
    }
    if let Some(adj) = run.oom_score_adj {
        let _ = writeln!(e, "    oomScoreAdj: {adj}");
    }
    if !run.rlimits.is_empty() {
        let limits: Vec<String> = run
            .rlimits
            .iter()
            .map(|r| q(&format!("{},{},{}", r.name, r.soft, r.hard)))
            .collect();
        let _ = writeln!(e, "    rlimits: {}", list(&limits));
    }
    if !run.env.is_empty() {
        let env: Vec<String> = run
            .env
            .iter()
            .map(|(k, v)| q(&format!("{k}={v}")))
            .collect();
        let _ = writeln!(e, "    env: {}", list(&env));
    }
    if let Some(cwd) = &run.cwd {
        let _ = writeln!(e, "    cwd: {}", q(&cwd.display().to_string()));
    }
    if !run.devices.is_empty() {
        let _ = writeln!(e, "    devices:");
        for device in &run.devices {
            match device_numbers(device) {
                Some((kind, major, minor)) => {
                    let _ = writeln!(
                        e,
                        "      - {{path: {}, type: {kind}, major: {major}, minor: {minor}, mode: \"0600\"}}",
                        q(&device.display().to_string())
                    );
                }
                None => errors.push(problem(format!(
                    "device {}: not a device node here and not a known one: its numbers are unknown",
                    device.display()
                ))),
            }
        }
    }
    if !host_dirs.is_empty() {
        let _ = writeln!(e, "    runtime:\n      mkdir: {}", list(&host_dirs));
    }
    if errors.is_empty() {
        Ok(e)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn container() -> Container {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../build.yml"))
            .expect("build.yml");
        read_build_yml(Path::new("build.yml"), &text).expect("build.yml reads")
    }

    #[test]
    fn build_yml_gives_the_image_and_its_binds() {
        let c = container();
        assert_eq!(c.image, "zedctr");
        assert!(
            c.binds
                .contains(&(PathBuf::from("/persist"), PathBuf::from("/persist"), false))
        );
        assert!(c.binds.contains(&(
            PathBuf::from("/var/log"),
            PathBuf::from("/var/log/dom0"),
            false
        )));
    }

    #[test]
    fn container_paths_become_host_paths_through_the_longest_bind() {
        let c = container();
        let host = |p: &str| {
            c.host_path(Path::new(p))
                .map(|(h, _)| h.display().to_string())
        };
        assert_eq!(
            host("/persist/downloads").as_deref(),
            Some("/persist/downloads")
        );
        assert_eq!(host("/run/downloader").as_deref(), Some("/run/downloader"));
        assert_eq!(
            host("/var/log/dom0/zedctr").as_deref(),
            Some("/var/log/zedctr")
        );
        assert_eq!(host("/persist").as_deref(), Some("/persist"));
        // Whole components only; the image's own paths have none; no `..` games.
        assert_eq!(host("/runner"), None);
        assert_eq!(host("/usr/share/zedctr"), None);
        assert_eq!(host("/persist/../etc"), None);
    }

    #[test]
    fn build_yml_options_comments_and_quotes_are_read_as_yaml_means_them() {
        let text = "image: \"zed #1\" # the image\nconfig:\n  binds:\n    - /etc/ca:/etc/ca:ro\n    - \"/a:/b\" # why\n";
        let c = read_build_yml(Path::new("b.yml"), text).expect("reads");
        assert_eq!(c.image, "zed #1");
        assert_eq!(
            c.binds[0],
            (PathBuf::from("/etc/ca"), PathBuf::from("/etc/ca"), true)
        );
        assert_eq!(
            c.binds[1],
            (PathBuf::from("/a"), PathBuf::from("/b"), false)
        );
        assert_eq!(
            c.host_path(Path::new("/etc/ca/x.pem")),
            Some((PathBuf::from("/etc/ca/x.pem"), true))
        );
    }

    #[test]
    fn a_bad_build_yml_is_named() {
        let bad = |text: &str| read_build_yml(Path::new("b.yml"), text).expect_err("bad");
        assert!(
            bad("image: x\nconfig:\n  binds:\n    - relative:/x\n").starts_with("b.yml:4: binds:")
        );
        assert!(bad("image: x\nconfig:\n  binds:\n    - /a:/b:weird\n").contains("unknown option"));
        assert!(bad("image: x\nconfig:\n  binds: [\"/a:/b\"]\n").contains("block list"));
        assert!(bad("image: x\nconfig:\n  binds:\n\t- /a:/b\n").contains("tab"));
        assert!(bad("config:\n  binds:\n    - /a:/b\n").contains("no `image:`"));
    }

    #[test]
    fn strings_and_comments_stay_what_they_are() {
        assert_eq!(q("a\u{7f}b\u{85}"), "\"a\\u007fb\\u0085\"");
        assert_eq!(
            q("\u{2028}\u{2029}é\u{1f600}\"\\\t"),
            "\"\\u2028\\u2029\\u00e9\\U0001f600\\\"\\\\\\t\""
        );
        assert_eq!(comment("x\n    pid: host"), "x\\n    pid: host");
        assert_eq!(
            comment("/t\u{2028}  pid: host\u{2029}\u{85}é"),
            "/t\\u{2028}  pid: host\\u{2029}\\u{85}\\u{e9}"
        );
    }
}
