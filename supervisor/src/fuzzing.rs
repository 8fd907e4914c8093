//! One entry point per fuzz target of this crate (`fuzz/fuzz_targets/`): a plain
//! function of the input bytes that returns on any input, panicking only when a parser
//! panicked or a checked property broke. `tests/fuzz_corpus.rs` replays the committed
//! corpus (`fuzz/corpus/<target>/`) through the same functions on the stable toolchain.
//! Nothing here is called by zedinit or supctl.

use crate::control::{Outcome, Supervisor};
use crate::core::{Core, Executor, Spawned};
use crate::export::{self, Container};
use crate::parse::{self, Definition, Loaded};
use crate::protocol::{MAX_REQUEST_BYTES, Response};
use crate::spec::{IdRef, ServiceSpec};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The repository's build.yml: the container every export target exports into.
const BUILD_YML: &str = include_str!("../../build.yml");

/// A service definition file (`<name>.toml`), then the graph checks a load runs on it.
pub fn definition(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_definition(text);
}

/// The `[run]` table: the input is the table's body, after a valid `command`.
pub fn run_table(data: &[u8]) {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    check_definition(&format!("command = [\"/bin/true\"]\n[run]\n{body}"));
}

fn check_definition(text: &str) -> Option<Definition> {
    let file = Path::new("/etc/zedctr/services/svc.toml");
    let lines = text.lines().count().max(1);
    match parse::parse_definition("svc", file, text) {
        Ok(def) => {
            assert_eq!(def.spec.name, "svc");
            assert!(!def.spec.command.is_empty(), "a service runs something");
            let mut loaded = Loaded::default();
            loaded.definitions.insert("svc".into(), def.clone());
            crate::graph::validate(&mut loaded);
            let _ = crate::graph::start_order(&loaded.specs());
            Some(def)
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a refusal says why");
            for e in &errors {
                // TOML's own errors may point one past the last line (end of input).
                assert!(e.line.is_none_or(|l| l >= 1 && l <= lines + 1), "{e}");
                let _ = e.to_string();
            }
            None
        }
    }
}

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
    let section = if spec.kind == crate::spec::ServiceType::Oneshot {
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

/// Bytes a client sends on the control socket, cut into requests as the server cuts
/// them and answered by a supervisor of three services (a recording executor: no
/// process). Every answer is one line of JSON that reads back as a response.
/// The first byte says how the rest arrives (read sizes of 1 to 256 bytes).
pub fn control(data: &[u8]) {
    let Some((&size, stream)) = data.split_first() else {
        return;
    };
    let chunks: Vec<&[u8]> = stream.chunks(usize::from(size) + 1).collect();
    let Ok(requests) = crate::server::requests_in(&chunks) else {
        return;
    };
    let mut sup = supervisor();
    let mut now = Instant::now();
    for request in requests.into_iter().flatten() {
        assert!(request.len() <= MAX_REQUEST_BYTES);
        if request.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        now += Duration::from_millis(100);
        let response = match sup.handle_line(&request, now) {
            Outcome::Reply(r) | Outcome::Shutdown(r) => r,
            Outcome::Follow { response, .. } => response,
            Outcome::Wait { goal, .. } => match sup.check(&goal) {
                Some(r) => r,
                None => sup.timed_out(&goal),
            },
        };
        let line = response.to_line();
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let back: Response = serde_json::from_slice(&line).expect("an answer reads back");
        assert_eq!(back, response);
        sup.core.reconcile(now);
    }
}

const SERVICES: [(&str, &str); 3] = [
    ("prepare", "command = [\"/bin/true\"]\ntype = \"oneshot\"\n"),
    (
        "app",
        "command = [\"/bin/app\"]\nrequires = [\"prepare\"]\n[ready]\nfile = \"/run/app.ready\"\n",
    ),
    ("ticker", "command = [\"/bin/ticker\"]\nafter = [\"app\"]\n"),
];

fn supervisor() -> Supervisor<Recorder> {
    let mut loaded = Loaded::default();
    for (name, text) in SERVICES {
        let file = PathBuf::from(format!("/defs/{name}.toml"));
        if let Ok(def) = parse::parse_definition(name, &file, text) {
            loaded.definitions.insert(name.into(), def);
        }
    }
    crate::graph::validate(&mut loaded);
    let mut core = Core::new(Recorder::default(), loaded, 7);
    core.reconcile(Instant::now());
    Supervisor {
        core,
        // A rescan reads no directory (and so removes every service): no file access.
        dirs: Vec::new(),
        pid: 1,
        subreaper: false,
        rescans: 0,
    }
}

/// Spawns nothing: hands out pids and says every one exec'd.
#[derive(Default)]
struct Recorder {
    next_pid: i32,
}

impl Executor for Recorder {
    fn spawn(&mut self, _spec: &ServiceSpec) -> Result<Spawned, String> {
        self.next_pid += 1;
        Ok(Spawned {
            pid: 100 + self.next_pid,
            exec_confirmed: true,
        })
    }
    fn signal_group(&mut self, _pgid: i32, _signal: Signal) {}
    fn signal_process(&mut self, _pid: i32, _signal: Signal) -> Result<(), String> {
        Ok(())
    }
    fn path_exists(&self, path: &Path) -> bool {
        path == Path::new("/run/app.ready")
    }
    fn spawn_probe(&mut self, _spec: &ServiceSpec, _main_pid: i32) -> Result<i32, String> {
        self.next_pid += 1;
        Ok(100 + self.next_pid)
    }
    fn belongs_to(&self, pid: i32, main_pid: i32) -> bool {
        pid == main_pid
    }
    fn release(&mut self, _name: &str) {}
    fn kill_leftovers(&mut self, _pgid: i32) {}
    fn log_tail(&self, name: &str, n: usize) -> Vec<String> {
        (0..n.min(3)).map(|i| format!("{name} line {i}")).collect()
    }
}
