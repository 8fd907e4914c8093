//! `supctl export linuxkit`: every service of the image as linuxkit would run it in a
//! container of its own (the modularization path), from the same definitions zedinit
//! runs. Bind sources are paths inside the zedctr container; linuxkit's are host paths,
//! so each is translated through build.yml's binds (the longest matching container side
//! wins); one that no build.yml bind reaches (a path of the image itself) is an error
//! naming the service and the bind. Oneshots go to `onboot:`, longruns to `services:`;
//! what linuxkit has no word for (dependencies, restart policy, heartbeats, conditions,
//! mkdir owners) is carried as comments, the dependency table first.
//!
//! build.yml is read by a small strict reader of the two things needed (`image:` and
//! `config.binds`), not a YAML library: supctl shares its crate with zedinit, whose link
//! order is by symbol name, and a new dependency would rename them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use zedctr::spec::{IdRef, RunSpec, ServiceSpec, ServiceType};

/// What build.yml says about the zedctr container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub image: String,
    /// (host, container) pairs.
    pub binds: Vec<(PathBuf, PathBuf)>,
}

/// Reads `image:` and the list under `config:` → `binds:` (`- host:container[:opts]`).
pub fn read_build_yml(file: &Path, text: &str) -> Result<Container, String> {
    let at = |line: usize, what: &str| format!("{}:{line}: {what}", file.display());
    let mut image = None;
    let mut binds = Vec::new();
    let mut in_config = false;
    let mut in_binds = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = raw.split(" #").next().unwrap_or("").trim_end();
        if content.trim().is_empty() || content.trim_start().starts_with('#') {
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        let item = content.trim();
        if indent == 0 {
            in_config = item == "config:";
            in_binds = false;
            if let Some(value) = item.strip_prefix("image:") {
                image = Some(unquote(value.trim()).to_string());
            }
            continue;
        }
        if in_config && indent == 2 {
            in_binds = item == "binds:";
            continue;
        }
        if in_binds && let Some(value) = item.strip_prefix("- ") {
            let value = unquote(value.trim());
            let mut parts = value.split(':');
            let (Some(host), Some(container)) = (parts.next(), parts.next()) else {
                return Err(at(line, &format!("binds: {value:?} is not host:container")));
            };
            if !host.starts_with('/') || !container.starts_with('/') {
                return Err(at(
                    line,
                    &format!("binds: {value:?}: both sides must be absolute"),
                ));
            }
            binds.push((PathBuf::from(host), PathBuf::from(container)));
        }
    }
    let image = image.ok_or_else(|| format!("{}: no `image:`", file.display()))?;
    if binds.is_empty() {
        return Err(format!("{}: no `config:` → `binds:` list", file.display()));
    }
    Ok(Container { image, binds })
}

