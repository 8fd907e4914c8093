//! The control socket: non-blocking connections, newline-delimited JSON, peer check.
//!
//! Invariants: nothing here blocks (every fd is non-blocking and a slow or silent client
//! only costs its own bounded buffers); bad input gets a typed error and the connection
//! stays usable; answers come in the order of the requests, a line longer than
//! [`MAX_REQUEST_BYTES`] getting `too-large` in its place (the rest of it discarded);
//! a client that stays silent is dropped after [`IDLE_TIMEOUT`], and when all slots are
//! taken the longest-idle one makes room, so `supctl health` always gets in.

use crate::control::{Goal, Outcome, Supervisor};
use crate::core::Executor;
use crate::log;
use crate::protocol::{ErrorKind, MAX_REQUEST_BYTES, Response};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind as IoKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Clients served at once.
pub const MAX_CLIENTS: usize = 64;
/// Pending output past which a client that does not read is dropped.
pub const MAX_PENDING_OUTPUT: usize = 8 * 1024 * 1024;
/// Requests are served only while less than this much output waits.
const SERVE_OUTPUT_LIMIT: usize = 1024 * 1024;
/// Most bytes read from one client per readiness event (fairness; epoll comes back).
const READ_BUDGET: usize = 1024 * 1024;
/// Most parsed requests queued per client before reading pauses.
const MAX_QUEUED: usize = 64;
/// A client with nothing in flight is dropped after this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates the control socket, mode 0600, refusing to replace a live one.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "{} is in use: another zedinit is running",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale {}: {e}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(listener)
}

/// Only root and zedinit's own uid may control it (the socket mode says the same; this
/// is defence in depth should the mode be loosened).
pub fn peer_allowed(peer_uid: u32, server_uid: u32) -> bool {
    peer_uid == 0 || peer_uid == server_uid
}

/// Which readiness a connection is registered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    pub read: bool,
    pub write: bool,
}

#[derive(Debug)]
enum Pending {
    Line(Vec<u8>),
    TooLarge,
}

struct Conn {
    stream: UnixStream,
    /// The line being received.
    partial: Vec<u8>,
    /// Received requests not served yet, in order.
    queue: VecDeque<Pending>,
    output: Vec<u8>,
    /// Inside an over-long line: drop bytes until its newline.
    discarding: bool,
    waiting: Option<(Goal, Instant)>,
    /// Streaming this service's new log lines (`logs` with follow).
    following: Option<String>,
    /// Follow lines dropped because the client was not reading.
    follow_dropped: u64,
    interest: Interest,
    /// The peer shut its writing side: answer what was asked, read no more.
    eof: bool,
    /// The connection failed (or misbehaved): drop it.
    broken: bool,
    last_active: Instant,
}

impl Conn {
    fn new(stream: UnixStream, now: Instant) -> Self {
        Conn {
            stream,
            partial: Vec::new(),
            queue: VecDeque::new(),
            output: Vec::new(),
            discarding: false,
            waiting: None,
            following: None,
            follow_dropped: 0,
            interest: Interest {
                read: true,
                write: false,
            },
            eof: false,
            broken: false,
            last_active: now,
        }
    }

    fn busy(&self) -> bool {
        self.waiting.is_some()
            || self.following.is_some()
            || !self.queue.is_empty()
            || !self.output.is_empty()
    }
}

/// What the event loop must change in its epoll set after a server call.
#[derive(Debug, Default)]
pub struct Changes {
    pub added: Vec<u64>,
    /// Connections whose epoll interest changed.
    pub interest: Vec<(u64, Interest)>,
    pub removed: Vec<u64>,
    pub shutdown: bool,
    /// Out of file descriptors: stop watching the listener for a while (it would stay
    /// readable and spin the loop).
    pub pause_listener: bool,
}

pub struct Server {
    listener: UnixListener,
    conns: BTreeMap<u64, Conn>,
    next_token: u64,
    server_uid: u32,
}

