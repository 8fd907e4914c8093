//! `downloader fetch URL --sha256 HEX -o FILE`: the engine for a person. On a terminal a
//! progress bar redrawn in place; otherwise plain lines (every 10 %, each state change,
//! each retry) that read well in a log. The file appears only verified; Ctrl-C keeps
//! `FILE.part`, and the same command resumes it.

use crate::engine::{self, Job, Observer, Settings};
use crate::error::DownloadError;
use crate::resolve::Endpoint;
use crate::status::{State, percent};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What a fetch is asked to do.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub job: Job,
    pub settings: Settings,
    /// Draw a bar (stderr is a terminal) or print lines.
    pub tty: bool,
}

/// How a fetch ended, for the exit code.
#[derive(Debug)]
pub enum FetchEnd {
    Done(PathBuf),
    Failed(DownloadError),
    Interrupted,
}

/// Runs the download, reporting on stderr, until done, failed or `interrupt`.
pub async fn run(opts: FetchOptions, interrupt: CancellationToken) -> FetchEnd {
    let mut printer = Printer::new(opts.tty);
    let result = engine::download(&opts.job, &opts.settings, &mut printer, &interrupt).await;
    printer.end_bar();
    match result {
        Ok(outcome) => {
            let how = if outcome.already_present {
                "already there and verified"
            } else if outcome.resumed_from > 0 {
                "downloaded (resumed) and verified"
            } else {
                "downloaded and verified"
            };
            eprintln!(
                "{}: {how}, {} bytes, sha256 {}",
                outcome.path.display(),
                outcome.size,
                opts.job.sha256
            );
            FetchEnd::Done(outcome.path)
        }
        Err(DownloadError::Cancelled) => FetchEnd::Interrupted,
        Err(e) => FetchEnd::Failed(e),
    }
}

/// Progress on stderr.
struct Printer {
    tty: bool,
    started: Instant,
    last_draw: Option<Instant>,
    last_decile: Option<u8>,
    bar_shown: bool,
}

impl Printer {
    fn new(tty: bool) -> Self {
        Printer {
            tty,
            started: Instant::now(),
            last_draw: None,
            last_decile: None,
            bar_shown: false,
        }
    }

    /// Finishes a bar line so the next message starts on its own line.
    fn end_bar(&mut self) {
        if self.bar_shown {
            eprintln!();
            self.bar_shown = false;
        }
    }

    fn line(&mut self, text: &str) {
        self.end_bar();
        eprintln!("{text}");
    }

    fn draw(&mut self, current: u64, total: Option<u64>) {
        // Redraw at most ten times a second: a terminal is slower than a LAN.
        if self
            .last_draw
            .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
            && total != Some(current)
        {
            return;
        }
        self.last_draw = Some(Instant::now());
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = format!("{}/s", human(current as f64 / secs));
        let text = match total {
            Some(t) if t > 0 => {
                let pct = percent(current, t);
                let filled = usize::from(pct) * 30 / 100;
                format!(
                    "\r[{}{}] {pct:>3}% {} / {}  {rate}   ",
                    "#".repeat(filled),
                    " ".repeat(30 - filled),
                    human(current as f64),
                    human(t as f64)
                )
            }
            _ => format!("\r{}  {rate}   ", human(current as f64)),
        };
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
        self.bar_shown = true;
    }
}

impl Observer for Printer {
    fn state(&mut self, state: State) {
        if !self.tty || state != State::Downloading {
            let word = match state {
                State::Initial => "waiting",
                State::Resolving => "resolving",
                State::Downloading => "downloading",
                State::Downloaded => "downloaded",
                State::Error => "error",
            };
            self.line(word);
        }
    }

    fn endpoint(&mut self, endpoint: &Endpoint) {
        if !self.tty {
            self.line(&format!("connecting to {}", endpoint.addr));
        }
    }

    fn progress(&mut self, current: u64, total: Option<u64>) {
        if self.tty {
            self.draw(current, total);
            return;
        }
        let Some(t) = total.filter(|t| *t > 0) else {
            return;
        };
        let decile = percent(current, t) / 10;
        if self.last_decile != Some(decile) {
            self.last_decile = Some(decile);
            self.line(&format!(
                "progress {}% ({current} of {t} bytes)",
                percent(current, t)
            ));
        }
    }

    fn retrying(&mut self, error: &DownloadError, retries: u32, delay: Duration) {
        self.last_decile = None;
        self.line(&format!(
            "attempt failed: {error}; retry {retries} in {}",
            humantime::format_duration(Duration::from_millis(delay.as_millis() as u64))
        ));
    }
}

/// 1536 → "1.5 KiB".
fn human(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn human_sizes() {
        assert_eq!(human(512.0), "512 B");
        assert_eq!(human(1536.0), "1.5 KiB");
        assert_eq!(human(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
    }
}
