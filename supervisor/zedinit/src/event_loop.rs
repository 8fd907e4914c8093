//! zedinit's one loop: epoll over the signalfd, the control socket and its clients,
//! with a timeout equal to the earliest timer owed. No polling: when nothing is due,
//! it sleeps until a signal or a client arrives.
//!
//! Shutdown: services stop in reverse dependency order (core), then strays get SIGTERM,
//! then SIGKILL after [`SWEEP_GRACE`], then zedinit exits with [`ExitCode`].

use crate::codepages::CodePages;
use crate::log;
use crate::server::{Changes, Server};
use crate::sys::executor::OsExecutor;
use crate::sys::notify::{self, NotifyGate};
use crate::sys::{codepages, pid1, proc, reap};
use crate::token::{self, Token};
use crate::verbs::Supervisor;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{Signal, kill};
use nix::sys::signalfd::SignalFd;
use nix::unistd::Pid;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// How long strays get after SIGTERM (and again after SIGKILL) in the final sweep.
pub const SWEEP_GRACE: Duration = Duration::from_secs(3);

/// Log bytes after which the loop trims the heap before it next sleeps.
const TRIM_AFTER_BYTES: u64 = 256 * 1024;
/// How long the listener rests after accept ran out of file descriptors.
const LISTENER_PAUSE: Duration = Duration::from_secs(1);

/// zedinit's exit codes.
pub mod exit_code {
    /// Every service stopped within its timeout and no stray needed SIGKILL.
    pub const CLEAN: i32 = 0;
    /// Bad arguments, or the control socket could not be set up.
    pub const STARTUP: i32 = 1;
    /// The shutdown finished, but something had to be killed with SIGKILL.
    pub const KILLED: i32 = 2;
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Running,
    /// Services are stopping, dependents first.
    StoppingServices,
    /// Services are gone; strays got `signal` and have until `deadline`.
    Sweeping {
        signal: Signal,
        deadline: Instant,
    },
    Finished,
}

pub struct EventLoop {
    sup: Supervisor<OsExecutor>,
    server: Server,
    signal_fd: SignalFd,
    epoll: Epoll,
    stage: Stage,
    children_left: bool,
    /// epoll token → service name, for notify sockets.
    notify_tokens: std::collections::BTreeMap<u64, String>,
    next_notify_token: u64,
    /// Reads notify sockets a bounded amount at a time and rests flooding ones.
    notify_gate: NotifyGate,
    /// Set while the listener is out of the epoll set (accept hit EMFILE).
    listener_paused_until: Option<Instant>,
    /// Log bytes handled since the heap was last trimmed.
    trim_debt: u64,
    trimmed_once: bool,
    /// When zedinit's own code pages go back to the kernel (after start-up, rescans).
    code_pages: CodePages,
    /// Bursts of service output (each [`TRIM_AFTER_BYTES`] between sleeps): one-off
    /// work for [`CodePages`].
    output_bursts: u64,
    /// Start-up's deferred housekeeping is done (other zedinits' leftover cgroups).
    housekept: bool,
}

