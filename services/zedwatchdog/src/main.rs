//! `zedwatchdog`: the command line and the loop. Exit codes: 0 stopped by SIGTERM or
//! SIGINT (the device disarmed unless --keep-armed), 1 the device could not be opened or
//! fed, 2 usage.

use clap::Parser;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};
use zedwatchdog::device::Device;
use zedwatchdog::{observe, verdict};

#[derive(Parser)]
#[command(
    name = "zedwatchdog",
    version,
    about = "Feed the watchdog only while zedinit is healthy and answers in time"
)]
struct Cli {
    /// The watchdog device
    #[arg(long, default_value = "/dev/watchdog")]
    device: PathBuf,
    /// Ask the driver for this timeout (seconds); by default the driver's own stays
    #[arg(long)]
    timeout: Option<i32>,
    /// How often to check and feed
    #[arg(long, default_value = "5s", value_parser = duration)]
    interval: Duration,
    /// zedinit must answer `health` within this
    #[arg(long, default_value = "2s", value_parser = duration)]
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
    #[arg(long, default_value = "300s", value_parser = duration)]
    touch_budget: Duration,
    /// On SIGTERM, leave the watchdog armed (the device reboots unless something else feeds it)
    #[arg(long)]
    keep_armed: bool,
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e} (e.g. 500ms, 5s)"))
}

fn say(text: &str) {
    eprintln!("zedwatchdog: {text}");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&e);
            ExitCode::FAILURE
        }
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
    let socket = zedctr::client::socket_path(cli.control_socket.clone());
    let mut device =
        Device::open(&cli.device).map_err(|e| format!("{}: {e}", cli.device.display()))?;
    if let Some(seconds) = cli.timeout {
        match device.set_timeout(seconds) {
            Ok(set) => {
                say(&format!("{}: timeout {set}s", cli.device.display()));
                // A round takes up to interval + deadline; a restart of this service adds
                // its backoff. Less than three rounds of slack reboots a merely slow device.
                let round = (cli.interval + cli.health_deadline).as_secs_f64();
                if f64::from(set) < 3.0 * round {
                    say(&format!(
                        "warning: a {set}s timeout is less than three rounds ({round:.0}s \
                         each: --interval + --health-deadline)"
                    ));
                }
            }
            Err(e) => say(&format!(
                "{}: cannot set the timeout: {e}",
                cli.device.display()
            )),
        }
    }
    // What was last said: the reasons to withhold (none: feeding), ages aside.
    let mut last_said: Option<Vec<String>> = None;
    let mut noted: Vec<String> = Vec::new();
    loop {
        let round = Instant::now();
        let health = observe::health(&socket, cli.health_deadline);
        let touches = observe::touches(&cli.registry, &cli.run_dir, SystemTime::now());
        let pids = observe::pids(&cli.registry, &cli.run_dir);
        let verdict = verdict::decide(&health, &touches, &pids, cli.touch_budget);
        for note in &verdict.notes {
            if !noted.contains(note) {
                say(note);
                noted.push(note.clone());
            }
        }
        if verdict.feed {
            device
                .feed()
                .map_err(|e| format!("{}: feeding: {e}", cli.device.display()))?;
        }
        // Say it when it changes (feeding or not, or why not), not every round; feeding
        // is the empty list of reasons.
        // Compared without digits: a stale file's age grows every round, and that alone is
        // not news.
        let gist: Vec<String> = verdict
            .reasons
            .iter()
            .map(|r| r.chars().filter(|c| !c.is_ascii_digit()).collect())
            .collect();
        if last_said.as_ref() != Some(&gist) {
            if verdict.feed {
                say("feeding the watchdog: zedinit healthy, registrations fresh");
            } else {
                say(&format!(
                    "NOT feeding the watchdog: {}",
                    verdict.reasons.join("; ")
                ));
            }
            last_said = Some(gist);
        }
        let left = cli.interval.saturating_sub(round.elapsed());
        if stop_requested(&signals, left)? {
            if cli.keep_armed {
                say("stopping; the watchdog stays armed");
            } else {
                device
                    .disarm()
                    .map_err(|e| format!("{}: disarming: {e}", cli.device.display()))?;
                say("stopping; the watchdog is disarmed");
            }
            return Ok(());
        }
    }
}

/// Waits up to `timeout` for SIGTERM or SIGINT.
fn stop_requested(signals: &SignalFd, timeout: Duration) -> Result<bool, String> {
    let ms = timeout.as_millis().min(u128::from(u32::MAX >> 1)) as u32;
    let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
    match poll(
        &mut fds,
        PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
    ) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
        Err(e) => return Err(format!("poll: {e}")),
    }
    Ok(matches!(signals.read_signal(), Ok(Some(_))))
}
