//! The control socket: non-blocking connections, newline-delimited JSON, peer check.
//!
//! Invariants: nothing here blocks (every fd is non-blocking and a slow or silent client
//! only costs its own bounded buffers); bad input gets a typed error and the connection
//! stays usable; answers come in the order of the requests, a line longer than
//! [`MAX_REQUEST_BYTES`] getting `too-large` in its place (the rest of it discarded).
//!
//! Room for everyone ([`limits`]): when the [`MAX_CLIENTS`] ordinary slots are taken,
//! the longest-idle client makes room (idle: nothing in flight, nothing unread in its
//! socket, silent for a second); when none is idle (following logs, waiting, not
//! reading, just connected), a new connection gets one of [`RESERVED_CLIENTS`] slots that
//! serve only `health` and `status`, so zedwatchdog's check always gets in. Followers
//! and waiters are capped, overall and per process. A client silent for
//! [`IDLE_TIMEOUT`], or whose answers have not moved for that long, is dropped; the
//! output held for all clients is bounded by [`OUTPUT_BUDGET`], the largest holders
//! dropped first.

mod limits;
mod output;

pub use limits::{
    CLIENT_OUTPUT_LIMIT, MAX_CLIENTS, MAX_LONG_LIVED, MAX_LONG_LIVED_PER_PEER, OUTPUT_BUDGET,
    RESERVED_CLIENTS,
};

use crate::core::Executor;
use crate::log;
use crate::verbs::{Goal, Outcome, Supervisor};
use limits::{MAX_QUEUED_BYTES, long_lived_refusal, over_budget, reserved_may_ask};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use output::Output;
use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind as IoKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};
use zedctr_proto::protocol::{ErrorKind, MAX_REQUEST_BYTES, Request, Response};

/// Most bytes read from one client per readiness event (fairness; epoll comes back).
const READ_BUDGET: usize = 1024 * 1024;
/// Most parsed requests queued per client before reading pauses.
const MAX_QUEUED: usize = 64;
/// A client with nothing in flight, or whose answers have not moved, is dropped after
/// this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A client silent for less than this is not idle enough to make room for another:
/// between its `connect` and its first `write` (or while its request is still in the
/// kernel's buffer) it would be dropped without an answer.
const MAKE_ROOM_AFTER: Duration = Duration::from_secs(1);

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

impl Pending {
    fn len(&self) -> usize {
        match self {
            Pending::Line(line) => line.len(),
            Pending::TooLarge => 0,
        }
    }
}

/// Which kind of slot a connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Ordinary,
    /// Taken when every ordinary slot was busy: `health` and `status` only.
    Reserved,
}

/// The answer on a reserved slot to anything but `health` and `status`.
const RESERVED_ONLY: &str = "too many clients: every slot is busy, and this connection may only ask for health or status; try again";

struct Conn {
    stream: UnixStream,
    slot: Slot,
    /// The client process (SO_PEERCRED), when it is visible in our pid namespace.
    peer_pid: Option<i32>,
    /// The line being received.
    partial: Vec<u8>,
    /// Received requests not served yet, in order.
    queue: VecDeque<Pending>,
    output: Output,
    /// Inside an over-long line: drop bytes until its newline.
    discarding: bool,
    waiting: Option<(Goal, Instant)>,
    /// Streaming this service's new log lines (`logs` with follow).
    following: Option<String>,
    /// Follow lines dropped because the client was not reading.
    follow_dropped: u64,
    interest: Interest,
    /// The peer shut its writing side, or may ask nothing more: answer what was asked,
    /// read no more, then close.
    done_reading: bool,
    /// The connection failed (or misbehaved): drop it.
    broken: bool,
    /// When the client last sent a request or took some of its answers.
    last_active: Instant,
}