impl Server {
    /// `first_token` is the first epoll token free for connections.
    pub fn new(listener: UnixListener, first_token: u64, server_uid: u32) -> Self {
        Server {
            listener,
            conns: BTreeMap::new(),
            next_token: first_token,
            server_uid,
        }
    }

    pub fn listener_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    pub fn conn_fd(&self, token: u64) -> Option<BorrowedFd<'_>> {
        self.conns.get(&token).map(|c| c.stream.as_fd())
    }

    /// Accepts every pending connection.
    pub fn accept(&mut self, now: Instant, changes: &mut Changes) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == IoKind::WouldBlock => return,
                Err(e) if e.kind() == IoKind::Interrupted => continue,
                Err(e) => {
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    ) {
                        changes.pause_listener = true;
                    }
                    log::warn(format_args!("control socket: accept: {e}"));
                    return;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let uid = getsockopt(&stream, PeerCredentials).map(|c| c.uid()).ok();
            if !uid.is_some_and(|uid| peer_allowed(uid, self.server_uid)) {
                let who = uid
                    .map(|u| format!("uid {u}"))
                    .unwrap_or_else(|| "unknown peer".into());
                log::warn(format_args!("control socket: refused {who}"));
                refuse(
                    stream,
                    ErrorKind::PermissionDenied,
                    "permission denied: the control socket is root-only",
                );
                continue;
            }
            if self.conns.len() >= MAX_CLIENTS && !self.evict_idlest(changes) {
                refuse(stream, ErrorKind::Busy, "too many clients; try again");
                continue;
            }
            let token = self.next_token;
            self.next_token += 1;
            self.conns.insert(token, Conn::new(stream, now));
            changes.added.push(token);
        }
    }

    /// Drops the connection idle the longest (nothing in flight) to make room.
    fn evict_idlest(&mut self, changes: &mut Changes) -> bool {
        let idlest = self
            .conns
            .iter()
            .filter(|(_, c)| !c.busy())
            .min_by_key(|(_, c)| c.last_active)
            .map(|(t, _)| *t);
        match idlest {
            Some(token) => {
                self.conns.remove(&token);
                changes.removed.push(token);
                true
            }
            None => false,
        }
    }

    /// The connection is readable and/or writable. `hangup`: the peer is gone both
    /// ways (EPOLLHUP/EPOLLERR, reported whatever the interest): serve what it sent,
    /// then drop it, or the event would fire forever.
    pub fn ready<E: Executor>(
        &mut self,
        token: u64,
        hangup: bool,
        sup: &mut Supervisor<E>,
        now: Instant,
        changes: &mut Changes,
    ) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.interest.read || hangup {
            read_available(conn, now);
        }
        serve_queue(conn, sup, now, changes);
        if hangup {
            conn.broken = true;
        }
        self.flush(token, changes);
    }

    /// Answers waiting requests whose goal was reached or whose deadline passed, and
    /// drops idle clients.
    pub fn on_tick<E: Executor>(
        &mut self,
        sup: &mut Supervisor<E>,
        now: Instant,
        changes: &mut Changes,
    ) {
        let tokens: Vec<u64> = self.conns.keys().copied().collect();
        for token in tokens {
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            if !conn.busy() && now.saturating_duration_since(conn.last_active) >= IDLE_TIMEOUT {
                conn.broken = true;
                self.flush(token, changes);
                continue;
            }
            let Some((goal, deadline)) = &conn.waiting else {
                continue;
            };
            let answer = match sup.check(goal) {
                Some(response) => Some(response),
                None if *deadline <= now => Some(sup.timed_out(goal)),
                None => None,
            };
            if let Some(response) = answer {
                conn.output.extend(response.to_line());
                conn.waiting = None;
                conn.last_active = now;
                serve_queue(conn, sup, now, changes);
                self.flush(token, changes);
            }
        }
    }

    /// New log lines of `service` for the clients following it.
    pub fn deliver_log(&mut self, service: &str, lines: &[String], changes: &mut Changes) {
        let tokens: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.following.as_deref() == Some(service))
            .map(|(t, _)| *t)
            .collect();
        for token in tokens {
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            if conn.output.len() > SERVE_OUTPUT_LIMIT {
                // A follower that can't keep up loses lines, and is told how many.
                conn.follow_dropped += lines.len() as u64;
                continue;
            }
            let mut batch: Vec<String> = Vec::with_capacity(lines.len() + 1);
            if conn.follow_dropped > 0 {
                batch.push(format!(
                    "[supctl logs: {} lines dropped: the client did not keep up]",
                    conn.follow_dropped
                ));
                conn.follow_dropped = 0;
            }
            batch.extend_from_slice(lines);
            conn.output
                .extend(Response::ok(serde_json::json!({ "lines": batch })).to_line());
            self.flush(token, changes);
        }
    }

    /// The earliest wait deadline or idle timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(|c| match &c.waiting {
                Some((_, deadline)) => Some(*deadline),
                None if !c.busy() => Some(c.last_active + IDLE_TIMEOUT),
                None => None,
            })
            .min()
    }

    fn flush(&mut self, token: u64, changes: &mut Changes) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        while !conn.output.is_empty() && !conn.broken {
            match conn.stream.write(&conn.output) {
                Ok(0) => conn.broken = true,
                Ok(n) => {
                    conn.output.drain(..n);
                }
                Err(e) if e.kind() == IoKind::Interrupted => continue,
                Err(e) if e.kind() == IoKind::WouldBlock => break,
                Err(_) => conn.broken = true,
            }
        }
        if conn.output.len() > MAX_PENDING_OUTPUT {
            log::warn(format_args!(
                "control socket: dropping a client that does not read its answers"
            ));
            conn.broken = true;
        }
        let finished =
            conn.eof && conn.output.is_empty() && conn.waiting.is_none() && conn.queue.is_empty();
        if conn.broken || finished {
            // Dropping the stream closes it, which also takes it out of the epoll set.
            self.conns.remove(&token);
            changes.removed.push(token);
            return;
        }
        // Read only when a request may be served: not after EOF (level-triggered EPOLLIN
        // would fire forever), not while one waits or a stream is followed, not while
        // requests or answers pile up (their followers queue in the kernel).
        let interest = Interest {
            read: !conn.eof
                && conn.waiting.is_none()
                && conn.following.is_none()
                && conn.queue.len() < MAX_QUEUED
                && conn.output.len() < SERVE_OUTPUT_LIMIT,
            write: !conn.output.is_empty(),
        };
        if interest != conn.interest {
            conn.interest = interest;
            changes.interest.push((token, interest));
        }
    }
}

