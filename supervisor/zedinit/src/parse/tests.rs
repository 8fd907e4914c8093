//! The parser's error reports: one test per kind of error, each asserting file, line
//! and key, plus the load-level checks (duplicates, graph problems).

use super::*;
use std::fs;

fn errors_of(name: &str, text: &str) -> Vec<ConfigError> {
    let file = PathBuf::from(format!("/defs/{name}.toml"));
    match parse_definition(name, &file, text) {
        Ok(d) => panic!("expected errors, got {:?}", d.spec),
        Err(errors) => errors,
    }
}

/// Asserts exactly one error, at `line` and `key`, whose message contains `needle`.
fn one(name: &str, text: &str, line: Option<usize>, key: Option<&str>, needle: &str) {
    let errors = errors_of(name, text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = &errors[0];
    assert_eq!(e.file, PathBuf::from(format!("/defs/{name}.toml")));
    assert_eq!(e.line, line, "{e}");
    assert_eq!(e.key.as_deref(), key, "{e}");
    assert!(e.message.contains(needle), "{e:?} lacks {needle:?}");
}

#[test]
fn a_good_definition_gets_its_values_and_defaults() {
    let text = r#"
command = ["/usr/bin/downloader", "serve"]
type = "longrun"
after = ["netinst"]
requires = ["netinst"]
condition-path-exists = "!/run/nodownload"
critical = true
reload-signal = "USR1"
stop-last = true
[restart]
policy = "on-failure"
backoff-base = "250ms"
backoff-max = "1m"
backoff-jitter = 0.5
stable-after = 30
intensity = 7
intensity-window = "2m"
[stop]
signal = "SIGINT"
timeout = "3s"
"#;
    let d =
        parse_definition("downloader", Path::new("/defs/downloader.toml"), text).expect("valid");
    let s = &d.spec;
    assert_eq!(s.command, vec!["/usr/bin/downloader", "serve"]);
    assert_eq!(s.after, vec!["netinst"]);
    assert_eq!(s.dependencies().collect::<Vec<_>>(), vec!["netinst"]);
    assert_eq!(
        s.conditions,
        vec![PathCondition {
            path: "/run/nodownload".into(),
            negate: true
        }]
    );
    assert!(s.critical);
    assert!(s.stop_last);
    assert_eq!(s.reload_signal, nix::sys::signal::Signal::SIGUSR1);
    assert_eq!(s.restart.policy, RestartPolicy::OnFailure);
    assert_eq!(
        s.restart.backoff_base,
        std::time::Duration::from_millis(250)
    );
    assert_eq!(s.restart.backoff_max, std::time::Duration::from_secs(60));
    assert_eq!(s.restart.backoff_jitter, 0.5);
    assert_eq!(s.restart.stable_after, std::time::Duration::from_secs(30));
    assert_eq!(s.restart.intensity, 7);
    assert_eq!(s.stop.signal, nix::sys::signal::Signal::SIGINT);
    assert_eq!(s.stop.timeout, std::time::Duration::from_secs(3));
    assert_eq!(d.line_of("after"), Some(4));

    let minimal = parse_definition(
        "m",
        Path::new("/m.toml"),
        "command = [\"/bin/true\"]\ntype = \"oneshot\"",
    )
    .expect("valid");
    assert_eq!(minimal.spec.restart.policy, RestartPolicy::OnFailure);
    assert!(!minimal.spec.stop_last);
    assert_eq!(
        minimal.spec.stop.timeout,
        std::time::Duration::from_secs(10)
    );
}

#[test]
fn syntax_error_names_the_line() {
    one(
        "s",
        "command = [\"/bin/x\"]\n\nafter = [\"a\"",
        Some(3),
        None,
        "TOML syntax",
    );
}

#[test]
fn unknown_top_level_key() {
    one(
        "u",
        "command = [\"/x\"]\nrestart-policy = \"always\"",
        Some(2),
        Some("restart-policy"),
        "unknown key",
    );
}

#[test]
fn unknown_key_in_a_table_is_dotted() {
    one(
        "u",
        "command = [\"/x\"]\n[stop]\nsignal = \"TERM\"\ngrace = \"1s\"",
        Some(4),
        Some("stop.grace"),
        "unknown key",
    );
}

#[test]
fn wrong_value_type() {
    one(
        "t",
        "command = [\"/x\"]\ncritical = \"yes\"",
        Some(2),
        Some("critical"),
        "true or false",
    );
}

#[test]
fn stop_last_must_be_a_boolean() {
    one(
        "w",
        "command = [\"/x\"]\nstop-last = \"yes\"",
        Some(2),
        Some("stop-last"),
        "true or false",
    );
}

#[test]
fn bad_enum_value() {
    one(
        "t",
        "command = [\"/x\"]\ntype = \"daemon\"",
        Some(2),
        Some("type"),
        "\"longrun\" or \"oneshot\"",
    );
    one(
        "p",
        "command = [\"/x\"]\n[restart]\npolicy = \"sometimes\"",
        Some(3),
        Some("restart.policy"),
        "sometimes",
    );
}

#[test]
fn bad_duration() {
    one(
        "d",
        "command = [\"/x\"]\n[stop]\ntimeout = \"soon\"",
        Some(3),
        Some("stop.timeout"),
        "soon",
    );
}

#[test]
fn bad_signal() {
    one(
        "g",
        "command = [\"/x\"]\n[stop]\nsignal = \"SIGNOPE\"",
        Some(3),
        Some("stop.signal"),
        "unknown signal",
    );
}

#[test]
fn bad_numbers() {
    one(
        "n",
        "command = [\"/x\"]\n[restart]\nintensity = 0",
        Some(3),
        Some("restart.intensity"),
        "at least 1",
    );
    one(
        "n",
        "command = [\"/x\"]\n[restart]\nbackoff-jitter = 2",
        Some(3),
        Some("restart.backoff-jitter"),
        "from 0 to 1",
    );
}

#[test]
fn empty_command() {
    one("e", "\ncommand = []", Some(2), Some("command"), "empty");
    one(
        "e",
        "command = [\"\", \"-x\"]",
        Some(1),
        Some("command"),
        "program",
    );
}

#[test]
fn command_must_be_an_array_of_strings() {
    one(
        "c",
        "command = \"/bin/sh -c x\"",
        Some(1),
        Some("command"),
        "array of strings",
    );
    one(
        "c",
        "command = [\"/bin/x\", 3]",
        Some(1),
        Some("command"),
        "must be a string",
    );
}

#[test]
fn missing_command() {
    one("m", "type = \"oneshot\"", None, Some("command"), "missing");
}

#[test]
fn heartbeat_needs_a_max_age_and_takes_a_signal_and_grace() {
    one(
        "h",
        "command = [\"/x\"]\n[heartbeat]\nsignal = \"USR1\"",
        Some(2),
        Some("heartbeat"),
        "needs max-age",
    );
    one(
        "h",
        "command = [\"/x\"]\n[heartbeat]\nmax-age = \"1ms\"",
        Some(3),
        Some("heartbeat.max-age"),
        "at least 100ms",
    );
    let d = parse_definition(
        "h",
        Path::new("/h.toml"),
        "command = [\"/x\"]\n[heartbeat]\nmax-age = \"30s\"\nsignal = \"USR1\"",
    )
    .expect("valid");
    let hb = d.spec.heartbeat.expect("heartbeat");
    assert_eq!(
        (hb.max_age, hb.signal, hb.grace),
        (
            std::time::Duration::from_secs(30),
            Some(nix::sys::signal::Signal::SIGUSR1),
            std::time::Duration::from_secs(30)
        )
    );
}

#[test]
fn bad_dependency_names_and_conditions() {
    one(
        "b",
        "command = [\"/x\"]\nafter = [\"../etc\"]",
        Some(2),
        Some("after"),
        "may only hold",
    );
    one(
        "b",
        "command = [\"/x\"]\ncondition-path-exists = \"proc/xen\"",
        Some(2),
        Some("condition-path-exists"),
        "absolute",
    );
    one(
        "b",
        "command = [\"/x\"]\ncondition-path-exists = [\"/usr/sbin/x\", 7]",
        Some(2),
        Some("condition-path-exists"),
        "a path or an array of paths, not an integer",
    );
}

#[test]
fn several_conditions_are_kept_in_order() {
    let text =
        "command = [\"/x\"]\ncondition-path-exists = [\"/usr/sbin/ipsec\", \"!/run/no-ipsec\"]";
    let d = parse_definition("b", Path::new("/defs/b.toml"), text).expect("valid");
    assert_eq!(
        d.spec.conditions,
        vec![
            PathCondition {
                path: "/usr/sbin/ipsec".into(),
                negate: false
            },
            PathCondition {
                path: "/run/no-ipsec".into(),
                negate: true
            },
        ]
    );
}

#[test]
fn bad_file_name() {
    let errors = errors_of("bad name", "command = [\"/x\"]");
    assert!(errors[0].message.contains("bad file name"), "{errors:?}");
}

#[test]
fn every_error_in_a_file_is_reported_together_in_line_order() {
    let text = "type = \"daemon\"\ncommand = []\nbogus = 1\n[stop]\ntimeout = \"x\"\n[ready]\n";
    let errors = errors_of("many", text);
    let got: Vec<(Option<usize>, Option<&str>)> =
        errors.iter().map(|e| (e.line, e.key.as_deref())).collect();
    assert_eq!(
        got,
        vec![
            (Some(1), Some("type")),
            (Some(2), Some("command")),
            (Some(3), Some("bogus")),
            (Some(5), Some("stop.timeout")),
            (Some(6), Some("ready")),
        ]
    );
    assert_eq!(
        errors[0].to_string(),
        "/defs/many.toml:1: type: must be \"longrun\" or \"oneshot\", not \"daemon\""
    );
}

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(format!("{name}.toml")), text).expect("write");
}

