//! The control socket: non-blocking connections, newline-delimited JSON, peer check.
//!
//! Invariants: nothing here blocks (every fd is non-blocking and a slow or silent client
//! only costs its own buffers); bad input gets a typed error and the connection stays
//! usable; a request line longer than [`MAX_REQUEST_BYTES`] is answered `too-large` at
//! once and the rest of it is discarded up to its newline.

use crate::control::{Goal, Outcome, Supervisor};
use crate::core::Executor;
use crate::log;
use crate::protocol::{ErrorKind, MAX_REQUEST_BYTES, Response};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use std::collections::BTreeMap;
use std::io::{ErrorKind as IoKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Instant;

/// Clients served at once; more get `busy` and are closed.
pub const MAX_CLIENTS: usize = 64;
/// A client that does not read its answers is dropped past this much pending output.
pub const MAX_PENDING_OUTPUT: usize = 8 * 1024 * 1024;

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

struct Conn {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Inside an over-long line: drop bytes until its newline.
    discarding: bool,
    waiting: Option<(Goal, Instant)>,
    /// What the fd is registered for now.
    interest: Interest,
    /// The peer shut its writing side: answer what was asked, read no more.
    eof: bool,
    /// The connection failed (or misbehaved): drop it.
    broken: bool,
}

/// What the event loop must change in its epoll set after a server call.
#[derive(Debug, Default)]
pub struct Changes {
    pub added: Vec<u64>,
    /// Connections whose epoll interest changed.
    pub interest: Vec<(u64, Interest)>,
    pub removed: Vec<u64>,
    pub shutdown: bool,
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
    pub fn accept(&mut self, changes: &mut Changes) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == IoKind::WouldBlock => return,
                Err(e) if e.kind() == IoKind::Interrupted => continue,
                Err(e) => {
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
            if self.conns.len() >= MAX_CLIENTS {
                refuse(stream, ErrorKind::Busy, "too many clients; try again");
                continue;
            }
            let token = self.next_token;
            self.next_token += 1;
            self.conns.insert(
                token,
                Conn {
                    stream,
                    input: Vec::new(),
                    output: Vec::new(),
                    discarding: false,
                    waiting: None,
                    interest: Interest {
                        read: true,
                        write: false,
                    },
                    eof: false,
                    broken: false,
                },
            );
            changes.added.push(token);
        }
    }

    /// The connection is readable and/or writable.
    /// `hangup`: the peer is gone both ways (EPOLLHUP/EPOLLERR, reported whatever the
    /// interest): serve what it sent, then drop it, or the event would fire forever.
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
        if !conn.eof && conn.waiting.is_none() {
            read_available(conn);
        }
        serve_lines(conn, sup, now, changes);
        if hangup {
            conn.broken = true;
        }
        self.flush(token, changes);
    }

    /// Answers waiting requests whose goal was reached or whose deadline passed.
    pub fn answer_waiters<E: Executor>(
        &mut self,
        sup: &mut Supervisor<E>,
        now: Instant,
        changes: &mut Changes,
    ) {
        let tokens: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.waiting.is_some())
            .map(|(t, _)| *t)
            .collect();
        for token in tokens {
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
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
                serve_lines(conn, sup, now, changes);
                self.flush(token, changes);
            }
        }
    }

    /// The earliest wait deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(|c| c.waiting.as_ref().map(|(_, d)| *d))
            .min()
    }

    fn flush(&mut self, token: u64, changes: &mut Changes) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        while !conn.output.is_empty() {
            match conn.stream.write(&conn.output) {
                Ok(0) => {
                    conn.broken = true;
                    break;
                }
                Ok(n) => {
                    conn.output.drain(..n);
                }
                Err(e) if e.kind() == IoKind::Interrupted => continue,
                Err(e) if e.kind() == IoKind::WouldBlock => break,
                Err(_) => {
                    conn.broken = true;
                    break;
                }
            }
        }
        if conn.output.len() > MAX_PENDING_OUTPUT {
            log::warn(format_args!(
                "control socket: dropping a client that does not read its answers"
            ));
            conn.broken = true;
        }
        let finished = conn.eof && conn.output.is_empty() && conn.waiting.is_none();
        if conn.broken || finished {
            // Dropping the stream closes it, which also takes it out of the epoll set.
            self.conns.remove(&token);
            changes.removed.push(token);
            return;
        }
        // Read only when a request may be served: not after EOF (level-triggered EPOLLIN
        // would fire forever), and not while one waits (its followers queue in the kernel).
        let interest = Interest {
            read: !conn.eof && conn.waiting.is_none(),
            write: !conn.output.is_empty(),
        };
        if interest != conn.interest {
            conn.interest = interest;
            changes.interest.push((token, interest));
        }
    }
}

/// Reads what is there without blocking; over-long lines are cut off here.
fn read_available(conn: &mut Conn) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match conn.stream.read(&mut buf) {
            Ok(0) => {
                conn.eof = true;
                return;
            }
            Ok(n) => {
                let mut chunk = &buf[..n];
                if conn.discarding {
                    match chunk.iter().position(|b| *b == b'\n') {
                        Some(i) => {
                            conn.discarding = false;
                            chunk = &chunk[i + 1..];
                        }
                        None => continue,
                    }
                }
                conn.input.extend_from_slice(chunk);
                // Bound the unterminated tail: answer now, drop the rest of that line.
                let tail_start = conn
                    .input
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1);
                if conn.input.len() - tail_start > MAX_REQUEST_BYTES {
                    conn.input.truncate(tail_start);
                    conn.discarding = true;
                    let response = Response::error(
                        ErrorKind::TooLarge,
                        format!("request line longer than {MAX_REQUEST_BYTES} bytes; discarded"),
                    );
                    conn.output.extend(response.to_line());
                }
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

/// Serves complete lines in order; stops at a request that waits.
fn serve_lines<E: Executor>(
    conn: &mut Conn,
    sup: &mut Supervisor<E>,
    now: Instant,
    changes: &mut Changes,
) {
    while conn.waiting.is_none() {
        let Some(end) = conn.input.iter().position(|b| *b == b'\n') else {
            return;
        };
        let line: Vec<u8> = conn.input.drain(..=end).collect();
        let line = &line[..line.len() - 1];
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match sup.handle_line(line, now) {
            Outcome::Reply(response) => conn.output.extend(response.to_line()),
            Outcome::Wait { goal, deadline } => conn.waiting = Some((goal, deadline)),
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
}