/// Reads what is there (up to a budget) without blocking, cutting it into requests.
fn read_available(conn: &mut Conn, now: Instant) {
    let mut buf = [0u8; 16 * 1024];
    let mut budget = READ_BUDGET;
    while budget > 0 && conn.queue.len() < MAX_QUEUED {
        match conn.stream.read(&mut buf) {
            Ok(0) => {
                // An unterminated last request still counts.
                if !conn.partial.is_empty() && !conn.discarding {
                    conn.queue
                        .push_back(Pending::Line(std::mem::take(&mut conn.partial)));
                }
                conn.eof = true;
                return;
            }
            Ok(n) => {
                budget = budget.saturating_sub(n);
                conn.last_active = now;
                split_requests(conn, &buf[..n]);
            }
            Err(e) if e.kind() == IoKind::Interrupted => continue,
            Err(e) if e.kind() == IoKind::WouldBlock => return,
            Err(_) => {
                conn.broken = true;
                return;
            }
        }
    }
}

/// Appends complete lines to the queue; a line over the limit becomes `TooLarge` in its
/// place, and the rest of it is discarded up to its newline.
fn split_requests(conn: &mut Conn, mut chunk: &[u8]) {
    while !chunk.is_empty() {
        let newline = chunk.iter().position(|b| *b == b'\n');
        let (segment, rest) = match newline {
            Some(i) => (&chunk[..i], &chunk[i + 1..]),
            None => (chunk, &[][..]),
        };
        if !conn.discarding {
            conn.partial.extend_from_slice(segment);
            if conn.partial.len() > MAX_REQUEST_BYTES {
                conn.partial.clear();
                conn.queue.push_back(Pending::TooLarge);
                conn.discarding = newline.is_none();
            } else if newline.is_some() {
                conn.queue
                    .push_back(Pending::Line(std::mem::take(&mut conn.partial)));
            }
        } else if newline.is_some() {
            conn.discarding = false;
        }
        chunk = rest;
    }
}

