//! `dnsmasq-render`: renders the network instances for dnsmasq and keeps zedinit's
//! `dnsmasq@<bridge>` services in step, once (`--once`) or watching the directory; or,
//! with `--supervise` (no zedinit), runs those dnsmasq itself.
//! Exit codes: 0 done (`--once`) or stopped by SIGTERM/SIGINT (`--supervise`), 1 failed
//! (every problem is printed), 2 usage.

use clap::Parser;
use dnsmasq_render::apply::Socket;
use dnsmasq_render::render::Layout;
use dnsmasq_render::supervisor::Supervisor;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

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
    #[arg(long, conflicts_with = "supervise")]
    once: bool,
    /// No zedinit (its own container): run, restart and reap the dnsmasq@<bridge>
    /// definitions itself instead of asking zedinit; SIGTERM stops them all
    #[arg(long, conflicts_with = "control_socket")]
    supervise: bool,
}

/// `--supervise`: how long a dnsmasq has to exit after SIGTERM before SIGKILL (the
/// generated definition's `[stop] timeout`).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

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
    if cli.supervise {
        return match supervise(&cli.network_instances, &layout) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::FAILURE
            }
        };
    }
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
    let mut retry = Retry::default();
    loop {
        // Every pass starts from what is on disk and what is owed: a retry is just a pass.
        let pass =
            dnsmasq_render::run_once(&cli.network_instances, &layout, &mut control, &mut report);
        watcher.wait_for_change(retry.after(pass.done));
    }
}

/// The wait before the next pass: long when the last one was done, else doubling.
struct Retry(Duration);

impl Default for Retry {
    fn default() -> Self {
        Retry(RETRY_FIRST)
    }
}

impl Retry {
    fn after(&mut self, done: bool) -> Duration {
        if done {
            self.0 = RETRY_FIRST;
            return IDLE;
        }
        let wait = self.0;
        self.0 = (self.0 * 2).min(RETRY_LAST);
        wait
    }
}

/// What woke the supervising loop.
enum Wake {
    /// The instances changed, or a retry of the pass is due.
    Pass,
    /// SIGTERM or SIGINT.
    Stop,
}

/// `--supervise`: the passes as without it, with `Supervisor` as the control; between
/// them, children are reaped (SIGCHLD) and restarted when their backoff is over.
fn supervise(instances: &std::path::Path, layout: &Layout) -> Result<(), String> {
    let mut mask = SigSet::empty();
    for signal in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(signal);
    }
    mask.thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| format!("signalfd: {e}"))?;
    let mut watcher = netinst::Watcher::new(instances).map_err(|e| {
        format!(
            "can't watch the network instances {}: {e}",
            instances.display()
        )
    })?;
    let mut supervisor = Supervisor::new(layout.services_dir.clone(), STOP_TIMEOUT);
    // What an earlier run of ours defined (a restart of this container) runs again,
    // even if the first pass finds nothing to change and so asks no rescan.
    supervisor.rescan();
    let mut report = |message: String| tracing::warn!("{message}");
    let mut retry = Retry::default();
    loop {
        let pass = dnsmasq_render::run_once(instances, layout, &mut supervisor, &mut report);
        let next_pass = Instant::now() + retry.after(pass.done);
        match wait(&signals, &mut watcher, &mut supervisor, next_pass)? {
            Wake::Pass => {}
            Wake::Stop => {
                tracing::info!("stopping every dnsmasq");
                supervisor.stop_all();
                return Ok(());
            }
        }
    }
}

/// Waits for a change of the instances or `next_pass`, reaping and restarting
/// children meanwhile.
fn wait(
    signals: &SignalFd,
    watcher: &mut netinst::Watcher,
    supervisor: &mut Supervisor,
    next_pass: Instant,
) -> Result<Wake, String> {
    loop {
        let until = supervisor
            .next_due()
            .map_or(next_pass, |d| d.min(next_pass));
        let left = until.saturating_duration_since(Instant::now());
        // Rounded up: a wake-up a little early would only spin.
        let ms = left.as_millis().saturating_add(1).min(i32::MAX as u128) as i32;
        let mut fds = [
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(watcher.fd(), PollFlags::POLLIN),
        ];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let mut stop = false;
        while let Ok(Some(info)) = signals.read_signal() {
            stop |= info.ssi_signo != Signal::SIGCHLD as u32;
        }
        // SIGCHLDs coalesce: every wake-up reaps whatever has exited.
        supervisor.reap();
        if stop {
            return Ok(Wake::Stop);
        }
        supervisor.tick();
        if watcher.changed() || Instant::now() >= next_pass {
            return Ok(Wake::Pass);
        }
    }
}
