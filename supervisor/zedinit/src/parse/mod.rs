//! Definition files → `ServiceSpec`s. Every problem is collected (not just the first),
//! each naming file, line and key; a bad file never hides the good ones.

use crate::signal_names::parse_signal;
use crate::spec::{
    PathCondition, ReadyCheck, ReadySpec, RestartPolicy, RestartSpec, ServiceSpec, ServiceType,
    StopSpec,
};
use confkit::durations::parse_duration;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use confkit::ConfigEntry;
/// One problem in one definition file: file, line, key and message (the one error type
/// of every config parser here).
pub use confkit::ConfigError;
use confkit::toml_reader::{Reader, a_type};

/// A parsed definition plus where its dependency keys sit, so that graph checks
/// (unknown dependency, cycle) can still name a line.
#[derive(Debug, Clone)]
pub struct Definition {
    pub spec: ServiceSpec,
    pub key_lines: HashMap<&'static str, usize>,
}

impl Definition {
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.key_lines.get(key).copied()
    }
}

/// Parses one definition. `name` is the file stem.
pub fn parse_definition(
    name: &str,
    file: &Path,
    text: &str,
) -> Result<Definition, Vec<ConfigError>> {
    let mut cx = Cx {
        r: Reader::new(file, text),
        key_lines: HashMap::new(),
    };
    if let Err(message) = check_service_name(name) {
        cx.whole_file(format!("bad file name: {message}"));
    }
    let Some(root) = cx.parse() else {
        return Err(cx.r.finish());
    };
    let spec = cx.service(name, root.get_ref());
    match spec {
        Some(spec) if !cx.has_errors() => Ok(Definition {
            spec,
            key_lines: cx.key_lines,
        }),
        _ => Err(cx.r.finish()),
    }
}

/// Service names are file stems and appear in paths (`/run/<svc>.touch`) and commands.
pub fn check_service_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "@._-".contains(c);
    if name.is_empty() || name.len() > 64 {
        return Err(format!("service name {name:?} must be 1 to 64 characters"));
    }
    if name.starts_with('.') || !name.chars().all(ok_char) {
        return Err(format!(
            "service name {name:?} may only hold letters, digits, '@', '.', '_', '-' and not start with '.'"
        ));
    }
    Ok(())
}

/// A definition being read: the shared reader (errors with file, line and key) plus
/// where the dependency keys sit, for the graph checks.
struct Cx<'a> {
    r: Reader<'a>,
    key_lines: HashMap<&'static str, usize>,
}

confkit::reader_context!(Cx, r);

