//! `zedwatchdog`: the command line and the loop. Exit codes: 0 stopped by SIGTERM or
//! SIGINT (the device disarmed unless --keep-armed), 1 the device could not be opened or
//! fed (or inotify could not be had), 2 usage.

use clap::{Parser, ValueEnum};
use tracing::{error, info, warn};
// Durations as every zedctr binary and definition takes them (`500ms`, `5s`, `2m`, `1h`,
// or bare seconds): one syntax.
use confkit::durations::parse_duration;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::collections::BTreeSet;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};
use zedwatchdog::device::Device;
use zedwatchdog::observe::PidNamespace;
use zedwatchdog::record::{self, Recorder};
use zedwatchdog::registry::Registry;
use zedwatchdog::{boot, observe, verdict};

#[derive(Parser)]
#[command(
    name = "zedwatchdog",
    version,
    about = "Feed the watchdog only while zedinit is healthy and answers in time"
)]
struct Cli {
    /// No zedinit to ask (each service its own container): gate on the services'
    /// heartbeat files (--heartbeat) instead of zedinit's `health`. Explicit: a control
    /// socket missing because zedinit died must withhold, not switch modes
    #[arg(long)]
    without_zedinit: bool,
    /// Without zedinit: a service whose heartbeat file <heartbeat-dir>/NAME.touch must
    /// be touched within MAX-AGE (its [heartbeat] max-age plus grace); repeatable
    #[arg(long, value_name = "NAME=MAX-AGE", requires = "without_zedinit")]
    heartbeat: Vec<observe::Expected>,
    /// Without zedinit: where the heartbeat files are (zedinit's --heartbeat-dir)
    #[arg(long, default_value = "/run", requires = "without_zedinit")]
    heartbeat_dir: PathBuf,
    /// Without zedinit: a heartbeat file not made yet withholds only once this long has
    /// passed since zedwatchdog started (its service may still be starting)
    #[arg(long, default_value = "60s", value_parser = parse_duration, requires = "without_zedinit")]
    heartbeat_grace: Duration,
    /// The watchdog device
    #[arg(long, default_value = "/dev/watchdog")]
    device: PathBuf,
    /// Ask the driver for this timeout (seconds); by default the driver's own stays
    #[arg(long)]
    timeout: Option<i32>,
    /// How often to check and feed
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    interval: Duration,
    /// zedinit must answer `health` within this
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    health_deadline: Duration,
    /// zedinit's control socket (default: $ZEDCTR_CONTROL_SOCKET or /run/zedctr/control.sock)
    #[arg(long)]
    control_socket: Option<PathBuf>,
    /// EVE's registrations: <registry>/file/<name> and <registry>/pid/<name>
    #[arg(long, default_value = "/run/watchdog")]
    registry: PathBuf,
    /// Where the registered names are: <run-dir>/<name>
    #[arg(long, default_value = "/run")]
    run_dir: PathBuf,
    /// A registered touch file older than this withholds feeding
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    touch_budget: Duration,
    /// On SIGTERM, leave the watchdog armed (the device reboots unless something else feeds it)
    #[arg(long)]
    keep_armed: bool,
    /// Whose pids the registered pid files hold: host (one not found is dead), private
    /// (one not found may live where we can't see: noted), auto (host when our pid
    /// namespace is the kernel's initial one)
    #[arg(long, value_enum, default_value_t = Namespace::Auto)]
    pid_namespace: Namespace,
    /// Keep why feeding stopped (withholding.json) and why the last boot ended
    /// (last-boot.json) here, across reboots; nothing is kept without it
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Namespace {
    Auto,
    Host,
    Private,
}

/// What woke the wait between rounds.
enum Wake {
    Round,
    Stop,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    svclog::init("zedwatchdog");
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn pid_namespace(cli: &Cli) -> (PidNamespace, String) {
    match cli.pid_namespace {
        Namespace::Auto => observe::pid_namespace(),
        Namespace::Host => (
            PidNamespace::Host,
            "the host's (--pid-namespace host): a registered pid not found is dead".into(),
        ),
        Namespace::Private => (
            PidNamespace::Private,
            "private (--pid-namespace private): a registered pid not found is only noted".into(),
        ),
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| format!("signalfd: {e}"))?;
    let socket = zedctr_proto::client::socket_path(cli.control_socket.clone());
    // Everything that can fail or read a disk comes before the device is opened (armed).
    let mut registry = Registry::open(&cli.registry)?;
    let (namespace, why) = pid_namespace(cli);
    info!(namespace = ?namespace, "pid namespace: {why}");
    say_mode(cli);
    let started = Instant::now();
    let mut recorder = cli
        .state_dir
        .as_ref()
        .map(|dir| Recorder::open(dir, record::boot_id()));
    let mut device =
        Device::open(&cli.device).map_err(|e| format!("{}: {e}", cli.device.display()))?;
    if let Some(seconds) = cli.timeout {
        set_timeout(cli, &device, seconds);
    }
    let timeout = device.timeout().ok();
    previous_boot(cli, &device, recorder.as_mut());
    // What was last said: the reasons to withhold (none: feeding), ages aside.
    let mut last_said: Option<Vec<String>> = None;
    let mut noted: BTreeSet<String> = BTreeSet::new();
    loop {
        let round = Instant::now();
        let services = services(cli, &socket, started);
        let now = SystemTime::now();
        let touches = observe::touches(&registry.names("file"), &cli.run_dir, now);
        let pids = observe::pids(&registry.names("pid"), &cli.run_dir, namespace);
        let verdict = verdict::decide(&services, &touches, &pids, cli.touch_budget);
        for note in &verdict.notes {
            if noted.insert(note.clone()) {
                info!("{note}");
            }
        }
        if verdict.feed {
            device
                .feed()
                .map_err(|e| format!("{}: feeding: {e}", cli.device.display()))?;
        }
        // After the feed: a slow disk must not delay it.
        if let Some(recorder) = recorder.as_mut() {
            for failure in recorder.after_round(&verdict.reasons, timeout, SystemTime::now()) {
                if noted.insert(failure.clone()) {
                    warn!(failure = %failure, "cannot record");
                }
            }
        }
        // Say it when it changes (feeding or not, or why not), not every round.
        let gist = record::gist(&verdict.reasons);
        if last_said.as_ref() != Some(&gist) {
            if verdict.feed && cli.without_zedinit {
                info!("feeding the watchdog: heartbeats fresh, registrations fresh");
            } else if verdict.feed {
                info!("feeding the watchdog: zedinit healthy, registrations fresh");
            } else {
                let reasons = verdict.reasons.join("; ");
                warn!(reasons = %reasons, "NOT feeding the watchdog: {reasons}");
            }
            last_said = Some(gist);
        }
        match wait(&signals, &mut registry, round + cli.interval)? {
            Wake::Round => {}
            Wake::Stop => return stop(cli, device, recorder.as_mut()),
        }
    }
}

/// What says the services are well this round: zedinit's `health`, or without zedinit
/// the heartbeat files (a missing one counts once the grace since `started` is over).
fn services(cli: &Cli, socket: &std::path::Path, started: Instant) -> verdict::Services {
    if !cli.without_zedinit {
        return verdict::Services::Zedinit(observe::health(socket, cli.health_deadline));
    }
    verdict::Services::Heartbeats {
        beats: observe::heartbeats(&cli.heartbeat, &cli.heartbeat_dir, SystemTime::now()),
        in_grace: started.elapsed() < cli.heartbeat_grace,
    }
}

/// Says once what feeding depends on besides the registrations.
fn say_mode(cli: &Cli) {
    if !cli.without_zedinit {
        return;
    }
    let beats: Vec<String> = cli
        .heartbeat
        .iter()
        .map(|e| format!("{} within {}s", e.service, e.budget.as_secs_f64()))
        .collect();
    if beats.is_empty() {
        warn!("without zedinit and no --heartbeat: only EVE's registrations decide the feeding");
    } else {
        info!(
            dir = %cli.heartbeat_dir.display(),
            "without zedinit: heartbeats in {}: {}",
            cli.heartbeat_dir.display(),
            beats.join(", ")
        );
    }
}

/// Reads the driver's boot status and says why the previous boot ended (with a state
/// directory, `last-boot.json` is written after the first round).
fn previous_boot(cli: &Cli, device: &Device, recorder: Option<&mut Recorder>) {
    let support = device.support();
    let status = device.boot_status();
    let reason = match recorder {
        Some(recorder) => recorder.boot(&cli.device, &support, &status, SystemTime::now()),
        None => boot::summary(
            boot::watchdog_reset(
                status.as_ref().ok().copied(),
                support.as_ref().ok().map(|s| s.options),
            ),
            None,
        ),
    };
    if let Err(e) = &status {
        warn!(device = %cli.device.display(), "no boot status: {e}");
    }
    info!(reason = %reason, "previous boot: {reason}");
}

fn set_timeout(cli: &Cli, device: &Device, seconds: i32) {
    match device.set_timeout(seconds) {
        Ok(set) => {
            info!(device = %cli.device.display(), timeout_s = set, "timeout {set}s");
            // A round takes up to interval + deadline; a restart of this service adds
            // its backoff. Less than three rounds of slack reboots a merely slow device.
            let round = (cli.interval + cli.health_deadline).as_secs_f64();
            if f64::from(set) < 3.0 * round {
                warn!(
                    "a {set}s timeout is less than three rounds ({round:.0}s \
                     each: --interval + --health-deadline)"
                );
            }
        }
        Err(e) => warn!(device = %cli.device.display(), "cannot set the timeout: {e}"),
    }
}

/// SIGTERM or SIGINT: disarm (unless --keep-armed), and then no withholding stands.
fn stop(cli: &Cli, device: Device, recorder: Option<&mut Recorder>) -> Result<(), String> {
    if cli.keep_armed {
        info!("stopping; the watchdog stays armed");
        return Ok(());
    }
    device
        .disarm()
        .map_err(|e| format!("{}: disarming: {e}", cli.device.display()))?;
    info!("stopping; the watchdog is disarmed");
    if let Some(Err(e)) = recorder.map(Recorder::fed) {
        warn!(failure = %e, "cannot record");
    }
    Ok(())
}

/// Waits until `until` for the next round; a registration added or removed brings it
/// forward (it takes effect at once); SIGTERM or SIGINT ends the wait with `Stop`.
fn wait(signals: &SignalFd, registry: &mut Registry, until: Instant) -> Result<Wake, String> {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let ms = left.as_millis().min(u128::from(u32::MAX >> 1)) as u32;
        let mut fds = [
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(registry.fd(), PollFlags::POLLIN),
        ];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let registry_ready = fds[1]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN));
        if matches!(signals.read_signal(), Ok(Some(_))) {
            return Ok(Wake::Stop);
        }
        if registry_ready && registry.on_events()? {
            return Ok(Wake::Round);
        }
        if Instant::now() >= until {
            return Ok(Wake::Round);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_syntax_every_zedctr_binary_takes() {
        // Bare seconds, as supctl and the definitions take them (humantime refused "5").
        let cli = Cli::try_parse_from([
            "zedwatchdog",
            "--interval",
            "5",
            "--health-deadline",
            "500ms",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cli.interval, Duration::from_secs(5));
        assert_eq!(cli.health_deadline, Duration::from_millis(500));
        assert!(Cli::try_parse_from(["zedwatchdog", "--interval", "5 parsecs"]).is_err());
    }

    #[test]
    fn heartbeats_are_only_taken_without_zedinit() {
        // With zedinit, its own [heartbeat] check is the one: a second one here is refused.
        assert!(Cli::try_parse_from(["zedwatchdog", "--heartbeat", "a=30s"]).is_err());
        let cli = Cli::try_parse_from([
            "zedwatchdog",
            "--without-zedinit",
            "--heartbeat",
            "a=30s",
            "--heartbeat",
            "b=2m",
            "--heartbeat-dir",
            "/run/zedctr/heartbeats",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cli.heartbeat.len(), 2);
        assert_eq!(cli.heartbeat[1].budget, Duration::from_secs(120));
        assert_eq!(cli.heartbeat_grace, Duration::from_secs(60));
    }
}
