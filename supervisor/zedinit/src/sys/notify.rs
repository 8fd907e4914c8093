//! Per-service notify sockets (`NOTIFY_SOCKET`, sd_notify(3) style): a datagram socket
//! for each service with `[ready] notify = true` or `[heartbeat]`, at
//! `<dir>/<service>.sock`. Senders are identified by SO_PASSCRED credentials, checked by
//! the core against the service.
//!
//! A service's processes can send faster than PID 1 can read (audit finding 1), so the
//! reading side is bounded three ways: at most [`READS_PER_WAKE`] datagrams per readiness
//! event (epoll is level-triggered: the loop comes back, after serving everyone else),
//! each handed on as it is read from one reused buffer (nothing is collected), and at
//! most [`BUDGET`] messages per [`BUDGET_WINDOW`] per service, after which its socket
//! rests out of the epoll set until the window ends. Meanwhile what the senders queue is
//! bounded by the kernel (`net.unix.max_dgram_qlen` datagrams; senders block or get
//! EAGAIN), and nothing of it is in zedinit's memory.

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, UnixCredentials, recvmsg, setsockopt, sockopt::PassCred,
};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest notify message read; longer ones are truncated (sd_notify messages are short).
const MAX_MESSAGE: usize = 4096;
/// Datagrams read from one socket per readiness event, before the loop serves others.
pub const READS_PER_WAKE: usize = 16;
/// Messages a service may send per [`BUDGET_WINDOW`]. READY=1, STATUS= and WATCHDOG=1
/// come a few a second at most; only a runaway or hostile service gets near this.
pub const BUDGET: u32 = 100;
pub const BUDGET_WINDOW: Duration = Duration::from_secs(1);

pub struct NotifySockets {
    dir: PathBuf,
    sockets: BTreeMap<String, UnixDatagram>,
    /// Sockets made since the event loop last registered them.
    fresh: Vec<String>,
}