#[test]
fn unknown_dependency_is_reported_with_its_line_and_the_rest_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "good", "command = [\"/x\"]");
    write(
        dir.path(),
        "lost",
        "command = [\"/x\"]\n\nrequires = [\"ghost\"]",
    );
    let loaded = load_dirs(&[dir.path().to_path_buf()]);
    assert_eq!(loaded.definitions.keys().collect::<Vec<_>>(), vec!["good"]);
    assert_eq!(loaded.errors.len(), 1);
    let e = &loaded.errors[0];
    assert_eq!(
        (e.file.clone(), e.line, e.key.as_deref()),
        (dir.path().join("lost.toml"), Some(3), Some("requires"))
    );
    assert!(e.message.contains("unknown service \"ghost\""), "{e}");
}

#[test]
fn a_dependency_cycle_names_every_member_and_its_dependents() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a", "command = [\"/x\"]\nafter = [\"b\"]");
    write(
        dir.path(),
        "b",
        "command = [\"/x\"]\n# why\nrequires = [\"c\"]",
    );
    write(dir.path(), "c", "command = [\"/x\"]\nafter = [\"a\"]");
    write(dir.path(), "d", "command = [\"/x\"]\nafter = [\"c\"]");
    write(dir.path(), "e", "command = [\"/x\"]");
    let loaded = load_dirs(&[dir.path().to_path_buf()]);
    assert_eq!(loaded.definitions.keys().collect::<Vec<_>>(), vec!["e"]);
    let cycle: Vec<_> = loaded
        .errors
        .iter()
        .filter(|e| e.message.contains("dependency cycle"))
        .collect();
    assert_eq!(cycle.len(), 3, "{:#?}", loaded.errors);
    let b = cycle
        .iter()
        .find(|e| e.file.ends_with("b.toml"))
        .expect("b reported");
    assert_eq!((b.line, b.key.as_deref()), (Some(3), Some("requires")));
    assert!(
        b.message.contains("a -> b -> c -> a")
            || b.message.contains("b -> c -> a -> b")
            || b.message.contains("c -> a -> b -> c"),
        "{b}"
    );
    let d = loaded
        .errors
        .iter()
        .find(|e| e.file.ends_with("d.toml"))
        .expect("d reported");
    assert_eq!((d.line, d.key.as_deref()), (Some(2), Some("after")));
    assert!(d.message.contains("whose definition is invalid"), "{d}");
}