impl Conn {
    fn new(stream: UnixStream, slot: Slot, peer_pid: Option<i32>, now: Instant) -> Self {
        Conn {
            stream,
            slot,
            peer_pid,
            partial: Vec::new(),
            queue: VecDeque::new(),
            output: Output::default(),
            discarding: false,
            waiting: None,
            following: None,
            follow_dropped: 0,
            interest: Interest {
                read: true,
                write: false,
            },
            done_reading: false,
            broken: false,
            last_active: now,
        }
    }

    /// Something is in flight: not the one to make room for a new client.
    fn busy(&self) -> bool {
        self.long_lived() || !self.queue.is_empty() || !self.output.is_empty()
    }

    /// It may be dropped to make room for a new client: nothing in flight, silent for
    /// [`MAKE_ROOM_AFTER`], and nothing it sent still waits unread in the socket.
    fn may_make_room(&self, now: Instant) -> bool {
        !self.busy()
            && now.saturating_duration_since(self.last_active) >= MAKE_ROOM_AFTER
            && !has_unread_bytes(&self.stream)
    }

    /// Follows a log or waits for a state.
    fn long_lived(&self) -> bool {
        self.waiting.is_some() || self.following.is_some()
    }

    /// When it is dropped unless it acts first: silent with nothing in flight, or not
    /// taking its answers. A follower or waiter with nothing unsent stays.
    fn drop_at(&self) -> Option<Instant> {
        (!self.output.is_empty() || !self.busy()).then_some(self.last_active + IDLE_TIMEOUT)
    }

    fn queued_bytes(&self) -> usize {
        self.queue.iter().map(Pending::len).sum()
    }

    /// A request may be read now: it would be served, or queued within bounds.
    fn wants_to_read(&self) -> bool {
        !self.done_reading
            && !self.long_lived()
            && self.queue.len() < MAX_QUEUED
            && self.queued_bytes() < MAX_QUEUED_BYTES
            && self.output.held() < CLIENT_OUTPUT_LIMIT
    }

    fn who(&self) -> String {
        match self.peer_pid {
            Some(pid) => format!("client pid {pid}"),
            None => "client".into(),
        }
    }
}

