//! One entry point per fuzz target of this crate (`fuzz/fuzz_targets/`): a plain
//! function of the input bytes that returns on any input, panicking only when a parser
//! panicked or a checked property broke. `tests/fuzz_corpus.rs` replays the committed
//! corpus (`fuzz/corpus/<target>/`) through the same functions on the stable toolchain.
//! Nothing here is called by zedinit or supctl.

use crate::core::{Core, Executor, Spawned};
use crate::parse::{self, Definition, Loaded};
use crate::spec::ServiceSpec;
use crate::verbs::{Outcome, Supervisor};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use zedctr_proto::protocol::{MAX_REQUEST_BYTES, Response};

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

pub fn check_definition(text: &str) -> Option<Definition> {
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
        one_off_requests: 0,
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