#[test]
fn self_dependency_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "me", "command = [\"/x\"]\nafter = [\"me\"]");
    let loaded = load_dirs(&[dir.path().to_path_buf()]);
    assert!(loaded.definitions.is_empty());
    assert!(
        loaded
            .errors
            .iter()
            .any(|e| e.line == Some(2) && e.message.contains("depends on itself")),
        "{:?}",
        loaded.errors
    );
}

#[test]
fn the_same_name_in_two_directories_keeps_the_first() {
    let (one_dir, two_dir) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    write(one_dir.path(), "svc", "command = [\"/first\"]");
    write(two_dir.path(), "svc", "command = [\"/second\"]");
    fs::write(two_dir.path().join("notes.txt"), "not a definition").expect("write");
    let loaded = load_dirs(&[
        one_dir.path().to_path_buf(),
        two_dir.path().to_path_buf(),
        "/nonexistent/zedctr".into(),
    ]);
    assert_eq!(loaded.definitions["svc"].spec.command, vec!["/first"]);
    assert_eq!(loaded.errors.len(), 1);
    assert_eq!(loaded.errors[0].file, two_dir.path().join("svc.toml"));
    assert!(
        loaded.errors[0].message.contains("already defined by"),
        "{}",
        loaded.errors[0]
    );
}

