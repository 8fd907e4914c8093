//! `supctl export linuxkit` on the image's own definitions and build.yml: YAML that
//! parses (python3-yaml, as linuxkit's own tooling reads it), every service in its
//! section with its declared privileges, bind sources translated to host paths; and a
//! bind no build.yml bind reaches is an error naming the service and the bind.

use std::process::Command;

const SUPCTL: &str = env!("CARGO_BIN_EXE_supctl");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn export(services: &str) -> std::process::Output {
    let root = image_root("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    export_with_root(services, root.path())
}

/// A root with the image's users (as bookworm has them, plus `passwd`) and groups.
fn image_root(passwd: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(root.path().join("etc")).expect("etc");
    std::fs::write(
        root.path().join("etc/passwd"),
        format!("root:x:0:0:root:/root:/bin/bash\n{passwd}"),
    )
    .expect("passwd");
    std::fs::write(
        root.path().join("etc/group"),
        "root:x:0:\nnogroup:x:65534:\n",
    )
    .expect("group");
    root
}

fn export_with_root(services: &str, root: &std::path::Path) -> std::process::Output {
    Command::new(SUPCTL)
        .args([
            "export",
            "linuxkit",
            "--services-dir",
            services,
            "--build-yml",
        ])
        .arg(format!("{ROOT}/build.yml"))
        .arg("--root")
        .arg(root)
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
    assert_eq!(mount(dirs, "/persist")["source"], "/persist");
    assert_eq!(
        mount(dirs, "/persist")["options"],
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
    // Numbers, from the image's /etc/passwd and /etc/group: linuxkit would read the
    // names as users of its own making.
    assert_eq!(downloader["uid"], 65534);
    assert_eq!(downloader["gid"], 65534);
    assert_eq!(downloader["readonly"], true);
    // /persist/downloads in the container is the host's /persist/downloads.
    assert_eq!(
        mount(downloader, "/persist/downloads")["source"],
        "/persist/downloads"
    );
    assert_eq!(downloader["runtime"]["mkdir"][2], "/persist/downloads");
    // It sees the network instances and their leases (`.local` datastores), read-only.
    for dir in ["/run/zedctr/network-instances", "/run/zedctr/dnsmasq"] {
        assert_eq!(mount(downloader, dir)["source"], dir);
        assert_eq!(
            mount(downloader, dir)["options"],
            serde_json::json!(["bind", "rprivate", "ro"])
        );
    }
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
    // Without zedinit ([export]): it feeds on EVE's registrations, in the host's pids.
    let command = watchdog["command"].to_string();
    assert!(command.contains("\"--without-zedinit\""), "{command}");
    assert_eq!(watchdog["pid"], "host");
    // dnsmasq-render runs its dnsmasq itself, on the bridges, with dnsmasq's privileges,
    // and binds no control socket.
    let render = entry(&doc, "services", "dnsmasq-render");
    assert!(
        render["command"].to_string().contains("\"--supervise\""),
        "{render}"
    );
    assert_eq!(render["net"], "host");
    for cap in ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_KILL"] {
        assert!(
            render["capabilities"]
                .as_array()
                .is_some_and(|c| c.iter().any(|x| x == cap)),
            "{cap}: {render}"
        );
    }
    assert!(
        !render.to_string().contains("control.sock"),
        "no control socket without zedinit: {render}"
    );
    // The dependency table comes along as comments.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("#   downloader: requires zedctr-dirs"),
        "{text}"
    );
}