/// Serves queued requests in order; stops at one that waits or follows, or when
/// answers pile up.
fn serve_queue<E: Executor>(
    conn: &mut Conn,
    sup: &mut Supervisor<E>,
    now: Instant,
    changes: &mut Changes,
) {
    while conn.waiting.is_none()
        && conn.following.is_none()
        && conn.output.len() < SERVE_OUTPUT_LIMIT
    {
        let Some(pending) = conn.queue.pop_front() else {
            return;
        };
        conn.last_active = now;
        let line = match pending {
            Pending::TooLarge => {
                let message =
                    format!("request line longer than {MAX_REQUEST_BYTES} bytes; discarded");
                conn.output
                    .extend(Response::error(ErrorKind::TooLarge, message).to_line());
                continue;
            }
            Pending::Line(line) => line,
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match sup.handle_line(&line, now) {
            Outcome::Reply(response) => conn.output.extend(response.to_line()),
            Outcome::Wait { goal, deadline } => conn.waiting = Some((goal, deadline)),
            Outcome::Follow { service, response } => {
                conn.output.extend(response.to_line());
                conn.following = Some(service);
            }
            Outcome::Shutdown(response) => {
                conn.output.extend(response.to_line());
                changes.shutdown = true;
            }
        }
    }
}

/// Best-effort one-line answer to a client we will not serve, then close.
fn refuse(mut stream: UnixStream, kind: ErrorKind, message: &str) {
    let _ = stream.write(&Response::error(kind, message).to_line());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_and_our_own_uid_may_control_us() {
        assert!(peer_allowed(0, 0));
        assert!(!peer_allowed(65534, 0));
        assert!(
            peer_allowed(1000, 1000),
            "a zedinit run by a user for development"
        );
        assert!(peer_allowed(0, 1000), "root always may");
        assert!(!peer_allowed(1001, 1000));
    }

    fn conn() -> Conn {
        let (a, _b) = UnixStream::pair().expect("pair");
        Conn::new(a, Instant::now())
    }

    fn kinds(c: &Conn) -> Vec<String> {
        c.queue
            .iter()
            .map(|p| match p {
                Pending::Line(l) => String::from_utf8_lossy(l).into_owned(),
                Pending::TooLarge => "<too-large>".into(),
            })
            .collect()
    }

    #[test]
    fn requests_keep_their_order_around_an_overlong_line() {
        let mut c = conn();
        let mut input = b"first\n".to_vec();
        input.extend(vec![b'x'; 200_000]);
        input.extend(b"\nlast\n");
        for chunk in input.chunks(16 * 1024) {
            split_requests(&mut c, chunk);
        }
        assert_eq!(kinds(&c), vec!["first", "<too-large>", "last"]);
    }

    #[test]
    fn a_complete_line_over_the_limit_is_too_large_even_in_one_chunk() {
        let mut c = conn();
        let mut input = vec![b'y'; MAX_REQUEST_BYTES + 1];
        input.push(b'\n');
        input.extend(b"ok\n");
        split_requests(&mut c, &input);
        assert_eq!(kinds(&c), vec!["<too-large>", "ok"]);
        assert!(!c.discarding);
    }
}