#[test]
fn a_generated_definition_without_run_is_refused() {
    let (static_dir, generated) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    write(static_dir.path(), "dev", "command = [\"/dev-only\"]");
    write(generated.path(), "bare", "command = [\"/bin/sh\"]");
    write(
        generated.path(),
        "confined",
        "command = [\"/usr/sbin/dnsmasq\"]\n[run]\ncapabilities = []",
    );
    let loaded = load_dirs(&[
        static_dir.path().to_path_buf(),
        generated.path().to_path_buf(),
    ]);
    assert!(
        loaded.definitions.contains_key("dev"),
        "the image's own may be unconfined"
    );
    assert!(loaded.definitions.contains_key("confined"));
    assert!(!loaded.definitions.contains_key("bare"));
    assert_eq!(loaded.errors.len(), 1);
    assert_eq!(loaded.errors[0].file, generated.path().join("bare.toml"));
    assert!(
        loaded.errors[0].message.contains("must have [run]"),
        "{}",
        loaded.errors[0]
    );
}

#[test]
fn cycle_finder_handles_separate_and_nested_cycles() {
    let edges: BTreeMap<String, Vec<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["a"]),
        ("c", vec!["d"]),
        ("d", vec!["e"]),
        ("e", vec!["c", "f"]),
        ("f", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    let mut cycles = crate::graph::find_cycles(&edges);
    for c in &mut cycles {
        c.sort();
    }
    cycles.sort();
    assert_eq!(cycles, vec![vec!["a", "b"], vec!["c", "d", "e"]]);
}

#[test]
fn ready_kinds_parse_with_their_timeout_and_interval() {
    let parse = |body: &str| {
        parse_definition(
            "r",
            Path::new("/defs/r.toml"),
            &format!("command = [\"/x\"]\n[ready]\n{body}"),
        )
        .map(|d| d.spec.ready.expect("ready"))
    };
    let notify = parse("notify = true\ntimeout = \"5s\"").expect("notify");
    assert_eq!(
        (notify.check, notify.timeout),
        (ReadyCheck::Notify, std::time::Duration::from_secs(5))
    );
    let tcp = parse("tcp = \"127.0.0.1:8080\"\ninterval = \"50ms\"").expect("tcp");
    assert_eq!(
        (tcp.check, tcp.interval),
        (
            ReadyCheck::Tcp("127.0.0.1:8080".into()),
            std::time::Duration::from_millis(50)
        )
    );
    assert_eq!(
        parse("file = \"/run/up\"").expect("file").check,
        ReadyCheck::File("/run/up".into())
    );
    assert_eq!(
        parse("exec = [\"/bin/check\", \"-q\"]")
            .expect("exec")
            .check,
        ReadyCheck::Exec(vec!["/bin/check".into(), "-q".into()])
    );
}