impl<'a> Cx<'a> {
    fn service(&mut self, name: &str, root: &DeTable<'_>) -> Option<ServiceSpec> {
        let mut command = None;
        let mut kind = ServiceType::Longrun;
        let mut after = Vec::new();
        let mut requires = Vec::new();
        let mut conditions = Vec::new();
        let mut critical = false;
        let mut stop_last = false;
        let mut reload_signal = nix::sys::signal::Signal::SIGHUP;
        let mut restart_table = None;
        let mut stop = StopSpec::default();
        let mut ready = None;
        let mut run = None;
        let mut run_given = false;
        let mut log = crate::spec::LogSpec::default();
        let mut heartbeat = None;
        let mut export = crate::spec::ExportSpec::default();
        let mut command_missing = true;

        for (key, value) in root.iter() {
            let k = key.get_ref().as_ref();
            let span = key.span();
            match k {
                "command" => {
                    command_missing = false;
                    command = self.command(&span, "command", value);
                }
                "type" => match self.string(k, value).as_deref() {
                    Some("longrun") => kind = ServiceType::Longrun,
                    Some("oneshot") => kind = ServiceType::Oneshot,
                    Some(other) => self.error(
                        &value.span(),
                        k,
                        format!("must be \"longrun\" or \"oneshot\", not {other:?}"),
                    ),
                    None => {}
                },
                "after" => {
                    self.key_lines.insert("after", self.line(&span));
                    after = self.names(k, value);
                }
                "requires" => {
                    self.key_lines.insert("requires", self.line(&span));
                    requires = self.names(k, value);
                }
                "condition-path-exists" => {
                    conditions = self.conditions(k, value);
                }
                "critical" => {
                    if let Some(b) = self.boolean(k, value) {
                        critical = b;
                    }
                }
                "stop-last" => {
                    if let Some(b) = self.boolean(k, value) {
                        stop_last = b;
                    }
                }
                "reload-signal" => {
                    if let Some(sig) = self.signal(k, value) {
                        reload_signal = sig;
                    }
                }
                "restart" => restart_table = self.table(k, value),
                "run" => {
                    if let Some(table) = self.table(k, value) {
                        run = self.run(&span, table);
                        run_given = true;
                    }
                }
                "log" => match value.get_ref() {
                    DeValue::String(to) => match to.as_ref() {
                        "console" => log.console = true,
                        "file" => log.console = false,
                        other => self.error(
                            &value.span(),
                            k,
                            format!(
                                "must be \"file\" or \"console\" (or a [log] table), not {other:?}"
                            ),
                        ),
                    },
                    DeValue::Table(table) => self.log(table, &mut log),
                    other => self.error(
                        &value.span(),
                        k,
                        format!(
                            "must be \"file\", \"console\" or a [log] table, not {}",
                            a_type(other)
                        ),
                    ),
                },
                "heartbeat" => {
                    if let Some(table) = self.table(k, value) {
                        heartbeat = self.heartbeat(&span, table);
                    }
                }
                "export" => {
                    if let Some(table) = self.table(k, value) {
                        export = self.export(&span, table);
                    }
                }
                "ready" => {
                    if let Some(table) = self.table(k, value) {
                        ready = self.ready(&span, table);
                    }
                }
                "stop" => {
                    if let Some(table) = self.table(k, value) {
                        self.stop(table, &mut stop);
                    }
                }
                _ => self.error(&span, k, "unknown key"),
            }
        }
        if command_missing {
            self.error_at_line(None, "command", "missing: every service needs a command");
        }
        if kind == ServiceType::Oneshot && ready.is_some() {
            let line = self.key_lines.get("ready").copied();
            self.error_at_line(
                line,
                "ready",
                "a oneshot is ready when it is done: [ready] is for longruns",
            );
        }
        let mut restart = RestartSpec::default_for(kind);
        if let Some(table) = restart_table {
            self.restart(table, &mut restart);
        }
        Some(ServiceSpec {
            name: name.to_string(),
            file: self.file.to_path_buf(),
            command: command?,
            kind,
            after,
            requires,
            conditions,
            critical,
            stop_last,
            restart,
            stop,
            reload_signal,
            ready,
            run: if run_given { Some(run?) } else { None },
            log,
            heartbeat,
            export,
        })
    }

    /// `[export]`: `command`, `capabilities`, `binds`, `pid`, `net` (see `spec::ExportSpec`).
    fn export(
        &mut self,
        table_span: &Range<usize>,
        table: &DeTable<'_>,
    ) -> crate::spec::ExportSpec {
        let mut export = crate::spec::ExportSpec::default();
        for (key, value) in table.iter() {
            let k = key.get_ref().as_ref();
            let dotted = format!("export.{k}");
            match k {
                "command" => export.command = self.command(table_span, &dotted, value),
                "capabilities" => export.capabilities = Some(self.caps(&dotted, value)),
                "pid" => match value.get_ref().as_str() {
                    Some("host") => export.pid_host = Some(true),
                    Some("new") => export.pid_host = Some(false),
                    _ => self.error(&value.span(), &dotted, "must be \"host\" or \"new\""),
                },
                "binds" => {
                    let mut binds = Vec::new();
                    for item in self.array(&dotted, value) {
                        if let Some(text) = self.string(&dotted, item) {
                            match parse_bind(&text) {
                                Ok(bind) => binds.push(bind),
                                Err(e) => self.error(&item.span(), &dotted, e),
                            }
                        }
                    }
                    export.binds = Some(binds);
                }
                "net" => match value.get_ref().as_str() {
                    Some("host") => export.net_none = Some(false),
                    Some("none") => export.net_none = Some(true),
                    _ => self.error(&value.span(), &dotted, "must be \"host\" or \"none\""),
                },
                _ => self.error(&key.span(), &dotted, "unknown key"),
            }
        }
        export
    }

