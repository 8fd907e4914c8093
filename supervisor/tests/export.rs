//! `supctl export linuxkit` on the image's own definitions and build.yml: YAML that
//! parses (python3-yaml, as linuxkit's own tooling reads it), every service in its
//! section with its declared privileges, bind sources translated to host paths; and a
//! bind no build.yml bind reaches is an error naming the service and the bind.

mod common;

use common::SUPCTL;
use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn export(services: &str) -> std::process::Output {
    Command::new(SUPCTL)
        .args([
            "export",
            "linuxkit",
            "--services-dir",
            services,
            "--build-yml",
        ])
        .arg(format!("{ROOT}/build.yml"))
        .output()
        .expect("supctl export")
}

/// The YAML as JSON, through python3's yaml (a real YAML reader).
fn parsed(yaml: &[u8]) -> serde_json::Value {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (scripts/install-deps installs python3-yaml)");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml)
        .expect("write");
    let out = child.wait_with_output().expect("python3");
    assert!(out.status.success(), "the export is YAML");
    serde_json::from_slice(&out.stdout).expect("json")
}

fn entry<'a>(doc: &'a serde_json::Value, section: &str, name: &str) -> &'a serde_json::Value {
    doc[section]
        .as_array()
        .and_then(|entries| entries.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("{name} in {section}: {doc}"))
}

/// The entry's mount at `destination`.
fn mount<'a>(entry: &'a serde_json::Value, destination: &str) -> &'a serde_json::Value {
    entry["mounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["destination"] == destination))
        .unwrap_or_else(|| panic!("a mount at {destination}: {entry}"))
}

#[test]
fn the_images_services_export_as_linuxkit_containers_with_host_paths() {
    let out = export(&format!("{ROOT}/rootfs/etc/zedctr/services"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = parsed(&out.stdout);
    // Binds as zedinit makes them: non-recursive, private.
    let dirs = entry(&doc, "onboot", "zedctr-dirs");
    assert_eq!(mount(dirs, "/hostfs")["source"], "/");
    assert_eq!(
        mount(dirs, "/hostfs")["options"],
        serde_json::json!(["bind", "rprivate"])
    );
    assert_eq!(
        mount(dirs, "/run")["type"],
        "bind",
        "a bound /run gets no tmpfs over it"
    );
    let downloader = entry(&doc, "services", "downloader");
    assert_eq!(downloader["image"], "zedctr");
    assert_eq!(downloader["capabilities"], serde_json::json!([]));
    assert_eq!(downloader["uid"], "nobody");
    assert_eq!(downloader["readonly"], true);
    // /hostfs/persist/downloads in the container is the host's /persist/downloads.
    assert_eq!(
        mount(downloader, "/persist/downloads")["source"],
        "/persist/downloads"
    );
    assert_eq!(downloader["runtime"]["mkdir"][2], "/persist/downloads");
    let logtail = entry(&doc, "services", "logtail");
    assert_eq!(
        logtail["capabilities"],
        serde_json::json!(["CAP_DAC_READ_SEARCH"])
    );
    assert_eq!(
        logtail["ambient"],
        serde_json::json!(["CAP_DAC_READ_SEARCH"])
    );
    assert_eq!(logtail["net"], "new");
    assert_eq!(
        mount(logtail, "/run")["type"],
        "tmpfs",
        "its own /run, as zedinit gives it"
    );
    let sshd = entry(&doc, "services", "sshd");
    assert_eq!(mount(sshd, "/config")["source"], "/var/config");
    assert_eq!(
        mount(sshd, "/config")["options"],
        serde_json::json!(["bind", "rprivate", "ro"])
    );
    assert_eq!(
        mount(sshd, "/run/sshd")["type"],
        "tmpfs",
        "its privilege separation directory"
    );
    let watchdog = entry(&doc, "services", "zedwatchdog");
    assert_eq!(
        mount(watchdog, "/run")["options"],
        serde_json::json!(["bind", "rprivate", "ro"])
    );
    assert_eq!(watchdog["devices"][0]["path"], "/dev/watchdog");
    assert_eq!(watchdog["devices"][0]["major"], 10);
    // The dependency table comes along as comments.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("#   downloader: requires zedctr-dirs"),
        "{text}"
    );
}

#[test]
fn a_bind_of_the_images_own_path_cannot_be_exported() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.toml"),
        "command = [\"/bin/true\"]\n[run]\nbinds = [\"/usr/share/zoneinfo:/zoneinfo:ro\"]\n",
    )
    .expect("definition");
    std::fs::write(dir.path().join("dev.toml"), "command = [\"/bin/true\"]\n").expect("definition");
    let out = export(&dir.path().display().to_string());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad: bind /usr/share/zoneinfo:/zoneinfo"),
        "{stderr}"
    );
    assert!(stderr.contains("dev: no [run]"), "{stderr}");
}
