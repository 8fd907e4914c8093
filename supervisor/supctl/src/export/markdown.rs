//! `supctl export markdown`: the inter-dependency list of the services (the zedctr
//! document's "TO FILL IN"), generated from the same definitions zedinit runs and the
//! same build.yml the export reads: what each needs from which other (zedinit's order,
//! and the files and sockets they share, with who writes and who reads), their
//! capabilities, namespaces, devices and binds. `docs/services.md` is this output for
//! the image; a test fails when it no longer matches.

use super::build_yml::Container;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use zedinit::spec::{IdRef, RunSpec, ServiceSpec, ServiceType};

/// One bind of one service, on the host's side.
struct Reach<'a> {
    service: &'a str,
    /// The host path the bind's source is (through build.yml's binds).
    host: PathBuf,
    /// Where the service sees it.
    inside: PathBuf,
    writable: bool,
    /// The whole of one of the container's own binds (`/run`, `/persist`...): a service
    /// that sees a whole device tree shares it with everyone, which says nothing of what
    /// it needs; such binds are listed apart.
    whole_tree: bool,
}

/// The document for `specs` (in dependency order), or every bind no build.yml bind
/// reaches.
pub fn markdown(specs: &[&ServiceSpec], container: &Container) -> Result<String, Vec<String>> {
    let mut errors = Vec::new();
    let mut reaches = Vec::new();
    for spec in specs {
        let Some(run) = &spec.run else {
            errors.push(format!(
                "{}: {}: no [run]: not confined, so not a service of the image",
                spec.file.display(),
                spec.name
            ));
            continue;
        };
        for bind in &run.binds {
            match container.host_path(&bind.src) {
                Some((host, container_ro)) => reaches.push(Reach {
                    service: &spec.name,
                    whole_tree: container.binds.iter().any(|(tree, _, _)| *tree == host),
                    host,
                    inside: bind.dst.clone(),
                    writable: !bind.readonly && !container_ro,
                }),
                None => errors.push(format!(
                    "{}: {}: bind {}: no build.yml bind reaches its source",
                    spec.file.display(),
                    spec.name,
                    bind.src.display()
                )),
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut out = String::new();
    header(&mut out);
    services_table(&mut out, specs);
    needs(&mut out, specs, &reaches);
    shared(&mut out, &reaches);
    binds(&mut out, specs, &reaches);
    Ok(out)
}

fn header(out: &mut String) {
    out.push_str(
        "# zedctr's services: what each needs, and what they share\n\n\
         <!-- Generated: supctl export markdown --services-dir rootfs/etc/zedctr/services \
         --build-yml build.yml > docs/services.md. Do not edit by hand: \
         supervisor/supctl/tests/export.rs fails when this no longer matches the \
         definitions. -->\n\n\
         The zedctr document's inter-dependency list, generated from the image's service \
         definitions (`rootfs/etc/zedctr/services/`) and `build.yml`. Each service runs \
         confined under zedinit as if it were a container of its own, and could be split \
         out into one (`supctl export linuxkit`); what it needs from the others is below. \
         Paths are the device's (a service's binds translated through build.yml's). Not \
         listed, as they are not definitions: zedinit itself, which owns \
         `/run/zedctr/control.sock` (the services that talk to it reach it through their \
         `/run/zedctr` binds), and the `dnsmasq@<bridge>` services dnsmasq-render \
         generates at run time, one per network instance (they bind \
         `/run/zedctr/dnsmasq` read-only and their bridge's lease file read-write).\n\n",
    );
}

fn services_table(out: &mut String, specs: &[&ServiceSpec]) {
    out.push_str("## Services\n\n");
    out.push_str(
        "| service | kind | critical | user | capabilities | network | pid | root | devices |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for spec in specs {
        let Some(run) = &spec.run else { continue };
        let kind = match spec.kind {
            ServiceType::Longrun => "longrun",
            ServiceType::Oneshot => "oneshot",
        };
        let caps: Vec<String> = run
            .capabilities
            .iter()
            .map(|c| zedinit::caps::name(*c).to_string())
            .collect();
        let devices: Vec<String> = run.devices.iter().map(code).collect();
        let _ = writeln!(
            out,
            "| {} | {kind} | {} | {} | {} | {} | {} | {} | {} |",
            code(&spec.name),
            if spec.critical { "yes" } else { "no" },
            user(run),
            or_none(&caps.join(", ")),
            if run.net_none {
                "none (its own, empty)"
            } else {
                "the device's"
            },
            if run.pid_new { "its own" } else { "zedinit's" },
            if run.readonly {
                "read-only"
            } else {
                "writable"
            },
            or_none(&devices.join(", ")),
        );
    }
    out.push('\n');
}

fn needs(out: &mut String, specs: &[&ServiceSpec], reaches: &[Reach<'_>]) {
    out.push_str(
        "## What each needs from the others\n\n\
         `requires`: started only once the other runs (or is done), stopped with it; \
         `after`: started after it, if it is there. Shared paths: another service writes \
         what this one reads, or both write it (next section). A service that binds \
         all of one of the container's binds (all of `/run`, say) shares it with every \
         other: that is said once, not as a need of each.\n\n",
    );
    for spec in specs {
        let mut lines = Vec::new();
        for other in &spec.requires {
            lines.push(format!("requires {}", code(other)));
        }
        for other in &spec.after {
            lines.push(format!("starts after {}", code(other)));
        }
        for condition in &spec.conditions {
            lines.push(format!(
                "runs only if {} {}",
                code(&condition.path),
                if condition.negate {
                    "does not exist"
                } else {
                    "exists"
                }
            ));
        }
        for reach in reaches.iter().filter(|r| r.service == spec.name) {
            if reach.whole_tree {
                lines.push(format!(
                    "binds all of {} ({})",
                    code(&reach.host),
                    if reach.writable { "rw" } else { "ro" }
                ));
                continue;
            }
            let writers: Vec<&str> = reaches
                .iter()
                .filter(|o| o.service != spec.name && o.writable && !o.whole_tree)
                .filter(|o| overlap(&o.host, &reach.host))
                .map(|o| o.service)
                .collect();
            if writers.is_empty() {
                continue;
            }
            let mut writers = writers;
            writers.sort_unstable();
            writers.dedup();
            let writers: Vec<String> = writers.iter().map(code).collect();
            lines.push(format!(
                "{} {} (its {}), which {} {}",
                if reach.writable { "shares" } else { "reads" },
                code(&reach.host),
                code(&reach.inside),
                writers.join(", "),
                if writers.len() == 1 {
                    "writes"
                } else {
                    "write"
                }
            ));
        }
        if lines.is_empty() {
            lines.push("nothing from the other services".into());
        }
        let _ = writeln!(out, "- {}: {}", code(&spec.name), lines.join("; "));
    }
    out.push('\n');
}

fn shared(out: &mut String, reaches: &[Reach<'_>]) {
    out.push_str(
        "## Files and sockets they share\n\n\
         Every device path two or more services bind (one's bind may be inside \
         another's), with who may write it (`rw`) and who only reads it (`ro`); then the \
         services that bind all of one of the container's binds.\n\n\
         | device path | services |\n|---|---|\n",
    );
    let specific: Vec<&Reach<'_>> = reaches.iter().filter(|r| !r.whole_tree).collect();
    // Each bound path, with every service whose bind is it, inside it or around it; a
    // service reaching it both ways is `rw`.
    let mut rows: BTreeMap<&Path, BTreeMap<&str, bool>> = BTreeMap::new();
    for reach in &specific {
        let mut who: BTreeMap<&str, bool> = BTreeMap::new();
        for other in specific.iter().filter(|o| overlap(&o.host, &reach.host)) {
            *who.entry(other.service).or_default() |= other.writable;
        }
        if who.len() >= 2 {
            rows.entry(&reach.host).or_insert(who);
        }
    }
    for (path, who) in rows {
        let cells: Vec<String> = who
            .iter()
            .map(|(s, w)| format!("{} {}", code(s), if *w { "rw" } else { "ro" }))
            .collect();
        let _ = writeln!(out, "| {} | {} |", code(path), cells.join(", "));
    }
    out.push_str("\n| all of | services |\n|---|---|\n");
    let mut trees: BTreeMap<&Path, BTreeMap<&str, bool>> = BTreeMap::new();
    for reach in reaches.iter().filter(|r| r.whole_tree) {
        *trees
            .entry(&reach.host)
            .or_default()
            .entry(reach.service)
            .or_default() |= reach.writable;
    }
    for (path, who) in trees {
        let cells: Vec<String> = who
            .iter()
            .map(|(s, w)| format!("{} {}", code(s), if *w { "rw" } else { "ro" }))
            .collect();
        let _ = writeln!(out, "| {} | {} |", code(path), cells.join(", "));
    }
    out.push('\n');
}

fn binds(out: &mut String, specs: &[&ServiceSpec], reaches: &[Reach<'_>]) {
    out.push_str("## Binds, service by service\n\n");
    for spec in specs {
        let list: Vec<String> = reaches
            .iter()
            .filter(|r| r.service == spec.name)
            .map(|r| {
                format!(
                    "{} at {} ({})",
                    code(&r.host),
                    code(&r.inside),
                    if r.writable { "rw" } else { "ro" }
                )
            })
            .collect();
        let _ = writeln!(out, "- {}: {}", code(&spec.name), or_none(&list.join("; ")));
    }
}

/// One path is the other or inside it.
fn overlap(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn user(run: &RunSpec) -> String {
    let id = |id: &IdRef| match id {
        IdRef::Id(n) => n.to_string(),
        IdRef::Name(name) => name.clone(),
    };
    match (&run.uid, &run.gid) {
        (None, _) => "root".into(),
        (Some(uid), None) => code(id(uid)),
        (Some(uid), Some(gid)) => code(format!("{}:{}", id(uid), id(gid))),
    }
}

fn or_none(text: &str) -> String {
    if text.is_empty() {
        "none".into()
    } else {
        text.into()
    }
}

/// `text` as a Markdown code span that stays one table cell: backticks and pipes (a
/// path may hold anything) are replaced, line breaks and other controls escaped.
fn code(text: impl AsRef<Path>) -> String {
    let text = text.as_ref().display().to_string();
    let safe: String = text
        .chars()
        .flat_map(|c| match c {
            '`' => vec!['\''],
            '|' => vec!['/'],
            c if c.is_control() => c.escape_default().collect(),
            c => vec![c],
        })
        .collect();
    format!("`{safe}`")
}

#[cfg(test)]
mod tests {
    use super::*;
    use zedinit::parse::parse_definition;

    fn spec(name: &str, text: &str) -> ServiceSpec {
        let file = PathBuf::from(format!("/defs/{name}.toml"));
        parse_definition(name, &file, text)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .spec
    }

    fn container() -> Container {
        Container {
            image: "zedctr".into(),
            binds: vec![
                ("/run".into(), "/run".into(), false),
                ("/var/config".into(), "/config".into(), false),
            ],
            ..Container::default()
        }
    }

    #[test]
    fn writers_and_readers_of_a_shared_path_are_named_both_ways() {
        let writer = spec(
            "writer",
            "command = [\"/w\"]\n[run]\nbinds = [\"/run/shared:/out\"]\n",
        );
        let reader = spec(
            "reader",
            "command = [\"/r\"]\nrequires = [\"writer\"]\n[run]\nuid = 65534\nbinds = [\"/run/shared/in:/in:ro\"]\ncapabilities = []\n",
        );
        let tree = spec(
            "tree",
            "command = [\"/t\"]\n[run]\nbinds = [\"/run:/run\"]\n",
        );
        let alone = spec(
            "alone",
            "command = [\"/a\"]\n[run]\nnet = \"none\"\nbinds = [\"/config/x:/x:ro\"]\n",
        );
        let doc = markdown(&[&writer, &reader, &alone, &tree], &container()).expect("document");
        assert!(
            doc.contains(
                "- `reader`: requires `writer`; reads `/run/shared/in` (its `/in`), which `writer` writes"
            ),
            "{doc}"
        );
        assert!(
            doc.contains("| `/run/shared` | `reader` ro, `writer` rw |"),
            "{doc}"
        );
        assert!(
            doc.contains("- `tree`: binds all of `/run` (rw)")
                && doc.contains("| `/run` | `tree` rw |"),
            "a whole-tree bind is said apart: {doc}"
        );
        assert!(
            doc.contains("- `alone`: nothing from the other services"),
            "{doc}"
        );
        assert!(
            doc.contains("| `alone` | longrun | no | root | none | none (its own, empty) |"),
            "{doc}"
        );
        assert!(
            !doc.contains("`/config/x` |"),
            "a path one service reaches is not shared"
        );
    }

    #[test]
    fn a_bind_no_build_yml_bind_reaches_is_an_error_naming_it() {
        let odd = spec(
            "odd",
            "command = [\"/o\"]\n[run]\nbinds = [\"/usr/share:/s:ro\"]\n",
        );
        let errors = markdown(&[&odd], &container()).expect_err("unreachable bind");
        assert!(errors[0].contains("odd: bind /usr/share"), "{errors:?}");
    }

    #[test]
    fn names_and_paths_stay_inside_their_cell() {
        assert_eq!(code("a|b`c\nd"), "`a/b'c\\nd`");
    }
}