#[test]
fn ready_needs_exactly_one_valid_check_and_a_longrun() {
    one(
        "r",
        "command = [\"/x\"]\n[ready]\ntimeout = \"5s\"",
        Some(2),
        Some("ready"),
        "needs one of",
    );
    one(
        "r",
        "command = [\"/x\"]\n[ready]\nnotify = true\nfile = \"/a\"",
        Some(4),
        Some("ready"),
        "exactly one",
    );
    one(
        "r",
        "command = [\"/x\"]\n[ready]\ntcp = \"localhost\"",
        Some(3),
        Some("ready.tcp"),
        "host:port",
    );
    one(
        "r",
        "command = [\"/x\"]\n[ready]\nfile = \"up\"",
        Some(3),
        Some("ready.file"),
        "absolute",
    );
    one(
        "r",
        "command = [\"/x\"]\n[ready]\nexec = []",
        Some(3),
        Some("ready.exec"),
        "empty",
    );
    one(
        "r",
        "command = [\"/x\"]\n[ready]\nnotify = true\nwhen = 1",
        Some(4),
        Some("ready.when"),
        "unknown key",
    );
    one(
        "r",
        "command = [\"/x\"]\ntype = \"oneshot\"\n[ready]\nnotify = true",
        Some(3),
        Some("ready"),
        "oneshot",
    );
}

#[test]
fn run_table_with_linuxkit_names_parses() {
    let text = r#"command = ["/x"]
[run]
uid = "nobody"
gid = 65534
additionalGids = [4, "adm"]
capabilities = ["CAP_NET_BIND_SERVICE", "net_raw"]
ambient = ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"]
binds = ["/var/dl:/persist/dl", "/etc/ca:/etc/ssl/certs:ro"]
mkdir = ["/run/a", { path = "/persist/dl", owner = "nobody:adm", mode = "0750" }]
devices = ["/dev/watchdog"]
net = "none"
readonly = true
rlimits = ["nofile,1024,2048", "RLIMIT_CORE,0,unlimited"]
oomScoreAdj = 300
noNewPrivileges = true
env = ["A=1", "B=x=y"]
cwd = "/persist"
"#;
    let run = parse_definition("r", Path::new("/defs/r.toml"), text)
        .expect("valid")
        .spec
        .run
        .expect("run");
    assert_eq!(run.uid, Some(crate::spec::IdRef::Name("nobody".into())));
    assert_eq!(run.capabilities, vec![10, 13]);
    assert_eq!(
        run.binds[1],
        crate::spec::Bind {
            src: "/etc/ca".into(),
            dst: "/etc/ssl/certs".into(),
            readonly: true
        }
    );
    assert_eq!(run.mkdir[1].mode, 0o750);
    assert!(run.net_none && run.readonly && run.no_new_privileges);
    assert_eq!(
        (run.rlimits[1].name, run.rlimits[1].hard),
        ("core", libc::RLIM_INFINITY)
    );
    assert_eq!(run.env[1], ("B".to_string(), "x=y".to_string()));
}

#[test]
fn a_non_root_service_must_make_its_capabilities_ambient() {
    one(
        "r",
        "command = [\"/x\"]\n[run]\nuid = 1000\ncapabilities = [\"CAP_NET_ADMIN\"]",
        Some(2),
        Some("run.capabilities"),
        "only through run.ambient: add CAP_NET_ADMIN",
    );
    one(
        "r",
        "command = [\"/x\"]\n[run]\ncapabilities = [\"CAP_NET_RAW\"]\nambient = [\"CAP_NET_ADMIN\"]",
        Some(2),
        Some("run.ambient"),
        "not in run.capabilities",
    );
}

