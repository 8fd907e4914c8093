//! `dnsmasq-render`: renders the network instances for dnsmasq and keeps zedinit's
//! `dnsmasq@<bridge>` services in step, once (`--once`) or watching the directory.
//! Exit codes: 0 done (`--once`), 1 failed (every problem is printed), 2 usage.

use clap::Parser;
use dnsmasq_render::apply::Socket;
use dnsmasq_render::render::Layout;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "dnsmasq-render",
    version,
    about = "Network instances → dnsmasq configurations and dnsmasq@<bridge> services"
)]
struct Cli {
    /// The network-instance directory (one TOML per instance)
    #[arg(long, default_value = netinst::DEFAULT_DIR)]
    network_instances: PathBuf,
    /// Where configurations, hosts and reservations are written
    #[arg(long, default_value = "/run/zedctr/dnsmasq")]
    out_dir: PathBuf,
    /// Where the dnsmasq@<bridge> definitions are written (a zedinit --services-dir)
    #[arg(long, default_value = "/run/zedctr/services")]
    services_dir: PathBuf,
    /// zedinit's control socket (default: $ZEDCTR_CONTROL_SOCKET or /run/zedctr/control.sock)
    #[arg(long)]
    control_socket: Option<PathBuf>,
    /// The dnsmasq binary the definitions run
    #[arg(long, default_value = "/usr/sbin/dnsmasq")]
    dnsmasq: PathBuf,
    /// Render and apply once, then exit (otherwise: watch the directory)
    #[arg(long)]
    once: bool,
}

/// After a pass that could not finish (zedinit not up yet, busy), the next try: doubling
/// from the first to the last, so a lasting failure is retried without hammering.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_LAST: Duration = Duration::from_secs(60);
/// Without changes, a wake-up this often anyway (a pass that finds nothing does nothing).
const IDLE: Duration = Duration::from_secs(3600);

fn main() -> ExitCode {
    let cli = Cli::parse();
    svclog::init("dnsmasq-render");
    let layout = Layout {
        out_dir: cli.out_dir,
        services_dir: cli.services_dir,
        dnsmasq: cli.dnsmasq,
    };
    let mut control = Socket {
        path: zedctr_proto::client::socket_path(cli.control_socket),
        wait: Duration::from_secs(15),
    };
    // What a pass has to say: a bad instance file, a step that failed (to be retried).
    let mut report = |message: String| tracing::warn!("{message}");
    if cli.once {
        let pass =
            dnsmasq_render::run_once(&cli.network_instances, &layout, &mut control, &mut report);
        return if pass.done && !pass.bad_instances {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let mut watcher = match netinst::Watcher::new(&cli.network_instances) {
        Ok(watcher) => watcher,
        Err(e) => {
            tracing::error!(
                dir = %cli.network_instances.display(),
                "can't watch the network instances: {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    let mut retry = RETRY_FIRST;
    loop {
        // Every pass starts from what is on disk and what is owed: a retry is just a pass.
        let pass =
            dnsmasq_render::run_once(&cli.network_instances, &layout, &mut control, &mut report);
        let wait = if pass.done {
            retry = RETRY_FIRST;
            IDLE
        } else {
            let wait = retry;
            retry = (retry * 2).min(RETRY_LAST);
            wait
        };
        watcher.wait_for_change(wait);
    }
}