impl NotifySockets {
    pub fn new(dir: PathBuf) -> Self {
        NotifySockets {
            dir,
            sockets: BTreeMap::new(),
            fresh: Vec::new(),
        }
    }

    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.sock"))
    }

    /// The service's socket path, made on first use (and kept across its restarts).
    pub fn ensure(&mut self, name: &str) -> Result<PathBuf, String> {
        let path = self.path_of(name);
        if self.sockets.contains_key(name) {
            return Ok(path);
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        // Only root reaches the sockets by their path; each service reaches its own
        // through the bind zedinit puts in its root.
        let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path)
            .map_err(|e| format!("notify socket {}: {e}", path.display()))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("notify socket: {e}"))?;
        setsockopt(&socket, PassCred, &true)
            .map_err(|e| format!("notify socket SO_PASSCRED: {e}"))?;
        // The service may run under another uid (issue 4): it must be able to send.
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666));
        self.sockets.insert(name.to_string(), socket);
        self.fresh.push(name.to_string());
        Ok(path)
    }

    pub fn take_fresh(&mut self) -> Vec<String> {
        std::mem::take(&mut self.fresh)
    }

    pub fn fd(&self, name: &str) -> Option<BorrowedFd<'_>> {
        self.sockets.get(name).map(|s| s.as_fd())
    }

    pub fn remove(&mut self, name: &str) {
        if self.sockets.remove(name).is_some() {
            let _ = std::fs::remove_file(self.path_of(name));
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A service's notify budget: at most `limit` messages in a window of `window` that
/// starts with the first message after the previous window ended. Pure (time is
/// passed in), so the decision is tested without sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    limit: u32,
    window: Duration,
    started: Instant,
    used: u32,
}

impl Budget {
    pub fn new(limit: u32, window: Duration, now: Instant) -> Self {
        Budget {
            limit: limit.max(1),
            window,
            started: now,
            used: 0,
        }
    }

    /// Counts one message read at `now`. `Some(end)` when it was the window's last: read
    /// nothing more from this service until `end`.
    pub fn spend(&mut self, now: Instant) -> Option<Instant> {
        if !self.is_current(now) {
            self.started = now;
            self.used = 0;
        }
        self.used = self.used.saturating_add(1);
        (self.used >= self.limit).then(|| self.window_end())
    }

    /// False once the window is over: an expired budget is as good as a new one.
    pub fn is_current(&self, now: Instant) -> bool {
        now < self.window_end()
    }

    fn window_end(&self) -> Instant {
        self.started + self.window
    }
}

/// The event loop's side of the notify sockets, by epoll token: the one buffer every
/// datagram is read into, each socket's [`Budget`], and which sockets rest until when.
pub struct NotifyGate {
    buf: Box<[u8]>,
    cmsg: Vec<u8>,
    budgets: BTreeMap<u64, Budget>,
    resting: BTreeMap<u64, Instant>,
}

impl Default for NotifyGate {
    fn default() -> Self {
        NotifyGate {
            buf: vec![0u8; MAX_MESSAGE].into_boxed_slice(),
            cmsg: nix::cmsg_space!(UnixCredentials),
            budgets: BTreeMap::new(),
            resting: BTreeMap::new(),
        }
    }
}

impl NotifyGate {
    /// The next datagram waiting on `name`'s socket, with its sender's pid; `None` when
    /// none is waiting. The text lives in the gate's buffer until the next read.
    pub fn read_one<'a>(
        &'a mut self,
        sockets: &NotifySockets,
        name: &str,
    ) -> Option<(Option<i32>, Cow<'a, str>)> {
        let socket = sockets.sockets.get(name)?;
        let (sender, len) = loop {
            let mut iov = [IoSliceMut::new(&mut self.buf)];
            match recvmsg::<()>(
                socket.as_raw_fd(),
                &mut iov,
                Some(self.cmsg.as_mut_slice()),
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
            ) {
                Ok(msg) => {
                    let sender = msg.cmsgs().ok().and_then(|mut cmsgs| {
                        cmsgs.find_map(|c| match c {
                            ControlMessageOwned::ScmCredentials(creds) => Some(creds.pid()),
                            _ => None,
                        })
                    });
                    break (sender, msg.bytes.min(MAX_MESSAGE));
                }
                Err(nix::errno::Errno::EINTR) => continue,
                // EAGAIN: nothing (more) waiting.
                Err(_) => return None,
            }
        };
        Some((sender, String::from_utf8_lossy(&self.buf[..len])))
    }

    /// Counts one message from the socket of `token`. `Some(end)` when its budget is
    /// spent: the caller takes the socket out of the epoll set, and [`Self::pop_rested`]
    /// gives the token back at `end`.
    pub fn spend(&mut self, token: u64, now: Instant) -> Option<Instant> {
        if !self.budgets.contains_key(&token) {
            // Only budgets still counting are kept: the map stays as small as the set
            // of sockets that sent within the last window.
            self.budgets.retain(|_, b| b.is_current(now));
        }
        let end = self
            .budgets
            .entry(token)
            .or_insert_with(|| Budget::new(BUDGET, BUDGET_WINDOW, now))
            .spend(now)?;
        self.resting.insert(token, end);
        Some(end)
    }

    /// When the first resting socket is due back.
    pub fn next_wake(&self) -> Option<Instant> {
        self.resting.values().min().copied()
    }

    /// A token whose rest is over at `now` (forgotten here; back in the caller's hands).
    pub fn pop_rested(&mut self, now: Instant) -> Option<u64> {
        let token = self
            .resting
            .iter()
            .find(|(_, end)| **end <= now)
            .map(|(token, _)| *token)?;
        self.resting.remove(&token);
        Some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_allows_its_limit_per_window_then_says_when_the_window_ends() {
        let t0 = Instant::now();
        let mut b = Budget::new(3, Duration::from_secs(1), t0);
        assert_eq!(b.spend(t0), None);
        assert_eq!(b.spend(t0 + Duration::from_millis(10)), None);
        assert_eq!(
            b.spend(t0 + Duration::from_millis(20)),
            Some(t0 + Duration::from_secs(1)),
            "the third message spends it"
        );
    }

    #[test]
    fn a_new_window_starts_with_the_first_message_after_the_old_one_ended() {
        let t0 = Instant::now();
        let mut b = Budget::new(2, Duration::from_secs(1), t0);
        assert_eq!(b.spend(t0), None);
        let later = t0 + Duration::from_millis(1500);
        assert!(!b.is_current(later));
        assert_eq!(b.spend(later), None, "a fresh window");
        assert_eq!(b.spend(later), Some(later + Duration::from_secs(1)));
    }

    #[test]
    fn a_slow_sender_never_spends_its_budget() {
        let t0 = Instant::now();
        let mut b = Budget::new(2, Duration::from_secs(1), t0);
        for i in 0..100 {
            assert_eq!(b.spend(t0 + Duration::from_millis(1000 * i)), None);
        }
    }

    #[test]
    fn a_zero_limit_still_lets_one_message_through_per_window() {
        let t0 = Instant::now();
        let mut b = Budget::new(0, Duration::from_secs(1), t0);
        assert_eq!(b.spend(t0), Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn the_gate_rests_a_socket_that_spent_its_budget_and_gives_it_back_at_the_end() {
        let t0 = Instant::now();
        let mut gate = NotifyGate::default();
        let mut end = None;
        for _ in 0..BUDGET {
            assert_eq!(end, None);
            end = gate.spend(7, t0);
        }
        let end = end.expect("spent after BUDGET messages");
        assert_eq!(end, t0 + BUDGET_WINDOW);
        assert_eq!(
            gate.spend(8, t0),
            None,
            "other sockets have their own budget"
        );
        assert_eq!(gate.next_wake(), Some(end));
        assert_eq!(gate.pop_rested(end - Duration::from_millis(1)), None);
        assert_eq!(gate.pop_rested(end), Some(7));
        assert_eq!(gate.pop_rested(end), None);
        assert_eq!(gate.next_wake(), None);
    }

    #[test]
    fn the_gate_reads_datagrams_one_at_a_time_with_the_sender_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sockets = NotifySockets::new(dir.path().to_path_buf());
        let path = sockets.ensure("svc").expect("socket");
        let sender = UnixDatagram::unbound().expect("sender");
        sender.send_to(b"READY=1", &path).expect("send");
        sender
            .send_to(&[b'x'; MAX_MESSAGE + 10], &path)
            .expect("send");
        let mut gate = NotifyGate::default();
        let (pid, text) = gate.read_one(&sockets, "svc").expect("first");
        assert_eq!(pid, Some(std::process::id() as i32));
        assert_eq!(text, "READY=1");
        let (_, text) = gate.read_one(&sockets, "svc").expect("second");
        assert_eq!(text.len(), MAX_MESSAGE, "truncated to the buffer");
        assert!(gate.read_one(&sockets, "svc").is_none(), "nothing left");
        assert!(gate.read_one(&sockets, "other").is_none(), "no such socket");
    }
}