#[test]
fn a_user_the_image_lacks_cannot_be_exported() {
    let root = image_root("");
    let out = export_with_root(&format!("{ROOT}/rootfs/etc/zedctr/services"), root.path());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("downloader: uid: user \"nobody\" is not in the image's /etc/passwd"),
        "{stderr}"
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

/// `text` as a TOML basic string, everything outside printable ASCII as `\u`/`\U`
/// escapes (so the definition holds exactly these characters, whatever they are).
fn toml_quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

#[test]
fn yaml_line_breaks_and_controls_in_a_definition_stay_inside_their_values() {
    // NEL, LS and PS end a line for YAML 1.1 readers (PyYAML, libyaml, go-yaml): in a
    // comment they used to end it, and the rest became keys of the entry.
    let inject =
        "\u{2028}    pid: host\u{2029}    binds: [\"/:/hostroot\"] #\u{85}    privileged: true";
    let command = [
        "/usr/bin/tool".to_string(),
        format!("--name=a{inject}"),
        "esc\u{1b}[2J c1\u{9b}31m del\u{7f} nl\n tab\t é \u{1f600}".to_string(),
    ];
    let condition = format!("/usr/bin/tool{inject}");
    // A bind source can't hold `:` (it separates source and destination).
    let source = "/run/src\u{2028}    privileged\u{2029}true\u{85}x";
    let bound_dir = format!("/data/m{inject}");
    let own_run_dir = format!("/run/t{inject}");
    let cwd = format!("/data/w{inject}");
    let env = format!("K=v{inject}\u{1b}]0;t\u{7}");
    let definition = format!(
        "command = [{}]\ntype = \"oneshot\"\ncondition-path-exists = {}\n\
         [run]\ncapabilities = []\nreadonly = true\nnet = \"none\"\ncwd = {}\nenv = [{}]\n\
         binds = [{}]\n\
         mkdir = [{{ path = {}, owner = \"root:root\", mode = \"0750\" }}, {{ path = {}, mode = \"0700\" }}]\n",
        command
            .iter()
            .map(|a| toml_quoted(a))
            .collect::<Vec<_>>()
            .join(", "),
        toml_quoted(&condition),
        toml_quoted(&cwd),
        toml_quoted(&env),
        toml_quoted(&format!("{source}:/data")),
        toml_quoted(&bound_dir),
        toml_quoted(&own_run_dir),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("innocent.toml"), &definition).expect("definition");
    let out = export(&dir.path().display().to_string());
    assert!(
        out.status.success(),
        "{}\n{definition}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout
            .iter()
            .all(|b| *b == b'\n' || (0x20..0x7f).contains(b)),
        "the export is printable ASCII, one line per line: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let doc = parsed(&out.stdout);
    let keys = |v: &serde_json::Value| {
        let mut keys: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    };
    assert_eq!(keys(&doc), ["onboot"], "{doc}");
    let entries = doc["onboot"].as_array().expect("onboot list");
    assert_eq!(entries.len(), 1, "{doc}");
    let e = &entries[0];
    assert_eq!(
        keys(e),
        [
            "capabilities",
            "command",
            "cwd",
            "env",
            "image",
            "mounts",
            "name",
            "net",
            "readonly",
            "runtime"
        ],
        "no injected key: {e}"
    );
    assert_eq!(e["name"], "innocent");
    assert_eq!(e["command"], serde_json::json!(command));
    assert_eq!(e["env"], serde_json::json!([env]));
    assert_eq!(e["cwd"], cwd.as_str());
    assert_eq!(e["net"], "new");
    assert_eq!(e["readonly"], true);
    // The bind's source is a host path through build.yml's /run:/run.
    assert_eq!(mount(e, "/data")["source"], source);
    assert_eq!(mount(e, &own_run_dir)["type"], "tmpfs");
    assert_eq!(
        e["runtime"],
        serde_json::json!({"mkdir": [format!("{source}/m{inject}")]})
    );
    let mounts: Vec<&str> = e["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["destination"].as_str())
        .collect();
    assert_eq!(mounts, ["/run", own_run_dir.as_str(), "/data"], "{e}");
    // The comments still say what zedinit does, escaped, on their own lines.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("#   innocent: none\n")
            && text.contains("# zedinit runs it only if /usr/bin/tool\\u{2028}    pid: host"),
        "{text}"
    );
}

#[test]
fn docs_services_md_is_the_markdown_export_of_the_shipped_definitions() {
    let out = Command::new(SUPCTL)
        .args([
            "export",
            "markdown",
            "--services-dir",
            &format!("{ROOT}/rootfs/etc/zedctr/services"),
            "--build-yml",
            &format!("{ROOT}/build.yml"),
        ])
        .output()
        .expect("supctl export markdown");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).expect("UTF-8");
    let committed =
        std::fs::read_to_string(format!("{ROOT}/docs/services.md")).expect("docs/services.md");
    assert!(
        committed == generated,
        "docs/services.md is stale: run `supctl export markdown --services-dir \
         rootfs/etc/zedctr/services --build-yml build.yml > docs/services.md` from the \
         repository root"
    );
    // What the document must say of the image, read as a person would.
    for line in [
        "- `sshd`: requires `sshd-keys`; runs only if `/usr/sbin/sshd` exists; reads `/persist/ssh` (its `/persist/ssh`), which `sshd-keys` writes",
        "| `/run/zedctr/dnsmasq` | `dnsmasq-render` rw, `downloader` ro |",
        "| `zedwatchdog` | longrun | no | root | none | none (its own, empty) | zedinit's | read-only | `/dev/watchdog` |",
    ] {
        assert!(generated.contains(line), "missing {line:?}:\n{generated}");
    }
}
