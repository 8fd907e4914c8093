//! `logtail`: the command line. Exit codes: 0 stopped by SIGTERM/SIGINT (state saved),
//! 1 failed (the message says why; also a stop whose state could not be saved), 2 usage.

use clap::Parser;
// Durations as every zedctr binary and definition takes them (`500ms`, `5s`, `2m`, `1h`,
// or bare seconds): one syntax.
use confkit::durations::parse_duration;
use logtail::pattern::Pattern;
use logtail::tailer::{Options, Tailer};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "logtail",
    version,
    about = "Follow log files across rotation; print their new lines as `FILE: line`"
)]
struct Cli {
    /// What to follow: DIR/GLOB, the glob in the file name only (`*`, `?`); quote it
    #[arg(required = true, value_parser = Pattern::parse)]
    patterns: Vec<Pattern>,
    /// Where each file was left, so a restart goes on from there
    #[arg(long, default_value = "/run/logtail/state.json")]
    state: PathBuf,
    /// A rotated file that has been quiet this long is let go
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    grace: Duration,
    /// On the first start (no state), each file's last lines shown, like `tail -f`
    #[arg(long, default_value_t = 10)]
    lines: usize,
    /// Longer lines are printed in pieces (later pieces marked `FILE:+ `)
    #[arg(long, default_value_t = 16384)]
    max_line: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    svclog::init("logtail");
    grow_stdout_pipe();
    let options = Options {
        patterns: cli.patterns,
        state: cli.state,
        grace: cli.grace,
        first_lines: cli.lines,
        max_line: cli.max_line,
    };
    let ended = Tailer::start(options).and_then(|mut tailer| tailer.run());
    match ended {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// When stdout is a pipe (zedinit's console), asks for a 1 MiB one instead of 64 KiB
/// (fcntl(2) F_SETPIPE_SZ; 1 MiB is the unprivileged maximum by default). A reader slower
/// than a flood wakes a writer blocked on a full pipe once per read; with room to write
/// a whole batch, logtail spends more of that time labelling the next batch instead of
/// blocked: 15 % less CPU and wake-ups in a flood (BENCHMARKS.md, issue 16). Anything
/// else (a terminal, a file, a refusal) keeps what it is.
fn grow_stdout_pipe() {
    // SAFETY: fcntl on descriptor 1 with an integer argument; it touches no memory of
    // ours, and on a descriptor that is not a pipe it fails with no effect.
    let _ = unsafe { nix::libc::fcntl(1, nix::libc::F_SETPIPE_SZ, 1 << 20) };
}