fn unquote(text: &str) -> &str {
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .or_else(|| text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')))
        .unwrap_or(text)
}

impl Container {
    /// The host path behind `path` inside the container: through the bind whose container
    /// side is the longest prefix of it (by whole components). `None`: no bind reaches it.
    pub fn host_path(&self, path: &Path) -> Option<PathBuf> {
        self.binds
            .iter()
            .filter_map(|(host, container)| {
                Some((host, container, path.strip_prefix(container).ok()?))
            })
            .max_by_key(|(_, container, _)| container.components().count())
            .map(|(host, _, rest)| {
                if rest.as_os_str().is_empty() {
                    host.clone()
                } else {
                    host.join(rest)
                }
            })
    }
}

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

fn q(text: &str) -> String {
    // JSON strings are YAML strings.
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

fn id(id: &IdRef) -> String {
    match id {
        IdRef::Id(n) => n.to_string(),
        IdRef::Name(name) => q(name),
    }
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// The linuxkit YAML for `specs` (in dependency order as given), or every problem found.
pub fn linuxkit(specs: &[&ServiceSpec], container: &Container) -> Result<String, Vec<String>> {
    let mut errors = Vec::new();
    let mut onboot = String::new();
    let mut services = String::new();
    for spec in specs {
        let Some(run) = &spec.run else {
            errors.push(format!(
                "{}: {}: no [run]: it shares zedinit's root and privileges and has no container of its own to export",
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
        let _ = writeln!(out, "#   {}: {deps}", spec.name);
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
    // `OnFailure` → `on-failure`: the definitions' own spelling.
    let policy = format!("{:?}", spec.restart.policy)
        .chars()
        .enumerate()
        .fold(String::new(), |mut out, (i, c)| {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
            out
        });
    let mut notes = vec![format!(
        "zedinit: critical {}, restart {policy}",
        spec.critical
    )];
    if let Some(condition) = &spec.condition {
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
        let _ = writeln!(e, "    # {note}");
    }
    let command: Vec<String> = spec.command.iter().map(|a| q(a)).collect();
    let _ = writeln!(e, "    command: {}", list(&command));
    let caps: Vec<String> = run
        .capabilities
        .iter()
        .map(|c| q(zedctr::caps::name(*c)))
        .collect();
    let _ = writeln!(e, "    capabilities: {}", list(&caps));
    if !run.ambient.is_empty() {
        let ambient: Vec<String> = run
            .ambient
            .iter()
            .map(|c| q(zedctr::caps::name(*c)))
            .collect();
        let _ = writeln!(e, "    ambient: {}", list(&ambient));
    }
    let mut binds = Vec::new();
    for bind in &run.binds {
        match container.host_path(&bind.src) {
            Some(host) => binds.push(q(&format!(
                "{}:{}{}",
                host.display(),
                bind.dst.display(),
                if bind.readonly { ":ro" } else { "" }
            ))),
            None => errors.push(problem(format!(
                "bind {}:{}: {} is not bound into the zedctr container by build.yml (it is the \
                 image's own), so it has no host path",
                bind.src.display(),
                bind.dst.display(),
                bind.src.display()
            ))),
        }
    }
    let _ = writeln!(e, "    binds: {}", list(&binds));
    // zedinit gives every confined service a /run of its own.
    let _ = writeln!(
        e,
        "    mounts: [{{type: tmpfs, source: tmpfs, destination: /run, options: [nosuid, nodev, \"mode=755\"]}}]"
    );
    let _ = writeln!(e, "    net: {}", if run.net_none { "new" } else { "host" });
    let _ = writeln!(e, "    readonly: {}", run.readonly);
    if let Some(uid) = &run.uid {
        let _ = writeln!(e, "    uid: {}", id(uid));
    }
    if let Some(gid) = &run.gid {
        let _ = writeln!(e, "    gid: {}", id(gid));
    }
    if !run.additional_gids.is_empty() {
        let gids: Vec<String> = run.additional_gids.iter().map(id).collect();
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
    // mkdir: made inside the service's own view by zedinit; for linuxkit, the host side
    // of the bind it lies under (runtime.mkdir makes host directories, without owners).
    let mut mkdirs = Vec::new();
    for dir in &run.mkdir {
        let host = run
            .binds
            .iter()
            .filter_map(|b| Some((b, dir.path.strip_prefix(&b.dst).ok()?)))
            .max_by_key(|(b, _)| b.dst.components().count())
            .and_then(|(b, rest)| container.host_path(&b.src.join(rest)));
        match host {
            Some(host) => {
                let owner = match &dir.owner {
                    Some((user, group)) => format!(
                        "{}{}",
                        id(user).trim_matches('"'),
                        group
                            .as_ref()
                            .map(|g| format!(":{}", id(g).trim_matches('"')))
                            .unwrap_or_default()
                    ),
                    None => "root".into(),
                };
                let _ = writeln!(
                    e,
                    "    # zedinit makes {} owned by {owner}, mode {:04o}: linuxkit's mkdir sets neither",
                    dir.path.display(),
                    dir.mode
                );
                mkdirs.push(q(&host.display().to_string()));
            }
            // In its own /run (a tmpfs): nothing on the host to make.
            None if dir.path.starts_with("/run") => {
                let _ = writeln!(
                    e,
                    "    # zedinit makes {} in its own /run (mode {:04o}): make it when the container starts",
                    dir.path.display(),
                    dir.mode
                );
            }
            None => errors.push(problem(format!(
                "mkdir {}: not under any of its binds, so it has no host path",
                dir.path.display()
            ))),
        }
    }
    if !mkdirs.is_empty() {
        let _ = writeln!(e, "    runtime:\n      mkdir: {}", list(&mkdirs));
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

    fn container() -> Container {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../build.yml"))
            .expect("build.yml");
        read_build_yml(Path::new("build.yml"), &text).expect("build.yml reads")
    }

    #[test]
    fn build_yml_gives_the_image_and_its_binds() {
        let c = container();
        assert_eq!(c.image, "zedctr");
        assert!(
            c.binds
                .contains(&(PathBuf::from("/"), PathBuf::from("/hostfs")))
        );
        assert!(
            c.binds
                .contains(&(PathBuf::from("/var/log"), PathBuf::from("/var/log/dom0")))
        );
    }

    #[test]
    fn container_paths_become_host_paths_through_the_longest_bind() {
        let c = container();
        let host = |p: &str| c.host_path(Path::new(p)).map(|h| h.display().to_string());
        assert_eq!(
            host("/hostfs/persist/downloads").as_deref(),
            Some("/persist/downloads")
        );
        assert_eq!(host("/run/downloader").as_deref(), Some("/run/downloader"));
        assert_eq!(
            host("/var/log/dom0/zedctr").as_deref(),
            Some("/var/log/zedctr")
        );
        assert_eq!(host("/hostfs").as_deref(), Some("/"));
        // Whole components only, and the image's own paths have none.
        assert_eq!(host("/runner"), None);
        assert_eq!(host("/usr/share/zedctr"), None);
    }

    #[test]
    fn a_bad_build_yml_is_named() {
        let e = read_build_yml(
            Path::new("b.yml"),
            "image: x\nconfig:\n  binds:\n    - relative:/x\n",
        )
        .expect_err("bad");
        assert!(e.starts_with("b.yml:4: binds:"), "{e}");
        assert!(read_build_yml(Path::new("b.yml"), "config:\n  binds:\n    - /a:/b\n").is_err());
    }
}