#[test]
fn run_errors_name_their_key_and_line() {
    one(
        "r",
        "command = [\"/x\"]\n[run]\ncapabilities = [\"CAP_FLY\"]",
        Some(3),
        Some("run.capabilities"),
        "unknown capability \"CAP_FLY\"",
    );
    one(
        "r",
        "command = [\"/x\"]\n[run]\ncapabilities = [\"all\"]",
        Some(3),
        Some("run.capabilities"),
        "name each capability",
    );
    one(
        "r",
        "command = [\"/x\"]\n[run]\nbinds = [\"relative:/x\"]",
        Some(3),
        Some("run.binds"),
        "absolute",
    );
    one(
        "r",
        "command = [\"/x\"]\n[run]\nbinds = [\"/a:/b:shared-ish\"]",
        Some(3),
        Some("run.binds"),
        "unknown bind option",
    );
    one(
        "r",
        "command = [\"/x\"]\n[run]\nrlimits = [\"files,1,2\"]",
        Some(3),
        Some("run.rlimits"),
        "unknown rlimit",
    );
    one(
        "r",
        "command = [\"/x\"]\n[run]\nrlimits = [\"nofile,10,5\"]",
        Some(3),
        Some("run.rlimits"),
        "soft limit above hard",
    );
    one(
        "r",
        "command = [\"/x\"]\n[run]\noomScoreAdj = 5000",
        Some(3),
        Some("run.oomScoreAdj"),
        "-1000 to 1000",
    );
    one(
        "r",
        "command = [\"/x\"]\n[run]\nnet = \"bridge\"",
        Some(3),
        Some("run.net"),
        "\"host\" or \"none\"",
    );
    one(
        "r",
        "command = [\"/x\"]\n[run]\ndevices = [\"/etc/passwd\"]",
        Some(3),
        Some("run.devices"),
        "under /dev",
    );
    one(
        "r",
        "command = [\"/x\"]\n[run]\nmkdir = [{ path = \"/a\", mode = \"999\" }]",
        Some(3),
        Some("run.mkdir"),
        "octal",
    );
    one(
        "r",
        "command = [\"/x\"]\n[run]\nUid = 0",
        Some(3),
        Some("run.Uid"),
        "unknown key",
    );
    one(
        "r",
        "command = [\"/x\"]\n[run]\nenv = [\"NOVALUE\"]",
        Some(3),
        Some("run.env"),
        "NAME=value",
    );
}

#[test]
fn a_dependency_on_a_broken_file_says_so_rather_than_unknown() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "broken", "command = []");
    write(
        dir.path(),
        "user",
        "command = [\"/x\"]\nafter = [\"broken\"]",
    );
    let loaded = load_dirs(&[dir.path().to_path_buf()]);
    let e = loaded
        .errors
        .iter()
        .find(|e| e.file.ends_with("user.toml"))
        .expect("user reported");
    assert!(e.message.contains("whose definition is invalid"), "{e}");
}

#[test]
fn mkdir_paths_that_climb_or_hide_a_component_are_refused_naming_the_key() {
    for bad in [
        "/run/../escaped",
        "/..",
        "/run/./x",
        "/run//x",
        "/run/x/",
        "/",
    ] {
        let errors = errors_of(
            "r",
            &format!("command = [\"/x\"]\n[run]\nmkdir = [{}]", toml_quoted(bad)),
        );
        assert_eq!(errors.len(), 1, "{bad}: {errors:#?}");
        assert_eq!(errors[0].key.as_deref(), Some("run.mkdir"), "{bad}");
        assert_eq!(errors[0].line, Some(3), "{bad}");
        assert!(
            errors[0].message.contains("must be a name"),
            "{bad}: {}",
            errors[0]
        );
        let errors = errors_of(
            "r",
            &format!(
                "command = [\"/x\"]\n[run]\nmkdir = [{{ path = {}, mode = \"0700\" }}]",
                toml_quoted(bad)
            ),
        );
        assert_eq!(errors.len(), 1, "{bad} in a table: {errors:#?}");
        assert_eq!(errors[0].key.as_deref(), Some("run.mkdir"), "{bad}");
        assert!(
            errors[0].message.contains("must be a name"),
            "{bad}: {}",
            errors[0]
        );
    }
    let text = "command = [\"/x\"]\n[run]\nmkdir = [\"/run/a..b\", { path = \"/run/.hidden/x\" }]";
    let def =
        parse_definition("r", Path::new("/defs/r.toml"), text).expect("dots inside names are fine");
    let run = def.spec.run.expect("run");
    assert_eq!(run.mkdir[0].path, PathBuf::from("/run/a..b"));
    assert_eq!(run.mkdir[1].path, PathBuf::from("/run/.hidden/x"));
}

fn toml_quoted(s: &str) -> String {
    format!("\"{s}\"")
}

/// The one error `load_dirs` reports for `name.toml` in `dir`, which must not load.
fn refused(dir: &Path, name: &str) -> ConfigError {
    let loaded = load_dirs(&[dir.to_path_buf()]);
    assert!(!loaded.definitions.contains_key(name), "{name} loaded");
    let mut errors = loaded
        .errors
        .into_iter()
        .filter(|e| e.file == dir.join(format!("{name}.toml")));
    let e = errors.next().expect("an error for the file");
    assert!(errors.next().is_none(), "one error for the file");
    e
}