/// What the event loop must change in its epoll set after a server call.
#[derive(Debug, Default)]
pub struct Changes {
    pub added: Vec<u64>,
    /// Connections whose epoll interest changed.
    pub interest: Vec<(u64, Interest)>,
    pub removed: Vec<u64>,
    /// The streams of removed connections, for the loop to take out of its epoll set
    /// before they close: a child cloned since, not yet exec'd, holds a copy of each,
    /// and epoll watches a file until its last copy closes (a closed client at EOF is
    /// always readable: PID 1 would spin until that child exec'd).
    pub closed: Vec<UnixStream>,
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
            let creds = getsockopt(&stream, PeerCredentials).ok();
            let uid = creds.map(|c| c.uid());
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
            // pid 0: the client is outside our pid namespace.
            let peer_pid = creds.map(|c| c.pid()).filter(|pid| *pid > 0);
            let slot = self.make_room(now, changes);
            let token = self.next_token;
            self.next_token += 1;
            self.conns
                .insert(token, Conn::new(stream, slot, peer_pid, now));
            changes.added.push(token);
        }
    }

    /// The slot for a new client: an ordinary one (making room by dropping the idlest
    /// client if need be), else a reserved one, dropping the reserved client idle the
    /// longest when they are all taken (it asked for health or status and had its
    /// chance), so a new health check always gets in.
    fn make_room(&mut self, now: Instant, changes: &mut Changes) -> Slot {
        let ordinary = self
            .conns
            .values()
            .filter(|c| c.slot == Slot::Ordinary)
            .count();
        let idle_ordinary =
            |(_, c): &(&u64, &Conn)| c.slot == Slot::Ordinary && c.may_make_room(now);
        if ordinary < MAX_CLIENTS || self.evict(idle_ordinary, changes) {
            return Slot::Ordinary;
        }
        let reserved = self.conns.len() - ordinary;
        if reserved >= RESERVED_CLIENTS {
            self.evict(|(_, c)| c.slot == Slot::Reserved, changes);
        }
        Slot::Reserved
    }

    /// Drops the connection idle the longest among those `candidate` accepts.
    fn evict(
        &mut self,
        candidate: impl FnMut(&(&u64, &Conn)) -> bool,
        changes: &mut Changes,
    ) -> bool {
        let idlest = self
            .conns
            .iter()
            .filter(candidate)
            .min_by_key(|(_, c)| c.last_active)
            .map(|(t, _)| *t);
        match idlest {
            Some(token) => {
                if let Some(conn) = self.conns.remove(&token) {
                    changes.closed.push(conn.stream);
                }
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
        self.serve(token, sup, now, changes);
        if hangup && let Some(conn) = self.conns.get_mut(&token) {
            conn.broken = true;
        }
        self.flush(token, now, changes);
        self.enforce_budget(changes);
    }

    /// Answers waiting requests whose goal was reached or whose deadline passed, and
    /// drops idle and stuck clients.
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
            if conn.drop_at().is_some_and(|at| at <= now) {
                if !conn.output.is_empty() {
                    log::warn(format_args!(
                        "control socket: dropping a {} that took none of its answers for {}s",
                        conn.who(),
                        IDLE_TIMEOUT.as_secs()
                    ));
                }
                conn.broken = true;
                self.flush(token, now, changes);
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
                conn.output.push(response.to_line());
                conn.waiting = None;
                conn.last_active = now;
                self.serve(token, sup, now, changes);
                self.flush(token, now, changes);
            }
        }
        self.enforce_budget(changes);
    }

    /// New log lines of `service` for the clients following it. A follower already
    /// holding its limit, or any when all clients together hold the budget, loses the
    /// lines and is told how many later.
    pub fn deliver_log(&mut self, service: &str, lines: &[String], changes: &mut Changes) {
        let now = Instant::now();
        let tokens: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.following.as_deref() == Some(service))
            .map(|(t, _)| *t)
            .collect();
        let mut held = self.held();
        for token in tokens {
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            if conn.output.held() >= CLIENT_OUTPUT_LIMIT || held >= OUTPUT_BUDGET {
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
            let line = Response::ok(serde_json::json!({ "lines": batch })).to_line();
            held += line.len();
            conn.output.push(line);
            self.flush(token, now, changes);
        }
    }

    /// The earliest wait deadline or drop time.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .values()
            .flat_map(|c| [c.waiting.as_ref().map(|(_, d)| *d), c.drop_at()])
            .flatten()
            .min()
    }

    /// Output held for all clients together.
    fn held(&self) -> usize {
        self.conns.values().map(|c| c.output.held()).sum()
    }

    /// Serves what `token` asked, within the caps on followers and waiters.
    fn serve<E: Executor>(
        &mut self,
        token: u64,
        sup: &mut Supervisor<E>,
        now: Instant,
        changes: &mut Changes,
    ) {
        let refusal = self.long_lived_refusal(token);
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        serve_queue(conn, refusal.as_deref(), sup, now, changes);
    }

    /// Why `token` may not start following or waiting now, if it may not.
    fn long_lived_refusal(&self, token: u64) -> Option<String> {
        let peer = self.conns.get(&token).and_then(|c| c.peer_pid);
        let long_lived = || self.conns.values().filter(|c| c.long_lived());
        let of_peer = match peer {
            Some(pid) => long_lived().filter(|c| c.peer_pid == Some(pid)).count(),
            None => 0,
        };
        long_lived_refusal(long_lived().count(), of_peer)
    }

    /// Past the budget, drops the clients holding the most output until the rest fit,
    /// telling each why when it is between two answers.
    fn enforce_budget(&mut self, changes: &mut Changes) {
        if self.held() <= OUTPUT_BUDGET {
            return;
        }
        let held: Vec<(u64, usize)> = self
            .conns
            .iter()
            .map(|(token, c)| (*token, c.output.held()))
            .collect();
        for token in over_budget(&held, OUTPUT_BUDGET) {
            let Some(mut conn) = self.conns.remove(&token) else {
                continue;
            };
            log::warn(format_args!(
                "control socket: dropping a {} that does not read its answers: it held {} bytes, and all clients together may hold {OUTPUT_BUDGET}",
                conn.who(),
                conn.output.held()
            ));
            let notice = format!(
                "dropped: your unread answers held more than zedinit keeps for all its clients ({} MiB); read them as they come, or ask for fewer log lines",
                OUTPUT_BUDGET >> 20
            );
            if conn
                .output
                .replace_between_answers(Response::error(ErrorKind::Busy, notice).to_line())
            {
                // Best effort, once, never waiting: the client is about to be closed.
                let _ = conn.stream.write(conn.output.unsent());
            }
            changes.closed.push(conn.stream);
            changes.removed.push(token);
        }
    }

    fn flush(&mut self, token: u64, now: Instant, changes: &mut Changes) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        write_available(conn, now);
        let finished = conn.done_reading
            && conn.output.is_empty()
            && conn.waiting.is_none()
            && conn.queue.is_empty();
        if conn.broken || finished {
            if let Some(conn) = self.conns.remove(&token) {
                changes.closed.push(conn.stream);
            }
            changes.removed.push(token);
            return;
        }
        // Read only when a request may be served: not after EOF (level-triggered EPOLLIN
        // would fire forever), not while one waits or a stream is followed, not while
        // requests or answers pile up (their followers queue in the kernel).
        let interest = Interest {
            read: conn.wants_to_read(),
            write: !conn.output.is_empty(),
        };
        if interest != conn.interest {
            conn.interest = interest;
            changes.interest.push((token, interest));
        }
    }
}