impl EventLoop {
    pub fn new(
        sup: Supervisor<OsExecutor>,
        server: Server,
        signal_fd: SignalFd,
    ) -> Result<Self, String> {
        let epoll =
            Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| format!("epoll: {e}"))?;
        epoll
            .add(
                &signal_fd,
                EpollEvent::new(EpollFlags::EPOLLIN, token::SIGNAL),
            )
            .map_err(|e| format!("epoll add signalfd: {e}"))?;
        epoll
            .add(
                server.listener_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, token::LISTENER),
            )
            .map_err(|e| format!("epoll add listener: {e}"))?;
        Ok(EventLoop {
            sup,
            server,
            signal_fd,
            epoll,
            stage: Stage::Running,
            children_left: true,
            notify_tokens: std::collections::BTreeMap::new(),
            next_notify_token: token::FIRST_NOTIFY,
            notify_gate: NotifyGate::default(),
            listener_paused_until: None,
            trim_debt: 0,
            trimmed_once: false,
            code_pages: CodePages::new(Instant::now()),
            output_bursts: 0,
            housekept: false,
        })
    }

    /// Runs until the shutdown is complete; returns zedinit's exit code.
    pub fn run(mut self) -> i32 {
        let now = Instant::now();
        self.sup.core.reconcile(now);
        let mut events = vec![EpollEvent::empty(); 64];
        while self.stage != Stage::Finished {
            // Sockets and pipes made by spawns since the last wait must be watched
            // before waiting, and those done with must no longer be.
            self.unregister_spent_fds();
            self.register_new_fds();
            self.give_back_memory();
            let n = match self.epoll.wait(&mut events, self.timeout()) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(e) => {
                    log::warn(format_args!("epoll_wait: {e}"));
                    0
                }
            };
            for event in &events[..n] {
                let (token, flags) = (event.data(), event.events());
                self.guarded("event", |me| me.dispatch(token, flags));
            }
            self.guarded("timers", |me| me.after_events());
        }
        self.sup.core.exec.cgroups.remove_all();
        if self.sup.core.unclean {
            exit_code::KILLED
        } else {
            exit_code::CLEAN
        }
    }

    /// Returns freed heap to the kernel before sleeping, once bursts (start-up, log
    /// floods, big answers) have come and gone: PID 1's private memory stays small.
    fn give_back_memory(&mut self) {
        let grown = self.sup.core.exec.logs.take_bytes_seen();
        self.trim_debt = self.trim_debt.saturating_add(grown);
        if self.trim_debt >= TRIM_AFTER_BYTES || !self.trimmed_once {
            if self.trimmed_once {
                // A burst of output (a flood runs code a line a second does not).
                self.output_bursts += 1;
            }
            self.trim_debt = 0;
            self.trimmed_once = true;
            // SAFETY: malloc_trim only releases free memory at the top of the heap.
            unsafe { libc::malloc_trim(0) };
        }
        let core = &self.sup.core;
        let starting = || {
            core.services()
                .any(|s| s.state == crate::core::State::Starting)
        };
        let activity = self.sup.one_off_requests + self.output_bursts;
        if self
            .code_pages
            .poll(Instant::now(), self.sup.rescans, activity, starting)
        {
            let first = !self.housekept;
            if first {
                // Start-up has settled: what could wait for it.
                self.housekept = true;
                self.sup.core.exec.cgroups.remove_stale();
            }
            // One-off work is over: the rings' slack, its free heap, the stack it dirtied
            // below the loop's frame, then its code pages (last: what the others ran
            // goes back too).
            self.sup.core.exec.logs.shrink_rings();
            // SAFETY: malloc_trim only releases free memory.
            unsafe { libc::malloc_trim(0) };
            if let Err(e) = codepages::give_back_stack() {
                log::info(format_args!("cannot give back unused stack pages: {e}"));
            }
            // The first time, start-up's code also leaves the page cache (see give_back).
            if let Err(e) = codepages::give_back(first) {
                log::info(format_args!("cannot give back start-up code pages: {e}"));
            }
        }
    }

    /// A panic must never take PID 1 (and with it the container) down: report it and
    /// carry on with the next event.
    fn guarded(&mut self, what: &str, f: impl FnOnce(&mut Self)) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(self))) {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            log::warn(format_args!(
                "internal error while handling {what}: {text}; continuing"
            ));
        }
    }

    fn timeout(&self) -> EpollTimeout {
        let deadlines = [
            self.sup.core.next_deadline(),
            self.server.next_deadline(),
            self.listener_paused_until,
            self.code_pages.deadline(),
            self.notify_gate.next_wake(),
            match self.stage {
                Stage::Sweeping { deadline, .. } => Some(deadline),
                _ => None,
            },
        ];
        match deadlines.into_iter().flatten().min() {
            None => EpollTimeout::NONE,
            Some(when) => {
                // Round up so we never wake a hair early and spin.
                let wait =
                    when.saturating_duration_since(Instant::now()) + Duration::from_micros(999);
                let ms = wait.as_millis().min(i32::MAX as u128) as i32;
                EpollTimeout::try_from(ms).unwrap_or(EpollTimeout::NONE)
            }
        }
    }

    fn dispatch(&mut self, token: u64, flags: EpollFlags) {
        let now = Instant::now();
        let mut changes = Changes::default();
        match Token::decode(token) {
            Token::Signal => {
                for signal in pid1::drain(&self.signal_fd) {
                    match signal {
                        Signal::SIGCHLD => self.reap(),
                        Signal::SIGTERM | Signal::SIGINT => self.begin_shutdown(signal),
                        Signal::SIGHUP => {
                            log::info(format_args!("SIGHUP: rescanning definitions"));
                            let _ = self.sup.rescan(now);
                        }
                        _ => {}
                    }
                }
            }
            Token::Listener => self.server.accept(now, &mut changes),
            Token::Heartbeat => {
                for name in self.sup.core.exec.heartbeats.read_beats() {
                    self.sup.core.on_beat(&name, now);
                }
            }
            Token::Output(token) => {
                let server = &mut self.server;
                self.sup.core.exec.logs.read(token, |service, lines| {
                    server.deliver_log(service, lines, &mut changes)
                });
            }
            Token::Report(token) => {
                if let Some(pid) = self.sup.core.exec.report_pid(token) {
                    self.sup.core.on_exec_report(pid, now);
                }
            }
            Token::Notify(token) => self.read_notify(token, now),
            Token::Conn(conn) => {
                let hangup = flags.intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR);
                self.server
                    .ready(conn, hangup, &mut self.sup, now, &mut changes);
            }
        }
        self.apply(changes);
    }

    /// A few datagrams from one notify socket, each handled as it is read; a service
    /// past its budget has its socket taken out of the epoll set until the window ends.
    fn read_notify(&mut self, token: u64, now: Instant) {
        let Some(name) = self.notify_tokens.get(&token).cloned() else {
            return;
        };
        for _ in 0..notify::READS_PER_WAKE {
            let notify = &self.sup.core.exec.notify;
            let Some((sender, message)) = self.notify_gate.read_one(notify, &name) else {
                return;
            };
            self.sup.core.on_notify(&name, sender, &message, now);
            if self.notify_gate.spend(token, now).is_some() {
                log::warn(format_args!(
                    "{name}: notify budget spent ({} messages within {:?}); its notify socket rests until that time is up",
                    notify::BUDGET,
                    notify::BUDGET_WINDOW
                ));
                if let Some(fd) = self.sup.core.exec.notify.fd(&name) {
                    let _ = self.epoll.delete(fd);
                }
                return;
            }
        }
    }

    /// Notify sockets whose rest is over go back into the epoll set (unless the socket
    /// was removed or replaced meanwhile).
    fn wake_rested_notify(&mut self, now: Instant) {
        if self.notify_gate.next_wake().is_none_or(|end| end > now) {
            return;
        }
        // A socket made again since the loop last registered (its service removed and
        // added back) gets its new token first, so the old one finds nothing here.
        self.register_new_fds();
        while let Some(token) = self.notify_gate.pop_rested(now) {
            let Some(name) = self.notify_tokens.get(&token) else {
                continue;
            };
            if let Some(fd) = self.sup.core.exec.notify.fd(name) {
                if let Err(e) = self
                    .epoll
                    .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
                {
                    log::warn(format_args!("{name}: notify socket: epoll: {e}"));
                }
            }
        }
    }

    fn reap(&mut self) {
        let now = Instant::now();
        let core = &mut self.sup.core;
        self.children_left = reap::reap_all(|pid, exit| {
            core.on_exit(pid, exit, now);
        });
    }

    fn begin_shutdown(&mut self, why: Signal) {
        if self.stage == Stage::Running {
            log::info(format_args!("{}: ordered shutdown", why.as_str()));
            self.stage = Stage::StoppingServices;
            self.sup.core.begin_shutdown(Instant::now());
        }
    }

    /// Everything due after a batch of events: timers, dependency changes, waiting
    /// clients, and the shutdown's next stage.
    fn after_events(&mut self) {
        let now = Instant::now();
        self.sup.core.on_tick(now);
        self.sup.core.reconcile(now);
        self.wake_rested_notify(now);
        let mut changes = Changes::default();
        self.server.on_tick(&mut self.sup, now, &mut changes);
        if self.listener_paused_until.is_some_and(|t| t <= now) {
            self.listener_paused_until = None;
            if let Err(e) = self.epoll.add(
                self.server.listener_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, token::LISTENER),
            ) {
                log::warn(format_args!("epoll add listener: {e}"));
            }
        }
        let shutdown = changes.shutdown;
        self.apply(changes);
        if shutdown {
            self.begin_shutdown(Signal::SIGTERM);
        }
        self.advance_shutdown(now);
    }

    fn advance_shutdown(&mut self, now: Instant) {
        match self.stage {
            Stage::Running | Stage::Finished => {}
            Stage::StoppingServices => {
                if self.sup.core.all_stopped() {
                    self.reap();
                    if self.children_left {
                        log::info(format_args!(
                            "services stopped; SIGTERM to the remaining processes"
                        ));
                        self.signal_strays(Signal::SIGTERM);
                        self.stage = Stage::Sweeping {
                            signal: Signal::SIGTERM,
                            deadline: now + SWEEP_GRACE,
                        };
                    } else {
                        self.stage = Stage::Finished;
                    }
                }
            }
            Stage::Sweeping { signal, deadline } => {
                self.reap();
                if !self.children_left {
                    self.stage = Stage::Finished;
                } else if deadline <= now {
                    if signal == Signal::SIGKILL {
                        log::warn(format_args!("processes survive SIGKILL; exiting anyway"));
                        self.stage = Stage::Finished;
                    } else {
                        log::warn(format_args!("SIGKILL to processes that ignored SIGTERM"));
                        self.sup.core.unclean = true;
                        self.signal_strays(Signal::SIGKILL);
                        self.stage = Stage::Sweeping {
                            signal: Signal::SIGKILL,
                            deadline: now + SWEEP_GRACE,
                        };
                    }
                }
            }
        }
        if self.stage == Stage::Finished {
            log::info(format_args!(
                "shutdown complete{}",
                if self.sup.core.unclean {
                    " (something needed SIGKILL)"
                } else {
                    ""
                }
            ));
        }
    }

    /// As PID 1, every other process in the namespace; otherwise only our children
    /// (kill(-1) outside a private pid namespace would hit the whole host).
    fn signal_strays(&self, signal: Signal) {
        if self.sup.pid == 1 {
            let _ = kill(Pid::from_raw(-1), signal);
        } else {
            for pid in proc::children_of(self.sup.pid) {
                let _ = kill(Pid::from_raw(pid), signal);
            }
        }
    }

    /// Takes pipes done with out of the epoll set, then closes them (see
    /// [`OsExecutor::take_spent`]: closing alone would not take them out).
    fn unregister_spent_fds(&mut self) {
        for fd in self.sup.core.exec.take_spent() {
            // ENOENT: never registered (read before the loop got to it).
            let _ = self.epoll.delete(&fd);
        }
    }

    /// Puts notify sockets and log pipes made since the last call into the epoll set.
    fn register_new_fds(&mut self) {
        if let Some(fd) = self.sup.core.exec.heartbeats.take_fresh_fd() {
            if let Err(e) = self
                .epoll
                .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token::HEARTBEAT))
            {
                log::warn(format_args!("heartbeats: epoll: {e}"));
            }
        }
        for (token, fd) in self.sup.core.exec.take_fresh_reports() {
            if let Err(e) = self
                .epoll
                .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
            {
                log::warn(format_args!("exec report pipe: epoll: {e}"));
            }
        }
        for token in self.sup.core.exec.logs.take_fresh() {
            if let Some(fd) = self.sup.core.exec.logs.fd(token) {
                if let Err(e) = self
                    .epoll
                    .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
                {
                    log::warn(format_args!("log pipe: epoll: {e}"));
                }
            }
        }
        for name in self.sup.core.exec.notify.take_fresh() {
            self.notify_tokens.retain(|_, n| *n != name);
            let token = self.next_notify_token;
            self.next_notify_token += 1;
            if let Some(fd) = self.sup.core.exec.notify.fd(&name) {
                match self
                    .epoll
                    .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
                {
                    Ok(()) => {
                        self.notify_tokens.insert(token, name);
                    }
                    Err(e) => log::warn(format_args!("{name}: notify socket: epoll: {e}")),
                }
            }
        }
    }

    fn apply(&mut self, changes: Changes) {
        for token in changes.added {
            if let Some(fd) = self.server.conn_fd(token) {
                if let Err(e) = self
                    .epoll
                    .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
                {
                    log::warn(format_args!("epoll add client: {e}"));
                }
            }
        }
        for (token, interest) in changes.interest {
            if let Some(fd) = self.server.conn_fd(token) {
                let mut flags = EpollFlags::empty();
                if interest.read {
                    flags |= EpollFlags::EPOLLIN;
                }
                if interest.write {
                    flags |= EpollFlags::EPOLLOUT;
                }
                let _ = self.epoll.modify(fd, &mut EpollEvent::new(flags, token));
            }
        }
        // Out of the epoll set first, then closed (dropped): see `Changes::closed`.
        for stream in changes.closed {
            let _ = self.epoll.delete(&stream);
        }
        if changes.pause_listener && self.listener_paused_until.is_none() {
            log::warn(format_args!(
                "control socket: out of file descriptors; not accepting for {}s",
                LISTENER_PAUSE.as_secs()
            ));
            let _ = self.epoll.delete(self.server.listener_fd());
            self.listener_paused_until = Some(Instant::now() + LISTENER_PAUSE);
        }
        if changes.shutdown {
            self.begin_shutdown(Signal::SIGTERM);
        }
    }
}