    fn command(
        &mut self,
        key_span: &Range<usize>,
        key: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Option<Vec<String>> {
        let Some(array) = value.get_ref().as_array() else {
            self.error(
                &value.span(),
                key,
                format!(
                    "must be an array of strings, e.g. [\"/usr/bin/x\", \"--flag\"], not {}",
                    a_type(value.get_ref())
                ),
            );
            return None;
        };
        let mut argv = Vec::new();
        for item in array.iter() {
            match item.get_ref().as_str() {
                Some(s) => argv.push(s.to_string()),
                None => {
                    self.error(
                        &item.span(),
                        key,
                        format!(
                            "every argument must be a string, not {}",
                            a_type(item.get_ref())
                        ),
                    );
                    return None;
                }
            }
        }
        match argv.first() {
            None => {
                self.error(key_span, key, "is empty: name the program to run");
                None
            }
            Some(program) if program.trim().is_empty() => {
                self.error(key_span, key, "the program (first element) is empty");
                None
            }
            Some(_) => Some(argv),
        }
    }

    fn restart(&mut self, table: &DeTable<'_>, restart: &mut RestartSpec) {
        for (key, value) in table.iter() {
            let k = key.get_ref().as_ref();
            let dotted = format!("restart.{k}");
            match k {
                "policy" => match self.string(&dotted, value).as_deref() {
                    Some("always") => restart.policy = RestartPolicy::Always,
                    Some("on-failure") => restart.policy = RestartPolicy::OnFailure,
                    Some("never") => restart.policy = RestartPolicy::Never,
                    Some(other) => self.error(
                        &value.span(),
                        &dotted,
                        format!("must be \"always\", \"on-failure\" or \"never\", not {other:?}"),
                    ),
                    None => {}
                },
                "backoff-base" => self.duration_into(&dotted, value, &mut restart.backoff_base),
                "backoff-max" => self.duration_into(&dotted, value, &mut restart.backoff_max),
                "stable-after" => self.duration_into(&dotted, value, &mut restart.stable_after),
                "retry-failed-after" => match value.get_ref() {
                    DeValue::String(s) if s.as_ref() == "never" => {
                        restart.retry_failed_after = None
                    }
                    _ => {
                        let mut after = crate::spec::DEFAULT_RETRY_FAILED_AFTER;
                        self.duration_into(&dotted, value, &mut after);
                        restart.retry_failed_after = Some(after);
                    }
                },
                "intensity-window" => {
                    self.duration_into(&dotted, value, &mut restart.intensity_window)
                }
                "backoff-jitter" => match number(value.get_ref()) {
                    Some(f) if (0.0..=1.0).contains(&f) => restart.backoff_jitter = f,
                    _ => self.error(
                        &value.span(),
                        &dotted,
                        "must be a number from 0 to 1 (the fraction a delay may be shortened by)",
                    ),
                },
                "intensity" => match value
                    .get_ref()
                    .as_integer()
                    .and_then(|i| i.as_str().parse::<u32>().ok().filter(|_| i.radix() == 10))
                {
                    Some(n) if n >= 1 => restart.intensity = n,
                    _ => self.error(
                        &value.span(),
                        &dotted,
                        "must be a whole number of restarts, at least 1",
                    ),
                },
                _ => self.error(&key.span(), &dotted, "unknown key"),
            }
        }
        if restart.backoff_max < restart.backoff_base {
            self.error_at_line(
                None,
                "restart.backoff-max",
                "is shorter than restart.backoff-base",
            );
        }
    }

    fn ready(&mut self, table_span: &Range<usize>, table: &DeTable<'_>) -> Option<ReadySpec> {
        self.key_lines.insert("ready", self.line(table_span));
        let mut checks: Vec<(usize, ReadyCheck)> = Vec::new();
        let mut timeout = std::time::Duration::from_secs(30);
        let mut interval = std::time::Duration::from_millis(200);
        let mut ok = true;
        for (key, value) in table.iter() {
            let k = key.get_ref().as_ref();
            let dotted = format!("ready.{k}");
            let line = self.line(&key.span());
            match k {
                "notify" => match self.boolean(&dotted, value) {
                    Some(true) => checks.push((line, ReadyCheck::Notify)),
                    Some(false) => {}
                    None => ok = false,
                },
                "tcp" => match self.string(&dotted, value) {
                    Some(addr) if valid_host_port(&addr) => {
                        checks.push((line, ReadyCheck::Tcp(addr)))
                    }
                    Some(addr) => {
                        self.error(
                            &value.span(),
                            &dotted,
                            format!(
                                "must be \"host:port\" (e.g. \"127.0.0.1:8080\"), not {addr:?}"
                            ),
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
                "file" => match self.string(&dotted, value) {
                    Some(path) if path.starts_with('/') => {
                        checks.push((line, ReadyCheck::File(path.into())))
                    }
                    Some(path) => {
                        self.error(
                            &value.span(),
                            &dotted,
                            format!("must be an absolute path, not {path:?}"),
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
                "exec" => match self.command(&key.span(), &dotted, value) {
                    Some(argv) => checks.push((line, ReadyCheck::Exec(argv))),
                    None => ok = false,
                },
                "timeout" => self.duration_into(&dotted, value, &mut timeout),
                "interval" => self.duration_into(&dotted, value, &mut interval),
                _ => self.error(&key.span(), &dotted, "unknown key"),
            }
        }
        // Keys come in name order; report the one that came second in the file.
        checks.sort_by_key(|(line, _)| *line);
        if checks.len() > 1 {
            self.error_at_line(
                Some(checks[1].0),
                "ready",
                "give exactly one of notify, tcp, file, exec",
            );
            return None;
        }
        match checks.pop() {
            Some((_, check)) if ok => Some(ReadySpec {
                check,
                timeout,
                interval: interval.max(std::time::Duration::from_millis(10)),
            }),
            Some(_) => None,
            None => {
                if ok {
                    self.error(table_span, "ready", "needs one of notify = true, tcp = \"host:port\", file = \"/path\", exec = [...]");
                }
                None
            }
        }
    }

    fn heartbeat(
        &mut self,
        table_span: &Range<usize>,
        table: &DeTable<'_>,
    ) -> Option<crate::spec::HeartbeatSpec> {
        let mut max_age = None;
        let mut signal = None;
        let mut grace = None;
        let before = self.error_count();
        for (key, value) in table.iter() {
            let k = key.get_ref().as_ref();
            let dotted = format!("heartbeat.{k}");
            let mut d = std::time::Duration::ZERO;
            match k {
                "max-age" => {
                    self.duration_into(&dotted, value, &mut d);
                    if d < std::time::Duration::from_millis(100) {
                        self.error(&value.span(), &dotted, "must be at least 100ms");
                    }
                    max_age = Some(d);
                }
                "grace" => {
                    self.duration_into(&dotted, value, &mut d);
                    grace = Some(d);
                }
                "signal" => signal = self.signal(&dotted, value),
                _ => self.error(&key.span(), &dotted, "unknown key"),
            }
        }
        let Some(max_age) = max_age else {
            self.error(
                table_span,
                "heartbeat",
                "needs max-age (e.g. max-age = \"30s\")",
            );
            return None;
        };
        (self.error_count() == before).then(|| crate::spec::HeartbeatSpec {
            max_age,
            signal,
            grace: grace.unwrap_or(max_age),
        })
    }

    fn log(&mut self, table: &DeTable<'_>, log: &mut crate::spec::LogSpec) {
        for (key, value) in table.iter() {
            let k = key.get_ref().as_ref();
            let dotted = format!("log.{k}");
            let int = |v: &DeValue<'_>| {
                v.as_integer()
                    .filter(|i| i.radix() == 10)
                    .and_then(|i| i.as_str().parse::<u64>().ok())
            };
            match k {
                "to" => match self.string(&dotted, value).as_deref() {
                    Some("file") => log.console = false,
                    Some("console") => log.console = true,
                    Some(other) => self.error(
                        &value.span(),
                        &dotted,
                        format!("must be \"file\" or \"console\", not {other:?}"),
                    ),
                    None => {}
                },
                "max-size" => {
                    let parsed = match value.get_ref() {
                        DeValue::String(s) => parse_size(s),
                        other => int(other).ok_or_else(|| {
                            "must be a size such as \"1MiB\" or a number of bytes".to_string()
                        }),
                    };
                    match parsed {
                        Ok(n) if n >= 1024 => log.max_size = n,
                        Ok(_) => self.error(&value.span(), &dotted, "must be at least 1KiB"),
                        Err(e) => self.error(&value.span(), &dotted, e),
                    }
                }
                "keep" => match int(value.get_ref()) {
                    Some(n) if n <= 100 => log.keep = n as u32,
                    _ => self.error(
                        &value.span(),
                        &dotted,
                        "must be a number of old files from 0 to 100",
                    ),
                },
                "ring" => match int(value.get_ref()) {
                    Some(n) if (1..=100_000).contains(&n) => log.ring_lines = n as usize,
                    _ => self.error(
                        &value.span(),
                        &dotted,
                        "must be a number of lines from 1 to 100000",
                    ),
                },
                _ => self.error(&key.span(), &dotted, "unknown key"),
            }
        }
    }

    fn stop(&mut self, table: &DeTable<'_>, stop: &mut StopSpec) {
        for (key, value) in table.iter() {
            let k = key.get_ref().as_ref();
            let dotted = format!("stop.{k}");
            match k {
                "signal" => {
                    if let Some(sig) = self.signal(&dotted, value) {
                        stop.signal = sig;
                    }
                }
                "timeout" => self.duration_into(&dotted, value, &mut stop.timeout),
                _ => self.error(&key.span(), &dotted, "unknown key"),
            }
        }
    }

    fn string(&mut self, key: &str, value: &Spanned<DeValue<'_>>) -> Option<String> {
        match value.get_ref().as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.error(
                    &value.span(),
                    key,
                    format!("must be a string, not {}", a_type(value.get_ref())),
                );
                None
            }
        }
    }

    fn boolean(&mut self, key: &str, value: &Spanned<DeValue<'_>>) -> Option<bool> {
        let b = value.get_ref().as_bool();
        if b.is_none() {
            self.error(
                &value.span(),
                key,
                format!("must be true or false, not {}", a_type(value.get_ref())),
            );
        }
        b
    }

    fn table<'t, 'i>(
        &mut self,
        key: &str,
        value: &'t Spanned<DeValue<'i>>,
    ) -> Option<&'t DeTable<'i>> {
        let t = value.get_ref().as_table();
        if t.is_none() {
            self.error(
                &value.span(),
                key,
                format!("must be a table ([{key}]), not {}", a_type(value.get_ref())),
            );
        }
        t
    }

    fn signal(
        &mut self,
        key: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Option<nix::sys::signal::Signal> {
        let text = self.string(key, value)?;
        parse_signal(&text)
            .map_err(|e| self.error(&value.span(), key, e))
            .ok()
    }

    fn duration_into(
        &mut self,
        key: &str,
        value: &Spanned<DeValue<'_>>,
        slot: &mut std::time::Duration,
    ) {
        let parsed = match value.get_ref() {
            DeValue::String(s) => parse_duration(s),
            other => match number(other) {
                Some(secs) if (0.0..1.0e9).contains(&secs) => {
                    Ok(std::time::Duration::from_secs_f64(secs))
                }
                _ => Err(format!(
                    "must be a duration such as \"500ms\" or \"10s\", not {}",
                    a_type(other)
                )),
            },
        };
        match parsed {
            Ok(d) => *slot = d,
            Err(e) => self.error(&value.span(), key, e),
        }
    }

    /// `condition-path-exists`: one path or an array of them, each absolute, optionally
    /// prefixed by `!`; all must hold (e.g. a program and its configuration).
    fn conditions(&mut self, key: &str, value: &Spanned<DeValue<'_>>) -> Vec<PathCondition> {
        let items: Vec<&Spanned<DeValue<'_>>> = match value.get_ref().as_array() {
            Some(array) => array.iter().collect(),
            None => vec![value],
        };
        let mut conditions = Vec::new();
        for item in items {
            let Some(text) = item.get_ref().as_str() else {
                self.error(
                    &item.span(),
                    key,
                    format!(
                        "must be a path or an array of paths, not {}",
                        a_type(item.get_ref())
                    ),
                );
                continue;
            };
            let (negate, path) = match text.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, text),
            };
            if path.starts_with('/') {
                conditions.push(PathCondition {
                    path: path.into(),
                    negate,
                });
            } else {
                self.error(
                    &item.span(),
                    key,
                    format!("must be an absolute path (optionally prefixed by '!'), not {text:?}"),
                );
            }
        }
        conditions
    }

    fn names(&mut self, key: &str, value: &Spanned<DeValue<'_>>) -> Vec<String> {
        let Some(array) = value.get_ref().as_array() else {
            self.error(
                &value.span(),
                key,
                format!(
                    "must be an array of service names, not {}",
                    a_type(value.get_ref())
                ),
            );
            return Vec::new();
        };
        let mut names: Vec<String> = Vec::new();
        for item in array.iter() {
            match item.get_ref().as_str() {
                Some(name) => match check_service_name(name) {
                    Ok(()) if !names.iter().any(|n| n == name) => names.push(name.to_string()),
                    Ok(()) => {}
                    Err(e) => self.error(&item.span(), key, e),
                },
                None => self.error(
                    &item.span(),
                    key,
                    format!(
                        "every entry must be a service name (string), not {}",
                        a_type(item.get_ref())
                    ),
                ),
            }
        }
        names
    }
}

fn number(value: &DeValue<'_>) -> Option<f64> {
    match value {
        DeValue::Integer(i) if i.radix() == 10 => i.as_str().parse::<i64>().ok().map(|n| n as f64),
        DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
        _ => None,
    }
}

/// Everything read from the definition directories: the good definitions and every
/// problem found, files that failed, duplicates and graph problems included.
#[derive(Debug, Default)]
pub struct Loaded {
    pub definitions: BTreeMap<String, Definition>,
    pub errors: Vec<ConfigError>,
    /// Directories that exist but could not be read: their services keep running as
    /// they are (a rescan must not take them for removed).
    pub unreadable_dirs: Vec<PathBuf>,
    /// Services whose file exists but failed to parse.
    pub invalid: std::collections::BTreeSet<String>,
}

impl Loaded {
    pub fn specs(&self) -> BTreeMap<String, ServiceSpec> {
        self.definitions
            .iter()
            .map(|(n, d)| (n.clone(), d.spec.clone()))
            .collect()
    }
}

/// Reads every `*.toml` in `dirs`, in order. A missing directory is fine (the generated
/// one may not exist yet); the same service name twice keeps the first and reports the
/// second. Graph problems are checked too (see [`crate::graph::validate`]).
pub fn load_dirs(dirs: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded::default();
    confkit::each_config_file(dirs, |entry| match entry {
        ConfigEntry::File {
            dir_index,
            name,
            path,
        } => {
            // The first directory is the image's own (static); the later ones are
            // written at run time (dnsmasq-render: root without capabilities), and what
            // they hold is confined.
            load_file(&mut loaded, name, path, dir_index > 0);
        }
        ConfigEntry::Unreadable { dir, error } => {
            loaded.errors.push(error);
            loaded.unreadable_dirs.push(dir.to_path_buf());
        }
    });
    crate::graph::validate(&mut loaded);
    loaded
}

/// One definition file read into `loaded` (or its problems).
fn load_file(loaded: &mut Loaded, name: String, file: &Path, generated: bool) {
    if let Some(first) = loaded.definitions.get(&name) {
        let message = format!(
            "service {name:?} is already defined by {}; this file is ignored",
            first.spec.file.display()
        );
        loaded.errors.push(whole_file(file, message));
        return;
    }
    let text = match read_definition(file) {
        Ok(text) => text,
        Err(refused) => {
            loaded.errors.push(whole_file(file, refused));
            return;
        }
    };
    match parse_definition(&name, file, &text) {
        Ok(def) if generated && def.spec.run.is_none() => {
            let dir = file.parent().unwrap_or(file);
            loaded.errors.push(whole_file(
                file,
                format!(
                    "refused: a definition in {} (after the first definitions \
                     directory, where generated ones go) must have [run]: \
                     its writer must not be able to run a program with all of \
                     zedinit's privileges",
                    dir.display()
                ),
            ));
        }
        Ok(def) => {
            loaded.definitions.insert(name, def);
        }
        Err(errors) => {
            loaded.errors.extend(errors);
            loaded.invalid.insert(name);
        }
    }
}

/// Largest definition read (a real one is a few KiB); a bigger file is refused unread.
pub const MAX_DEFINITION_BYTES: u64 = 1024 * 1024;

/// A definition's text: a regular file, not a symlink, at most
/// [`MAX_DEFINITION_BYTES`], read without blocking (confkit's rule for every config file).
fn read_definition(file: &Path) -> Result<String, String> {
    confkit::read_config_file(file, MAX_DEFINITION_BYTES)
}

fn whole_file(file: &Path, message: String) -> ConfigError {
    ConfigError::whole_file(file, message)
}

/// `host:port` with a numeric port (IPv6 as `[::1]:80`).
fn valid_host_port(text: &str) -> bool {
    match text.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

#[cfg(test)]
mod tests;

mod run;
pub use run::{parse_bind, parse_rlimit};

/// `"10MiB"`, `"512KiB"`, `"1M"`, `"2000"` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. \"1MiB\")"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "KiB" | "k" => 1024,
        "M" | "MB" | "MiB" => 1024 * 1024,
        "G" | "GB" | "GiB" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?} (KiB, MiB, GiB)"
            ));
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}
