//! supctl: control and inspect zedinit over its control socket.

use clap::{Parser, Subcommand};
use confkit::durations::{format_duration, parse_duration};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use zedctr_proto::client::{Client, ClientError, socket_path};
// Everything printed for a person goes through `shown`: service names, states, notes,
// reasons and log lines come from services and definitions, and must not reach the
// terminal as control sequences. `--json` output stays JSON (serde escapes it).
use zedctr_proto::protocol::{ErrorKind, Request, Response, Verb};
use zedctr_proto::status::{Health, StatusReport};
use zedinit::escape::for_terminal as shown;

/// supctl's exit codes (README.md, "supctl").
mod code {
    pub const OK: u8 = 0;
    /// zedinit answered with an error, or `check` found problems.
    pub const ERROR: u8 = 1;
    /// A state-changing verb did not reach its state in time (or the service failed).
    pub const NOT_REACHED: u8 = 3;
    /// zedinit is not reachable.
    pub const UNREACHABLE: u8 = 4;
    /// The control socket is root-only.
    pub const PERMISSION: u8 = 77;
}

use supctl::export;

#[derive(Parser)]
#[command(name = "supctl", version, about = "Control and inspect zedinit")]
struct Cli {
    /// Control socket [env: ZEDCTR_CONTROL_SOCKET] [default: /run/zedctr/control.sock]
    #[arg(long, global = true)]
    control_socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show every service (or the named ones)
    Status {
        services: Vec<String>,
        /// Versioned JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// healthy / unhealthy with reasons; exit 1 when unhealthy
    Health {
        #[arg(long)]
        json: bool,
    },
    /// Start services and wait until they run (or are done / skipped)
    Start(StateVerb),
    /// Stop services and wait until they have no process; they stay down until started
    Stop(StateVerb),
    /// Stop and start services (only them) and wait for the new process
    Restart(StateVerb),
    /// Send a service its reload signal (reload-signal, default SIGHUP)
    Reload { service: String },
    /// Send a signal to a service's main process
    Signal { service: String, signal: String },
    /// Re-read the definition directories: start added, stop removed, restart changed
    Rescan,
    /// Show a service's captured output (the last lines kept in memory)
    Logs {
        service: String,
        /// How many of the last lines
        #[arg(short = 'n', long = "lines", default_value_t = 50)]
        lines: usize,
        /// Keep following new lines (until interrupted)
        #[arg(short, long)]
        follow: bool,
    },
    /// Ordered shutdown of every service, then zedinit exits
    Shutdown,
    /// Validate definition directories offline; exit 1 if anything is wrong
    Check {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Print the services as another runtime would run them, each in its own container
    Export {
        #[command(subcommand)]
        format: ExportFormat,
    },
}

#[derive(Subcommand)]
enum ExportFormat {
    /// linuxkit `onboot:`/`services:` entries, binds translated to host paths through build.yml
    Linuxkit {
        /// Definition directories (offline; zedinit need not run)
        #[arg(long = "services-dir", default_value = "/etc/zedctr/services")]
        dirs: Vec<PathBuf>,
        /// The container's linuxkit build.yml (its image and binds)
        #[arg(long, default_value = "build.yml")]
        build_yml: PathBuf,
    },
}

#[derive(clap::Args)]
struct StateVerb {
    #[arg(required = true)]
    services: Vec<String>,
    /// How long to wait for the new state
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Answer as soon as the request is accepted
    #[arg(long)]
    no_wait: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = socket_path(cli.control_socket);
    ExitCode::from(match run(&socket, cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("supctl: {}", shown(&e.to_string()));
            match e {
                ClientError::PermissionDenied(_) => code::PERMISSION,
                ClientError::NotRunning(..) => code::UNREACHABLE,
                ClientError::Protocol(_) => code::ERROR,
            }
        }
    })
}

const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

fn run(socket: &std::path::Path, command: Command) -> Result<u8, ClientError> {
    if let Command::Check { dirs } = &command {
        return Ok(check(dirs));
    }
    if let Command::Export {
        format: ExportFormat::Linuxkit { dirs, build_yml },
    } = &command
    {
        return Ok(export_linuxkit(dirs, build_yml));
    }
    let mut client = Client::connect(socket)?;
    match command {
        Command::Status { services, json } => {
            let response = client.call(&Request::new(Verb::Status), ANSWER_TIMEOUT)?;
            let Some(data) = ok_data(&response) else {
                return Ok(code::ERROR);
            };
            let mut report: StatusReport = serde_json::from_value(data.clone())
                .map_err(|e| ClientError::Protocol(format!("bad status from zedinit: {e}")))?;
            let unknown: Vec<&String> = services
                .iter()
                .filter(|s| report.service(s).is_none())
                .collect();
            if !unknown.is_empty() {
                let unknown: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
                eprintln!("supctl: unknown-service: {}", shown(&unknown.join(", ")));
                return Ok(code::ERROR);
            }
            if !services.is_empty() {
                report.services.retain(|s| services.contains(&s.name));
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print_table(&report);
            }
            Ok(code::OK)
        }
        Command::Health { json } => {
            let response = client.call(&Request::new(Verb::Health), ANSWER_TIMEOUT)?;
            let Some(data) = ok_data(&response) else {
                return Ok(code::ERROR);
            };
            let health: Health = serde_json::from_value(data.clone())
                .map_err(|e| ClientError::Protocol(format!("bad health from zedinit: {e}")))?;
            if json {
                println!("{}", serde_json::to_string(&health).unwrap_or_default());
            } else if health.healthy {
                println!("healthy");
            } else {
                println!("unhealthy");
                for reason in &health.reasons {
                    println!("  {}", shown(reason));
                }
            }
            Ok(if health.healthy {
                code::OK
            } else {
                code::ERROR
            })
        }
        Command::Start(v) => state_verb(&mut client, Verb::Start, v),
        Command::Stop(v) => state_verb(&mut client, Verb::Stop, v),
        Command::Restart(v) => state_verb(&mut client, Verb::Restart, v),
        Command::Reload { service } => {
            simple(&mut client, Request::for_service(Verb::Reload, &service))
        }
        Command::Signal { service, signal } => {
            let request = Request {
                signal: Some(signal),
                ..Request::for_service(Verb::Signal, &service)
            };
            simple(&mut client, request)
        }
        Command::Rescan => {
            let response = client.call(&Request::new(Verb::Rescan), ANSWER_TIMEOUT)?;
            let Some(data) = ok_data(&response) else {
                return Ok(code::ERROR);
            };
            for (key, label) in [
                ("added", "added"),
                ("removed", "removed"),
                ("changed", "changed"),
            ] {
                let names: Vec<&str> = data[key]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                    .unwrap_or_default();
                if !names.is_empty() {
                    println!("{label}: {}", shown(&names.join(", ")));
                }
            }
            let errors: Vec<&str> = data["definition_errors"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            for e in &errors {
                eprintln!("{}", shown(e));
            }
            Ok(if errors.is_empty() {
                code::OK
            } else {
                code::ERROR
            })
        }
        Command::Logs {
            service,
            lines,
            follow,
        } => logs(&mut client, &service, lines, follow),
        Command::Shutdown => simple(&mut client, Request::new(Verb::Shutdown)),
        Command::Check { .. } | Command::Export { .. } => Ok(code::OK),
    }
}

fn state_verb(client: &mut Client, verb: Verb, v: StateVerb) -> Result<u8, ClientError> {
    let mut worst = code::OK;
    for service in &v.services {
        let wait_ms = if v.no_wait {
            0
        } else {
            v.timeout.as_millis() as u64
        };
        let request = Request {
            wait_ms: Some(wait_ms),
            ..Request::for_service(verb, service)
        };
        let response = client.call(&request, v.timeout + ANSWER_TIMEOUT)?;
        if response.ok {
            let state = response
                .data
                .as_ref()
                .and_then(|d| d["state"].as_str())
                .unwrap_or("?");
            println!("{}: {}", shown(service), shown(state));
        } else {
            print_error(&response);
            let code = match response.error {
                Some(ErrorKind::Timeout | ErrorKind::Failed | ErrorKind::InvalidState) => {
                    code::NOT_REACHED
                }
                _ => code::ERROR,
            };
            worst = worst.max(code);
        }
    }
    Ok(worst)
}

fn simple(client: &mut Client, request: Request) -> Result<u8, ClientError> {
    let response = client.call(&request, ANSWER_TIMEOUT)?;
    if response.ok {
        if let Some(data) = &response.data {
            println!("{}", shown(&data.to_string()));
        }
        Ok(code::OK)
    } else {
        print_error(&response);
        Ok(code::ERROR)
    }
}

fn ok_data(response: &Response) -> Option<&serde_json::Value> {
    if response.ok {
        response.data.as_ref()
    } else {
        print_error(response);
        None
    }
}

fn print_error(response: &Response) {
    let kind = response.error.map(ErrorKind::as_str).unwrap_or("error");
    eprintln!(
        "supctl: {kind}: {}",
        shown(response.message.as_deref().unwrap_or(""))
    );
}

fn print_table(report: &StatusReport) {
    let ms = |v: Option<u64>| {
        v.map(|ms| format_duration(Duration::from_millis(ms)))
            .unwrap_or_else(|| "-".into())
    };
    let rows: Vec<[String; 9]> = report
        .services
        .iter()
        .map(|s| {
            [
                shown(&s.name).into_owned(),
                shown(&s.state).into_owned(),
                s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                s.uptime_ms
                    .map(|ms| format_duration(Duration::from_millis(ms)))
                    .unwrap_or_else(|| "-".into()),
                s.restarts.to_string(),
                s.last_exit
                    .as_ref()
                    .map(|e| shown(&e.to_string()).into_owned())
                    .unwrap_or_else(|| "-".into()),
                ms(s.next_retry_ms),
                ms(s.heartbeat_age_ms),
                shown(s.note.as_ref().or(s.status_text.as_ref()).map_or("", |t| t)).into_owned(),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "STATE",
        "PID",
        "UPTIME",
        "RESTARTS",
        "LAST-EXIT",
        "NEXT-RETRY",
        "BEAT",
        "NOTE",
    ];
    // In characters, as `{:<width$}` pads (a note may hold any letters).
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    if !report.supervisor.definition_errors.is_empty() {
        println!("\ndefinition errors (these services are not loaded):");
        for e in &report.supervisor.definition_errors {
            println!("  {}", shown(e));
        }
    }
}

fn export_linuxkit(dirs: &[PathBuf], build_yml: &std::path::Path) -> u8 {
    let text = match std::fs::read_to_string(build_yml) {
        Ok(text) => text,
        Err(e) => {
            let what = format!("{}: {e}", build_yml.display());
            eprintln!("supctl: {}", shown(&what));
            return code::ERROR;
        }
    };
    let container = match export::read_build_yml(build_yml, &text) {
        Ok(container) => container,
        Err(e) => {
            eprintln!("supctl: {}", shown(&e));
            return code::ERROR;
        }
    };
    let loaded = zedinit::parse::load_dirs(dirs);
    for e in &loaded.errors {
        eprintln!("supctl: {}", shown(&e.to_string()));
    }
    if !loaded.errors.is_empty() {
        return code::ERROR;
    }
    let specs = loaded.specs();
    // Dependency order, so the onboot entries run in the order zedinit would start them.
    let order = zedinit::graph::start_order(&specs);
    let ordered: Vec<&zedinit::spec::ServiceSpec> =
        order.iter().filter_map(|n| specs.get(n)).collect();
    match export::linuxkit(&ordered, &container) {
        Ok(yaml) => {
            print!("{yaml}");
            code::OK
        }
        Err(errors) => {
            for e in errors {
                eprintln!("supctl: {}", shown(&e));
            }
            code::ERROR
        }
    }
}

fn check(dirs: &[PathBuf]) -> u8 {
    for dir in dirs {
        if !dir.is_dir() {
            eprintln!("{}: not a directory", shown(&dir.display().to_string()));
            return code::ERROR;
        }
    }
    let loaded = zedinit::parse::load_dirs(dirs);
    for e in &loaded.errors {
        println!("{}", shown(&e.to_string()));
    }
    if loaded.errors.is_empty() {
        println!("ok: {} service(s)", loaded.definitions.len());
        code::OK
    } else {
        println!(
            "{} problem(s); {} good service(s)",
            loaded.errors.len(),
            loaded.definitions.len()
        );
        code::ERROR
    }
}

fn logs(client: &mut Client, service: &str, lines: usize, follow: bool) -> Result<u8, ClientError> {
    let request = Request {
        lines: Some(lines),
        follow: Some(follow),
        ..Request::for_service(Verb::Logs, service)
    };
    let mut response = client.call(&request, ANSWER_TIMEOUT)?;
    loop {
        let Some(data) = ok_data(&response) else {
            return Ok(code::ERROR);
        };
        for line in data["lines"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            println!("{}", shown(line.as_str().unwrap_or_default()));
        }
        if !follow {
            return Ok(code::OK);
        }
        // Following: new lines come as they are written, however long that takes.
        response = loop {
            match client.read_response(Duration::from_secs(3600)) {
                Ok(r) => break r,
                Err(ClientError::Protocol(m)) if m.starts_with("no answer") => continue,
                Err(e) => return Err(e),
            }
        };
    }
}
