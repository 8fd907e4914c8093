//! localds: resolve a `.local` host the way the downloader does, for a person or a test.
//!
//!   localds resolve HOST [--instances DIR] [--methods a-query,workstation,http,https]
//!                        [--budget DURATION] [--settle DURATION] [--set-aside BRIDGE=IP]...
//! `--set-aside`: an address on that bridge that failed a download before (refused
//! connections, or served what failed it), as the downloader's retries pass it: used
//! only if nothing else answers.
//! Prints the result as JSON; exit 0 found, 1 not found, 2 usage.

use clap::{Args, Parser, Subcommand};
// Durations as every zedctr binary and definition takes them (`500ms`, `5s`, `2m`, or
// bare seconds): one syntax.
use confkit::durations::parse_duration;
use localds::{Method, Options};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "localds",
    version,
    about = "Find a `.local` datastore app by mDNS on the network-instance bridges"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Look HOST up as the downloader does; print the result as JSON.
    Resolve(ResolveArgs),
}

#[derive(Args)]
struct ResolveArgs {
    /// The host, `NAME.local`.
    host: String,
    /// Network instances: their bridges are where HOST is looked for
    #[arg(long, default_value = netinst::DEFAULT_DIR)]
    instances: PathBuf,
    /// Methods, in preference order
    #[arg(long, default_value = "a-query,workstation,http,https", value_parser = methods)]
    methods: MethodList,
    /// Total time the lookup may take [default: 4s]
    #[arg(long, value_parser = parse_duration, conflicts_with = "budget_ms")]
    budget: Option<Duration>,
    /// The same in milliseconds (the flag's earlier spelling)
    #[arg(long, hide = true)]
    budget_ms: Option<u64>,
    /// After the first answer, how long other bridges may still answer it, unless the
    /// network instance confirms it (a lease, reservation or `hosts` entry) [default: 50ms]
    #[arg(long, value_parser = parse_duration, conflicts_with = "settle_ms")]
    settle: Option<Duration>,
    /// The same in milliseconds
    #[arg(long, hide = true)]
    settle_ms: Option<u64>,
    /// BRIDGE=IPv4: an address that failed this download before, used only if nothing
    /// else answers (repeatable)
    #[arg(long, value_parser = set_aside)]
    set_aside: Vec<(String, Ipv4Addr)>,
}

/// A parsed `--methods` (clap's value parsers can't return a Vec for one value).
#[derive(Clone)]
struct MethodList(Vec<Method>);

fn methods(text: &str) -> Result<MethodList, String> {
    text.split(',')
        .map(Method::parse)
        .collect::<Result<_, _>>()
        .map(MethodList)
}

fn set_aside(text: &str) -> Result<(String, Ipv4Addr), String> {
    text.split_once('=')
        .and_then(|(b, ip)| Some((b.to_string(), ip.parse().ok()?)))
        .ok_or(format!("{text:?} is not BRIDGE=IPv4"))
}

fn main() -> ExitCode {
    let Command::Resolve(args) = Cli::parse().command;
    let defaults = Options::default();
    let opts = Options {
        methods: args.methods.0,
        budget: args
            .budget
            .or(args.budget_ms.map(Duration::from_millis))
            .unwrap_or(defaults.budget),
        settle: args
            .settle
            .or(args.settle_ms.map(Duration::from_millis))
            .unwrap_or(defaults.settle),
        set_aside: args.set_aside,
    };
    let loaded = netinst::load_dir(&args.instances);
    for e in &loaded.errors {
        eprintln!("localds: {e}");
    }
    let host = &args.host;
    match localds::resolve(host, &loaded.instances, &opts) {
        Ok(found) => {
            println!("{}", serde_json::to_string(&found).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(nf) => {
            println!("{}", serde_json::to_string(&nf).unwrap_or_default());
            eprintln!("localds: {host}: {nf}");
            ExitCode::FAILURE
        }
    }
}