/// Writes what the socket takes without blocking.
fn write_available(conn: &mut Conn, now: Instant) {
    while !conn.output.is_empty() && !conn.broken {
        match conn.stream.write(conn.output.unsent()) {
            Ok(0) => conn.broken = true,
            Ok(n) => {
                conn.output.advance(n);
                conn.last_active = now;
            }
            Err(e) if e.kind() == IoKind::Interrupted => continue,
            Err(e) if e.kind() == IoKind::WouldBlock => break,
            Err(_) => conn.broken = true,
        }
    }
}

/// Reads what is there (up to a budget) without blocking, cutting it into requests.
fn read_available(conn: &mut Conn, now: Instant) {
    let mut buf = [0u8; 16 * 1024];
    let mut budget = READ_BUDGET;
    while budget > 0 && conn.queue.len() < MAX_QUEUED && conn.queued_bytes() < MAX_QUEUED_BYTES {
        match conn.stream.read(&mut buf) {
            Ok(0) => {
                // An unterminated last request still counts.
                if !conn.partial.is_empty() && !conn.discarding {
                    conn.queue
                        .push_back(Pending::Line(std::mem::take(&mut conn.partial)));
                }
                conn.done_reading = true;
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

/// The requests a client's bytes make when they arrive in `chunks`, cut as a connection
/// cuts them (`None`: a line over the limit, answered `too-large`), unterminated last
/// line included. For the control fuzz target (`fuzzing::control`); the server itself
/// never calls it.
pub fn requests_in(chunks: &[&[u8]]) -> std::io::Result<Vec<Option<Vec<u8>>>> {
    let (stream, _peer) = UnixStream::pair()?;
    let mut conn = Conn::new(stream, Slot::Ordinary, None, Instant::now());
    for chunk in chunks {
        split_requests(&mut conn, chunk);
    }
    if !conn.partial.is_empty() && !conn.discarding {
        conn.queue
            .push_back(Pending::Line(std::mem::take(&mut conn.partial)));
    }
    Ok(conn
        .queue
        .into_iter()
        .map(|pending| match pending {
            Pending::Line(line) => Some(line),
            Pending::TooLarge => None,
        })
        .collect())
}

/// The request may keep the connection busy: it follows a log or waits for a state.
fn may_be_long_lived(request: &Request) -> bool {
    request.follow == Some(true) || request.wait_ms.is_some_and(|ms| ms > 0)
}

/// Serves queued requests in order; stops at one that waits or follows, or when
/// answers pile up. `long_lived_refusal`: why a request that would follow or wait is
/// refused now, if it is.
fn serve_queue<E: Executor>(
    conn: &mut Conn,
    long_lived_refusal: Option<&str>,
    sup: &mut Supervisor<E>,
    now: Instant,
    changes: &mut Changes,
) {
    while !conn.long_lived() && conn.output.held() < CLIENT_OUTPUT_LIMIT {
        let Some(pending) = conn.queue.pop_front() else {
            return;
        };
        conn.last_active = now;
        let line = match pending {
            Pending::TooLarge => {
                let message =
                    format!("request line longer than {MAX_REQUEST_BYTES} bytes; discarded");
                conn.output
                    .push(Response::error(ErrorKind::TooLarge, message).to_line());
                continue;
            }
            Pending::Line(line) => line,
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let request = match serde_json::from_slice::<Request>(&line) {
            Ok(request) => request,
            // handle_line says what is wrong with it.
            Err(_) => {
                serve_outcome(conn, sup.handle_line(&line, now), changes);
                continue;
            }
        };
        if conn.slot == Slot::Reserved && !reserved_may_ask(request.known_verb()) {
            conn.output
                .push(Response::error(ErrorKind::Busy, RESERVED_ONLY).to_line());
            conn.queue.clear();
            conn.done_reading = true;
            return;
        }
        if let Some(why) = long_lived_refusal.filter(|_| may_be_long_lived(&request)) {
            conn.output
                .push(Response::error(ErrorKind::Busy, why).to_line());
            continue;
        }
        serve_outcome(conn, sup.handle(request, now), changes);
    }
}

fn serve_outcome(conn: &mut Conn, outcome: Outcome, changes: &mut Changes) {
    match outcome {
        Outcome::Reply(response) => conn.output.push(response.to_line()),
        Outcome::Wait { goal, deadline } => conn.waiting = Some((goal, deadline)),
        Outcome::Follow { service, response } => {
            conn.output.push(response.to_line());
            conn.following = Some(service);
        }
        Outcome::Shutdown(response) => {
            conn.output.push(response.to_line());
            changes.shutdown = true;
        }
    }
}

/// Bytes the client sent wait in the socket, not read yet. (EOF, nothing, or a broken
/// socket: no.) Closing a Unix socket with unread bytes resets the peer, whose answer
/// is then lost.
fn has_unread_bytes(stream: &UnixStream) -> bool {
    use nix::sys::socket::{MsgFlags, recv};
    use std::os::fd::AsRawFd;
    let mut byte = [0u8; 1];
    let peek = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
    matches!(recv(stream.as_raw_fd(), &mut byte, peek), Ok(n) if n > 0)
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
        Conn::new(a, Slot::Ordinary, None, Instant::now())
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

    #[test]
    fn only_a_client_silent_for_a_while_with_nothing_unread_makes_room() {
        let (ours, mut theirs) = UnixStream::pair().expect("pair");
        let connected = Instant::now();
        let c = Conn::new(ours, Slot::Ordinary, None, connected);
        assert!(!c.may_make_room(connected), "just connected");
        let later = connected + MAKE_ROOM_AFTER;
        assert!(c.may_make_room(later));
        theirs
            .write_all(b"{\"version\":1,\"verb\":\"status\"}\n")
            .expect("write");
        assert!(
            !c.may_make_room(later),
            "its request waits in the socket: closing would reset it unanswered"
        );
        let mut busy = conn();
        busy.queue.push_back(Pending::Line(b"x".to_vec()));
        assert!(!busy.may_make_room(later + IDLE_TIMEOUT));
    }
}
