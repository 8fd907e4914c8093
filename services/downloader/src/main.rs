//! `downloader`: the command line. Parses arguments, starts the runtime, hands over to
//! `serve::run` or `fetch::run`, and maps how they ended to an exit code:
//! 0 done, 1 failed (the message says why), 2 usage, 130 interrupted (fetch).

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
// Durations as every zedctr binary and definition takes them (`500ms`, `5s`, `2m`, `1h`,
// or bare seconds): one syntax.
use confkit::durations::parse_duration;
use downloader::backoff::Backoff;
use downloader::client::parse_ca_chain;
use downloader::engine::{Job, RetryLimit, Settings};
use downloader::fetch::{self, FetchEnd, FetchOptions};
use downloader::heartbeat;
use downloader::resolve::{LocalDatastore, Resolver};
use downloader::serve::{self, ServeOptions};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "downloader",
    version,
    about = "Verified, resumable HTTP(S) downloads"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Watch a directory of requests; write status files; place verified files.
    Serve(ServeArgs),
    /// Download one URL to a file, verifying its sha256.
    Fetch(FetchArgs),
}

/// How hard to try (both commands).
#[derive(Args)]
struct Tuning {
    /// No data for this long ends an attempt (also bounds connect and response headers).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    stall_timeout: Duration,
    /// Retries after a failed attempt, counted since the last attempt that made
    /// progress: a number, or `unlimited` [default: serve unlimited, fetch 5]
    #[arg(long)]
    retries: Option<RetryLimit>,
    /// First retry delay; doubles each time (with jitter) up to --backoff-max.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    backoff_base: Duration,
    /// The longest retry delay (each is a random point in the upper half of its step).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    backoff_max: Duration,
    /// Network instances: a `.local` datastore host is looked up by mDNS on their bridges
    #[arg(long, default_value = netinst::DEFAULT_DIR)]
    network_instances: std::path::PathBuf,
    /// mDNS methods for `.local` hosts, in preference order
    #[arg(long, default_value = "a-query,workstation,http,https")]
    mdns_methods: String,
    /// Total time the `.local` lookup may take
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    mdns_budget: Duration,
    /// After a `.local` host's first answer, how long other bridges may still answer it
    /// (none when the network instance confirms it: a lease, reservation or `hosts` entry)
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    mdns_settle: Duration,
}

/// `serve` retries transient failures for as long as the request exists (nobody is there
/// to retry by hand; removing the request stops it). `fetch` has a person waiting: five
/// retries without progress, then the cause, unless they ask for more.
const SERVE_RETRIES: RetryLimit = RetryLimit::Unlimited;
const FETCH_RETRIES: RetryLimit = RetryLimit::AtMost(5);

impl Tuning {
    fn settings(&self, default_retries: RetryLimit) -> Settings {
        Settings {
            stall_timeout: self.stall_timeout,
            retries: self.retries.unwrap_or(default_retries),
            backoff: Backoff {
                base: self.backoff_base,
                max: self.backoff_max.max(self.backoff_base),
            },
            resolver: Resolver::WithLocal(LocalDatastore {
                instances_dir: self.network_instances.clone(),
                options: localds::Options {
                    methods: self
                        .mdns_methods
                        .split(',')
                        .filter_map(|m| localds::Method::parse(m).ok())
                        .collect(),
                    budget: self.mdns_budget,
                    settle: self.mdns_settle,
                    set_aside: Vec::new(),
                },
            }),
        }
    }
}

#[derive(Args)]
struct ServeArgs {
    /// Requests: one `<key>.json` per download.
    #[arg(long, default_value = "/run/downloader/config")]
    config_dir: PathBuf,
    /// Where `<key>.json` status files are written.
    #[arg(long, default_value = "/run/downloader/status")]
    status_dir: PathBuf,
    /// Verified files land at `<download-dir>/<sha256>` (their `.part` beside them).
    #[arg(long, default_value = "/persist/downloads")]
    download_dir: PathBuf,
    /// Downloads transferring at once; the others wait in state `initial`.
    #[arg(long, default_value_t = 2)]
    max_concurrent: usize,
    /// How often `$ZEDCTR_HEARTBEAT_FILE` is touched.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    heartbeat_interval: Duration,
    #[command(flatten)]
    tuning: Tuning,
}

#[derive(Args)]
struct FetchArgs {
    /// http:// or https:// URL.
    url: reqwest::Url,
    /// Expected sha256, 64 hex digits.
    #[arg(long, value_parser = sha256)]
    sha256: String,
    /// Output file (`FILE.part` while downloading).
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Expected size in bytes (default: the server's Content-Length).
    #[arg(long)]
    size: Option<u64>,
    /// PEM file with the CA chain to trust instead of the system roots.
    #[arg(long)]
    ca_chain: Option<PathBuf>,
    #[command(flatten)]
    tuning: Tuning,
}

fn sha256(text: &str) -> Result<String, String> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!("{text:?} is not 64 hex digits"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    svclog::init("downloader");
    downloader::heap::tune();
    let runtime = match runtime_for(&cli.command) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("downloader: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = match cli.command {
        Command::Serve(args) => runtime.block_on(run_serve(args)),
        Command::Fetch(args) => runtime.block_on(run_fetch(args)),
    };
    match code {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

/// `fetch` runs one download: its async side is one connection, so one thread, where the
/// HTTP connection task and the engine hand chunks over without a cross-thread wake-up
/// each (hashing and writing have threads of their own: `pipeline.rs`). Measured (issue
/// 5's benchmark): ~10,000 fewer context switches and ~0.1 CPU-s less per GiB than two
/// workers. `serve` runs several downloads and the request watcher: two workers.
fn runtime_for(command: &Command) -> std::io::Result<tokio::runtime::Runtime> {
    match command {
        Command::Fetch(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Command::Serve(_) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    }
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let opts = ServeOptions {
        config_dir: args.config_dir,
        status_dir: args.status_dir,
        download_dir: args.download_dir,
        max_concurrent: args.max_concurrent,
        settings: args.tuning.settings(SERVE_RETRIES),
        heartbeat_file: heartbeat::from_env(),
        heartbeat_interval: args.heartbeat_interval,
    };
    let shutdown = shutdown_signal()?;
    serve::run(opts, async move {
        shutdown.cancelled().await;
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn run_fetch(args: FetchArgs) -> anyhow::Result<ExitCode> {
    let ca_chain = match &args.ca_chain {
        None => None,
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --ca-chain {}", path.display()))?;
            Some(parse_ca_chain(&pem).with_context(|| format!("--ca-chain {}", path.display()))?)
        }
    };
    if !matches!(args.url.scheme(), "http" | "https") {
        anyhow::bail!("{}: only http:// and https:// URLs", args.url);
    }
    let opts = FetchOptions {
        job: Job {
            url: args.url.clone(),
            sha256: args.sha256,
            size: args.size,
            ca_chain,
            target: args.output,
        },
        settings: args.tuning.settings(FETCH_RETRIES),
        tty: std::io::stderr().is_terminal(),
    };
    let interrupt = shutdown_signal()?;
    Ok(match fetch::run(opts, interrupt).await {
        FetchEnd::Done(_) => ExitCode::SUCCESS,
        FetchEnd::Failed(e) => {
            eprintln!("downloader: fetch {} failed: {e}", args.url);
            ExitCode::from(1)
        }
        FetchEnd::Interrupted => {
            eprintln!("downloader: interrupted; the .part is kept, run the same command to resume");
            ExitCode::from(130)
        }
    })
}

/// A token cancelled by SIGTERM or SIGINT.
fn shutdown_signal() -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        t.cancel();
    });
    Ok(token)
}