#[test]
fn a_fifo_definition_is_refused_without_waiting_for_a_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "good", "command = [\"/x\"]");
    nix::unistd::mkfifo(
        &dir.path().join("zz.toml"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");
    // With no writer, a blocking open would never return: this test would hang.
    let e = refused(dir.path(), "zz");
    assert!(e.message.contains("a FIFO, not a regular file"), "{e}");
    assert!(
        load_dirs(&[dir.path().to_path_buf()])
            .definitions
            .contains_key("good"),
        "the others still load"
    );
}

#[test]
fn a_symlink_definition_is_refused_even_to_a_device_or_a_regular_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Read through, /dev/zero never ends: PID 1 would grow until the OOM killer came.
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.toml")).expect("symlink");
    let e = refused(dir.path(), "zero");
    assert!(e.message.contains("a symlink"), "{e}");
    write(dir.path(), ".elsewhere", "command = [\"/x\"]");
    std::os::unix::fs::symlink(".elsewhere.toml", dir.path().join("linked.toml")).expect("symlink");
    let e = refused(dir.path(), "linked");
    assert!(e.message.contains("a symlink"), "{e}");
}

#[test]
fn a_directory_named_like_a_definition_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("d.toml")).expect("mkdir");
    let e = refused(dir.path(), "d");
    assert!(e.message.contains("a directory, not a regular file"), "{e}");
}

#[test]
fn an_oversized_definition_is_refused_and_one_at_the_cap_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = MAX_DEFINITION_BYTES as usize;
    let command = "command = [\"/x\"]\n";
    let padded = |len: usize| format!("{command}{}", "#".repeat(len - command.len()));
    write(dir.path(), "big", &padded(cap + 1));
    let e = refused(dir.path(), "big");
    assert!(e.message.contains("larger than 1048576 bytes"), "{e}");
    write(dir.path(), "big", &padded(cap));
    let loaded = load_dirs(&[dir.path().to_path_buf()]);
    assert!(
        loaded.definitions.contains_key("big"),
        "{:?}",
        loaded.errors
    );
}

#[test]
fn a_regular_definition_still_loads_and_bad_utf8_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "ok",
        "command = [\"/usr/bin/true\"]\ncritical = true",
    );
    fs::write(dir.path().join("latin1.toml"), b"command = [\"/caf\xe9\"]").expect("write");
    let loaded = load_dirs(&[dir.path().to_path_buf()]);
    let ok = &loaded.definitions["ok"].spec;
    assert_eq!(ok.command, vec!["/usr/bin/true".to_string()]);
    assert!(ok.critical);
    let e = refused(dir.path(), "latin1");
    assert!(e.message.contains("not UTF-8"), "{e}");
}

#[test]
fn export_says_what_differs_in_a_container_of_its_own() {
    let def = parse_definition(
        "svc",
        Path::new("/d/svc.toml"),
        "command = [\"/x\"]\n[run]\nnet = \"none\"\n[export]\ncommand = [\"/x\", \"--alone\"]\n\
         capabilities = [\"CAP_KILL\"]\npid = \"host\"\nnet = \"host\"\nbinds = [\"/a:/b:ro\"]\n",
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let export = def.spec.export;
    assert_eq!(
        export.command,
        Some(vec!["/x".to_string(), "--alone".to_string()])
    );
    assert_eq!(
        export.capabilities,
        Some(vec![crate::caps::parse("CAP_KILL").expect("a capability")])
    );
    assert_eq!(export.pid_host, Some(true));
    assert_eq!(export.net_none, Some(false));
    assert_eq!(export.binds.map(|b| b.len()), Some(1));
    // zedinit's own view is untouched.
    assert_eq!(def.spec.command, vec!["/x".to_string()]);
    assert!(def.spec.run.expect("run").net_none);

    let errors = errors_of(
        "svc",
        "command = [\"/x\"]\n[export]\npid = \"shared\"\nuser = 0\ncapabilities = [\"all\"]\n",
    );
    let keys: Vec<&str> = errors.iter().filter_map(|e| e.key.as_deref()).collect();
    assert_eq!(
        keys,
        ["export.pid", "export.user", "export.capabilities"],
        "{errors:?}"
    );
}
