//! build.yml against the image's own definitions (rootfs/etc/zedctr/services/ and what
//! dnsmasq-render generates): its capabilities are exactly the union of zedinit's own
//! (`caps::ZEDINIT_OWN`) and every service's declared ones, computed here from the
//! definitions as zedinit parses them, never `all`; its `devices:` are exactly the
//! devices the definitions declare; every shipped definition is confined (`[run]`) and
//! says whether it is critical.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use zedinit::caps;
use zedinit::parse::load_dirs;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const DNSMASQ_RENDER: &str = "dnsmasq-render";

/// The items of the block list under `config:` → `key:` (`    - item` lines, comments
/// dropped), or under `    - path:` for devices.
fn build_yml_list(key: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("{ROOT}/build.yml")).expect("build.yml");
    let mut inside = false;
    let mut items = Vec::new();
    for line in text.lines() {
        let content = line.split(" #").next().unwrap_or("").trim_end();
        if content.trim().is_empty() || content.trim_start().starts_with('#') {
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        if indent <= 2 {
            inside = content.trim() == format!("{key}:");
            continue;
        }
        if inside && let Some(item) = content.trim().strip_prefix("- ") {
            let item = item.strip_prefix("path:").unwrap_or(item);
            items.push(item.trim().trim_matches('"').to_string());
        }
    }
    items
}

/// dnsmasq-render's binary (another package's: the harness finds or builds it).
fn dnsmasq_render() -> PathBuf {
    lab::bin(DNSMASQ_RENDER)
}

/// The shipped definitions, then a dnsmasq@<bridge> as dnsmasq-render generates it for a
/// network instance with DHCP (the generated definitions run in the same container).
fn all_definitions(dir: &Path) -> zedinit::parse::Loaded {
    let (instances, out, generated) = (dir.join("ni"), dir.join("out"), dir.join("gen"));
    for d in [&instances, &out, &generated] {
        std::fs::create_dir(d).expect("dir");
    }
    std::fs::write(
        instances.join("blue.toml"),
        "bridge = \"bn1\"\nipv4 = \"10.1.0.1/24\"\ndhcp-range = \"10.1.0.100,10.1.0.200\"\n",
    )
    .expect("instance");
    // It asks zedinit to rescan at the end, and there is none: exit 1, files written.
    let _ = Command::new(dnsmasq_render())
        .arg("--once")
        .arg("--network-instances")
        .arg(&instances)
        .arg("--out-dir")
        .arg(&out)
        .arg("--services-dir")
        .arg(&generated)
        .arg("--control-socket")
        .arg(dir.join("no-zedinit.sock"))
        .output()
        .expect("dnsmasq-render");
    assert!(
        generated.join("dnsmasq@bn1.toml").exists(),
        "dnsmasq-render generated dnsmasq@bn1"
    );
    let loaded = load_dirs(&[
        PathBuf::from(format!("{ROOT}/rootfs/etc/zedctr/services")),
        generated,
    ]);
    assert!(
        loaded.errors.is_empty(),
        "the definitions parse: {:?}",
        loaded.errors
    );
    assert!(loaded.definitions.contains_key("dnsmasq@bn1"));
    loaded
}

#[test]
fn build_yml_capabilities_are_the_union_of_zedinits_and_every_services() {
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = all_definitions(dir.path());
    let mut union: BTreeSet<String> = caps::ZEDINIT_OWN
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    for (name, definition) in &loaded.definitions {
        let run = definition
            .spec
            .run
            .as_ref()
            .unwrap_or_else(|| panic!("{name} is confined ([run])"));
        union.extend(run.capabilities.iter().map(|c| caps::name(*c).to_string()));
    }
    let declared: BTreeSet<String> = build_yml_list("capabilities").into_iter().collect();
    assert!(
        !declared.iter().any(|c| c.eq_ignore_ascii_case("all")),
        "capabilities: all is what zedctr removes"
    );
    let missing: Vec<_> = union.difference(&declared).collect();
    let extra: Vec<_> = declared.difference(&union).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "build.yml's capabilities must be the union: missing {missing:?}, not needed {extra:?}"
    );
}

#[test]
fn build_yml_devices_are_the_devices_the_definitions_declare() {
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = all_definitions(dir.path());
    let declared: BTreeSet<String> = loaded
        .definitions
        .values()
        .filter_map(|d| d.spec.run.as_ref())
        .flat_map(|run| run.devices.iter().map(|p| p.display().to_string()))
        .collect();
    let listed: BTreeSet<String> = build_yml_list("devices").into_iter().collect();
    assert!(declared.contains("/dev/watchdog"), "zedwatchdog's device");
    assert_eq!(
        listed, declared,
        "build.yml's devices: are what the definitions declare"
    );
}

#[test]
fn every_shipped_definition_is_confined_and_says_whether_it_is_critical() {
    let dir = PathBuf::from(format!("{ROOT}/rootfs/etc/zedctr/services"));
    let loaded = load_dirs(std::slice::from_ref(&dir));
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    for (name, definition) in &loaded.definitions {
        assert!(definition.spec.run.is_some(), "{name}: [run]");
        let text = std::fs::read_to_string(&definition.spec.file).expect("definition");
        assert!(
            text.lines().any(|l| l.starts_with("critical = ")),
            "{name} says whether it is critical, and why"
        );
    }
    // init.sh's duties, each declared (build.yml's comments say which became which).
    for name in [
        "sshd-keys",
        "sshd",
        "crond",
        "tcp-offload",
        "xen",
        "device-steps",
        "logtail",
        "strongswan",
    ] {
        assert!(loaded.definitions.contains_key(name), "{name} is shipped");
    }
}
