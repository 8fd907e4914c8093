//! supctl: control and inspect zedinit over its control socket. This file is the
//! command line and its dispatch; each verb group is a file of `commands/`.

mod commands;

use clap::{Parser, Subcommand};
use commands::{code, definitions, logs, rescan, shown, state, status};
use confkit::durations::parse_duration;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use supctl::export;
use zedctr_proto::client::{Client, ClientError, socket_path};
use zedctr_proto::protocol::{Request, Verb};

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
        /// The image's root: user and group names become numbers through its
        /// etc/passwd and etc/group (linuxkit reads a name as a user of its own making)
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
    /// The services' inter-dependency list (docs/services.md): needs, shared paths, privileges
    Markdown {
        /// Definition directories (offline; zedinit need not run)
        #[arg(long = "services-dir", default_value = "/etc/zedctr/services")]
        dirs: Vec<PathBuf>,
        /// The container's linuxkit build.yml (its binds: paths are shown as the device's)
        #[arg(long, default_value = "build.yml")]
        build_yml: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct StateVerb {
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

fn run(socket: &std::path::Path, command: Command) -> Result<u8, ClientError> {
    if let Command::Check { dirs } = &command {
        return Ok(definitions::check(dirs));
    }
    if let Command::Export { format } = &command {
        return Ok(match format {
            ExportFormat::Linuxkit {
                dirs,
                build_yml,
                root,
            } => definitions::export(dirs, build_yml, Some(root), export::linuxkit),
            ExportFormat::Markdown { dirs, build_yml } => {
                definitions::export(dirs, build_yml, None, export::markdown)
            }
        });
    }
    let mut client = Client::connect(socket)?;
    match command {
        Command::Status { services, json } => status::status(&mut client, &services, json),
        Command::Health { json } => status::health(&mut client, json),
        Command::Start(v) => state::state_verb(&mut client, Verb::Start, v),
        Command::Stop(v) => state::state_verb(&mut client, Verb::Stop, v),
        Command::Restart(v) => state::state_verb(&mut client, Verb::Restart, v),
        Command::Reload { service } => {
            commands::simple(&mut client, Request::for_service(Verb::Reload, &service))
        }
        Command::Signal { service, signal } => {
            let request = Request {
                signal: Some(signal),
                ..Request::for_service(Verb::Signal, &service)
            };
            commands::simple(&mut client, request)
        }
        Command::Rescan => rescan::rescan(&mut client),
        Command::Logs {
            service,
            lines,
            follow,
        } => logs::logs(&mut client, &service, lines, follow),
        Command::Shutdown => commands::simple(&mut client, Request::new(Verb::Shutdown)),
        Command::Check { .. } | Command::Export { .. } => Ok(code::OK),
    }
}
