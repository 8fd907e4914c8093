//! One entry point per fuzz target of this crate (`fuzz/fuzz_targets/`): a plain
//! function of the input bytes that returns on any input, panicking only when a parser
//! panicked or a checked property broke. `tests/fuzz_corpus.rs` replays the committed
//! corpus (`fuzz/corpus/<target>/`) through the same functions on the stable toolchain.
//! Nothing here is called by supctl.

use crate::export::{self, Container};
use serde_json::Value;
use std::path::Path;
use zedinit::fuzzing::check_definition;
use zedinit::spec::{IdRef, ServiceSpec};

/// The repository's build.yml: the container every export target exports into.
const BUILD_YML: &str = include_str!("../../../build.yml");

/// build.yml as `supctl export linuxkit` reads it; what it gives maps paths sanely.
pub fn build_yml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(container) = export::read_build_yml(Path::new("build.yml"), text) else {
        return;
    };
    assert!(!container.binds.is_empty());
    for (host, inside, _) in &container.binds {
        assert!(host.is_absolute() && inside.is_absolute());
        for path in [inside.clone(), inside.join("x/y"), inside.join("../z")] {
            if let Some((found, _)) = container.host_path(&path) {
                let hosts = container.binds.iter().map(|(h, _, _)| h);
                assert!(
                    hosts.clone().any(|h| found.starts_with(h)),
                    "{path:?} → {found:?} is under no bind's host side"
                );
                assert!(!found.to_string_lossy().split('/').any(|p| p == ".."));
            }
        }
    }
}

/// Parses YAML into a JSON value (the caller's YAML library: this crate has none, see
/// `export`).
pub type YamlReader<'a> = &'a dyn Fn(&str) -> Result<Value, String>;

/// A definition exported as linuxkit YAML, read back by a real YAML reader and compared
/// with the definition: the writer's quoting and comments must keep every value as it is
/// and add no key (a name or path must not become `pid: host`).
pub fn export(data: &[u8], read_yaml: YamlReader<'_>) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(def) = check_definition(text) else {
        return;
    };
    let spec = def.spec;
    let container = match export::read_build_yml(Path::new("build.yml"), BUILD_YML) {
        Ok(container) => container,
        Err(e) => panic!("the repository's build.yml: {e}"),
    };
    let Ok(yaml) = export::linuxkit(&[&spec], &container) else {
        return;
    };
    let doc =
        read_yaml(&yaml).unwrap_or_else(|e| panic!("exported YAML does not parse: {e}\n{yaml}"));
    compare_export(&doc, &spec, &container, &yaml);
}

const ENTRY_KEYS: [&str; 18] = [
    "name",
    "image",
    "command",
    "capabilities",
    "ambient",
    "mounts",
    "net",
    "readonly",
    "uid",
    "gid",
    "additionalGids",
    "noNewPrivileges",
    "oomScoreAdj",
    "rlimits",
    "env",
    "cwd",
    "devices",
    "runtime",
];

fn compare_export(doc: &Value, spec: &ServiceSpec, container: &Container, yaml: &str) {
    let Some(top) = doc.as_object() else {
        panic!("not a mapping:\n{yaml}");
    };
    let section = if spec.kind == zedinit::spec::ServiceType::Oneshot {
        "onboot"
    } else {
        "services"
    };
    let keys: Vec<&String> = top.keys().collect();
    assert_eq!(keys, [section], "top-level keys\n{yaml}");
    let entries = top[section].as_array().expect("a list of entries");
    assert_eq!(entries.len(), 1, "one entry\n{yaml}");
    let entry = entries[0].as_object().expect("an entry is a mapping");
    for key in entry.keys() {
        assert!(
            ENTRY_KEYS.contains(&key.as_str()),
            "key {key:?} added\n{yaml}"
        );
    }
    let run = spec.run.as_ref().expect("exported: has [run]");
    let text = |v: &Value| v.as_str().map(str::to_string);
    let texts = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(text).collect())
            .unwrap_or_default()
    };
    assert_eq!(text(&entry["name"]).as_deref(), Some(spec.name.as_str()));
    assert_eq!(text(&entry["image"]), Some(container.image.clone()));
    assert_eq!(texts(entry.get("command")), spec.command, "command\n{yaml}");
    let env: Vec<String> = run.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(texts(entry.get("env")), env, "env\n{yaml}");
    let cwd = run.cwd.as_ref().map(|c| c.display().to_string());
    assert_eq!(entry.get("cwd").and_then(text), cwd, "cwd\n{yaml}");
    let id = |id: &IdRef| match id {
        IdRef::Id(n) => Value::from(*n),
        IdRef::Name(name) => Value::from(name.clone()),
    };
    assert_eq!(entry.get("uid"), run.uid.as_ref().map(id).as_ref(), "uid");
    assert_eq!(entry.get("gid"), run.gid.as_ref().map(id).as_ref(), "gid");
    let destinations: Vec<String> = entry["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter(|m| m["type"] == "bind")
        .filter_map(|m| text(&m["destination"]))
        .collect();
    let binds: Vec<String> = run
        .binds
        .iter()
        .map(|b| b.dst.display().to_string())
        .collect();
    assert_eq!(destinations, binds, "bind destinations\n{yaml}");
}
