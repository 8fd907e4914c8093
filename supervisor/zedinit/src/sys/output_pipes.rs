//! Capturing service output: a pipe per stream per run, read by PID 1's loop (never
//! blocking: the read ends are non-blocking and each readiness reads a bounded amount),
//! lines tagged and kept in the service's ring, then handed to the writer thread.

use crate::output::{LineBuffer, Ring, Stream, format_line, utc_timestamp};
use crate::spec::ServiceSpec;
use crate::sys::launch::Launch;
use crate::sys::output_writer::{FilePolicy, LogWriter};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

/// Most bytes read from one pipe per readiness event (fairness between services).
const READ_BUDGET: usize = 256 * 1024;

struct Pipe {
    service: Arc<str>,
    stream: Stream,
    file: File,
    lines: LineBuffer,
    policy: FilePolicy,
}

/// Where services' output goes besides its ring (`zedinit --service-output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceOutput {
    /// `<log dir>/<service>.log`, rotated.
    pub files: bool,
    /// zedinit's stdout (`.out` lines) and stderr (`.err`), tagged and escaped: what a
    /// container runtime collects (on EVE: memlogd → newlogd → the controller).
    pub stdout: bool,
}

impl ServiceOutput {
    /// `files`, `stdout` or `both`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "files" => Some(ServiceOutput {
                files: true,
                stdout: false,
            }),
            "stdout" => Some(ServiceOutput {
                files: false,
                stdout: true,
            }),
            "both" => Some(ServiceOutput {
                files: true,
                stdout: true,
            }),
            _ => None,
        }
    }
}

pub struct LogHub {
    rings: BTreeMap<String, Ring>,
    pipes: BTreeMap<u64, Pipe>,
    fresh: Vec<u64>,
    /// Read ends at end of file, for the loop to take out of its epoll set before they
    /// close ([`LogHub::take_spent`]).
    spent: Vec<OwnedFd>,
    next_token: u64,
    writer: LogWriter,
    /// Bytes of output read since [`LogHub::take_bytes_seen`] was last called.
    bytes_seen: u64,
    output: ServiceOutput,
}

impl LogHub {
    /// `dir`: where log files go; `first_token`: the epoll tokens pipes may use.
    pub fn new(dir: PathBuf, first_token: u64, output: ServiceOutput) -> Self {
        LogHub {
            rings: BTreeMap::new(),
            pipes: BTreeMap::new(),
            fresh: Vec::new(),
            spent: Vec::new(),
            next_token: first_token,
            writer: LogWriter::new(dir),
            bytes_seen: 0,
            output,
        }
    }

    /// Points the child's stdout and stderr at new pipes (unless the service logs to
    /// the console) and keeps the read ends.
    pub fn attach(&mut self, spec: &ServiceSpec, child: &mut Launch) -> Result<(), String> {
        if spec.log.console {
            return Ok(());
        }
        let policy = FilePolicy {
            max_size: spec.log.max_size,
            keep: spec.log.keep,
        };
        let service: Arc<str> = Arc::from(spec.name.as_str());
        for stream in [Stream::Out, Stream::Err] {
            let (read, write) =
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                    .map_err(|e| format!("log pipe: {e}"))?;
            // The child's end must block: clear O_NONBLOCK on the write end only.
            nix::fcntl::fcntl(
                &write,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
            )
            .map_err(|e| format!("log pipe: {e}"))?;
            match stream {
                Stream::Out => child.stdout(write),
                Stream::Err => child.stderr(write),
            };
            let token = self.next_token;
            self.next_token += 1;
            self.pipes.insert(
                token,
                Pipe {
                    service: service.clone(),
                    stream,
                    file: File::from(read),
                    lines: LineBuffer::default(),
                    policy,
                },
            );
            self.fresh.push(token);
        }
        self.rings
            .entry(spec.name.clone())
            .or_insert_with(|| Ring::new(spec.log.ring_lines));
        Ok(())
    }

    pub fn take_fresh(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.fresh)
    }

    /// Pipes done with (end of file): the caller takes each out of its epoll set, then
    /// drops it. Closing alone would not do: a child cloned since and not yet exec'd
    /// holds a copy, and epoll reports a file until every copy is closed (a pipe at end of
    /// file is always readable: the loop would spin until that child execs).
    pub fn take_spent(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.spent)
    }

    pub fn owns(&self, token: u64) -> bool {
        self.pipes.contains_key(&token)
    }

    pub fn fd(&self, token: u64) -> Option<BorrowedFd<'_>> {
        self.pipes.get(&token).map(|p| p.file.as_fd())
    }

    /// Reads what the pipe has (up to a budget): the new lines go to the service's ring,
    /// then to `deliver` (its followers), then, moved, to the writer thread. At end of
    /// file the pipe is spent ([`LogHub::take_spent`]).
    pub fn read(&mut self, token: u64, deliver: impl FnOnce(&str, &[String])) {
        let Some(pipe) = self.pipes.get_mut(&token) else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        let mut raw = Vec::new();
        let mut budget = READ_BUDGET;
        let mut eof = false;
        while budget > 0 {
            match pipe.file.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.bytes_seen += n as u64;
                    pipe.lines.push(&buf[..n], &mut raw);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        if eof {
            pipe.lines.finish(&mut raw);
        }
        let service = pipe.service.clone();
        let (stream, policy) = (pipe.stream, pipe.policy);
        if eof {
            if let Some(pipe) = self.pipes.remove(&token) {
                self.spent.push(OwnedFd::from(pipe.file));
            }
        }
        if raw.is_empty() {
            return;
        }
        // One timestamp per batch: formatting the time per line would cost more than
        // the rest of the work in a flood.
        let stamp = utc_timestamp(std::time::SystemTime::now());
        let lines: Vec<String> = raw
            .iter()
            .map(|l| format_line(&service, stream, l, &stamp))
            .collect();
        if self.output.stdout {
            // No timestamp: the reader (the runtime's log pipe) stamps each line.
            for l in &raw {
                let text = String::from_utf8_lossy(l);
                let line = format!(
                    "{service}.{}: {}\n",
                    stream.tag(),
                    crate::escape::for_terminal(&text)
                );
                crate::log::service_line(&line, stream == Stream::Err);
            }
        }
        drop(raw);
        if let Some(ring) = self.rings.get_mut(&*service) {
            for line in &lines {
                ring.push(line);
            }
        }
        deliver(&service, &lines);
        if self.output.files {
            self.writer.push(&service, policy, lines);
        }
    }

    pub fn take_bytes_seen(&mut self) -> u64 {
        std::mem::take(&mut self.bytes_seen)
    }

    pub fn tail(&self, service: &str, n: usize) -> Vec<String> {
        self.rings
            .get(service)
            .map(|r| r.tail(n))
            .unwrap_or_default()
    }

    /// The rings let go of their growth slack (after a burst of longer lines).
    pub fn shrink_rings(&mut self) {
        for ring in self.rings.values_mut() {
            ring.shrink();
        }
    }

    pub fn forget(&mut self, service: &str) {
        self.rings.remove(service);
    }
}
