//! `--supervise`: what to do with the dnsmasq processes dnsmasq-render runs itself when
//! there is no zedinit (its own container). Plain data: the table of children, what each
//! request or event means for them (`Action`s), and the restart backoff. The OS side
//! (spawning, signalling, reaping) is `supervisor`; it tells the table what happened.
//!
//! The semantics are zedinit's for the generated `dnsmasq@<bridge>` definitions: a
//! rescan starts what is newly defined, replaces what changed and stops what is gone;
//! a stopped service stays stopped until started; a dnsmasq that exits, for whatever
//! reason, is started again (`policy = "always"`) after a backoff that doubles from
//! `BACKOFF_BASE` to `BACKOFF_MAX` (the definition's `backoff-base` and `backoff-max`),
//! and starts over once a run lasted `STABLE`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A run at least this long was not a crash loop: the next failure waits the base again.
pub const STABLE: Duration = BACKOFF_MAX;

/// What the OS side is to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Spawn {
        service: String,
        command: Vec<String>,
    },
    /// SIGTERM, then SIGKILL after the stop timeout; reaped before the next action.
    Stop { service: String, pid: i32 },
}

/// Why a request can't be carried out (zedinit's answers for the same cases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No definition of that name was found by the last rescan.
    UnknownService,
    /// A signal to a service with no process.
    NotRunning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Running {
        pid: i32,
        since: Instant,
    },
    /// Exited (or could not be spawned): spawned again at `at`.
    Waiting {
        at: Instant,
    },
    /// Stopped on request, or being replaced.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub command: Vec<String>,
    pub state: State,
    /// Failed runs in a row (a stable run or a requested start starts over).
    pub failures: u32,
}

/// Every defined service and its process.
#[derive(Debug, Default)]
pub struct Table {
    children: BTreeMap<String, Child>,
}

/// The wait before the `failures`-th restart in a row: base, doubling, capped.
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << doublings).min(BACKOFF_MAX)
}

impl Table {
    pub fn get(&self, service: &str) -> Option<&Child> {
        self.children.get(service)
    }

    /// Reconciles with the definitions found (service → command): a new one is
    /// spawned, one whose command changed is stopped and spawned with the new one, one
    /// gone is stopped and forgotten. The others are left as they are (a stopped one
    /// stays stopped, one in its backoff waits).
    pub fn rescan(&mut self, defined: &BTreeMap<String, Vec<String>>) -> Vec<Action> {
        let mut actions = Vec::new();
        let gone: Vec<String> = self
            .children
            .keys()
            .filter(|s| !defined.contains_key(*s))
            .cloned()
            .collect();
        for service in gone {
            if let Some(Child {
                state: State::Running { pid, .. },
                ..
            }) = self.children.remove(&service)
            {
                actions.push(Action::Stop { service, pid });
            }
        }
        for (service, command) in defined {
            match self.children.get_mut(service) {
                Some(child) if child.command == *command => {}
                Some(child) => {
                    if let State::Running { pid, .. } = child.state {
                        actions.push(Action::Stop {
                            service: service.clone(),
                            pid,
                        });
                    }
                    child.command = command.clone();
                    child.state = State::Stopped;
                    child.failures = 0;
                    actions.push(spawn(service, command));
                }
                None => {
                    self.children.insert(
                        service.clone(),
                        Child {
                            command: command.clone(),
                            state: State::Stopped,
                            failures: 0,
                        },
                    );
                    actions.push(spawn(service, command));
                }
            }
        }
        actions
    }

    /// `start`: spawned now unless running (a backoff is cut short, and starts over).
    pub fn start(&mut self, service: &str) -> Result<Vec<Action>, Refusal> {
        let child = self
            .children
            .get_mut(service)
            .ok_or(Refusal::UnknownService)?;
        if matches!(child.state, State::Running { .. }) {
            return Ok(Vec::new());
        }
        child.failures = 0;
        Ok(vec![spawn(service, &child.command)])
    }

    /// `stop`: it stays stopped (no restart) until started or replaced.
    pub fn stop(&mut self, service: &str) -> Result<Vec<Action>, Refusal> {
        let child = self
            .children
            .get_mut(service)
            .ok_or(Refusal::UnknownService)?;
        let actions = match child.state {
            State::Running { pid, .. } => vec![Action::Stop {
                service: service.to_string(),
                pid,
            }],
            _ => Vec::new(),
        };
        child.state = State::Stopped;
        Ok(actions)
    }

    /// `restart`: stopped if running, spawned.
    pub fn restart(&mut self, service: &str) -> Result<Vec<Action>, Refusal> {
        let mut actions = self.stop(service)?;
        actions.extend(self.start(service)?);
        Ok(actions)
    }

    /// The process a signal for `service` goes to.
    pub fn pid(&self, service: &str) -> Result<i32, Refusal> {
        match self.children.get(service).map(|c| &c.state) {
            None => Err(Refusal::UnknownService),
            Some(State::Running { pid, .. }) => Ok(*pid),
            Some(_) => Err(Refusal::NotRunning),
        }
    }

    pub fn spawned(&mut self, service: &str, pid: i32, now: Instant) {
        if let Some(child) = self.children.get_mut(service) {
            child.state = State::Running { pid, since: now };
        }
    }

    /// Could not be spawned (exec failed): tried again after the backoff.
    pub fn spawn_failed(&mut self, service: &str, now: Instant) -> Option<Duration> {
        let child = self.children.get_mut(service)?;
        child.failures += 1;
        let wait = backoff(child.failures);
        child.state = State::Waiting { at: now + wait };
        Some(wait)
    }

    /// A reaped process: if it was a running child's (not one being stopped: those are
    /// reaped by the stop), that child waits for its restart. Returns the service and
    /// the wait; `None` for any other process (an orphan reparented to us as PID 1).
    pub fn exited(&mut self, pid: i32, now: Instant) -> Option<(String, Duration)> {
        let (service, child) = self
            .children
            .iter_mut()
            .find(|(_, c)| matches!(c.state, State::Running { pid: p, .. } if p == pid))?;
        let State::Running { since, .. } = child.state else {
            return None;
        };
        child.failures = if now.duration_since(since) >= STABLE {
            1
        } else {
            child.failures + 1
        };
        let wait = backoff(child.failures);
        child.state = State::Waiting { at: now + wait };
        Some((service.clone(), wait))
    }

    /// The restarts whose backoff is over.
    pub fn due(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        for (service, child) in &mut self.children {
            if matches!(child.state, State::Waiting { at } if at <= now) {
                child.state = State::Stopped;
                actions.push(spawn(service, &child.command));
            }
        }
        actions
    }

    /// When the next restart is due, if any waits.
    pub fn next_due(&self) -> Option<Instant> {
        self.children
            .values()
            .filter_map(|c| match c.state {
                State::Waiting { at } => Some(at),
                _ => None,
            })
            .min()
    }

    /// Everything running, to stop at SIGTERM; nothing is restarted after it.
    pub fn stop_all(&mut self) -> Vec<Action> {
        let services: Vec<String> = self.children.keys().cloned().collect();
        services
            .iter()
            .flat_map(|s| self.stop(s).unwrap_or_default())
            .collect()
    }
}

fn spawn(service: &str, command: &[String]) -> Action {
    Action::Spawn {
        service: service.to_string(),
        command: command.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defined(entries: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
        entries
            .iter()
            .map(|(s, c)| {
                (
                    s.to_string(),
                    c.split(' ').map(str::to_string).collect::<Vec<_>>(),
                )
            })
            .collect()
    }

    fn spawned(service: &str, command: &str) -> Action {
        Action::Spawn {
            service: service.into(),
            command: command.split(' ').map(str::to_string).collect(),
        }
    }

    fn stop(service: &str, pid: i32) -> Action {
        Action::Stop {
            service: service.into(),
            pid,
        }
    }

    /// A table running `a` (pid 10) and `b` (pid 11).
    fn running(now: Instant) -> Table {
        let mut table = Table::default();
        let actions = table.rescan(&defined(&[("a", "dnsmasq a"), ("b", "dnsmasq b")]));
        assert_eq!(
            actions,
            vec![spawned("a", "dnsmasq a"), spawned("b", "dnsmasq b")]
        );
        table.spawned("a", 10, now);
        table.spawned("b", 11, now);
        table
    }

    #[test]
    fn a_rescan_starts_the_new_replaces_the_changed_and_stops_the_gone() {
        let now = Instant::now();
        let mut table = running(now);
        let actions = table.rescan(&defined(&[("b", "dnsmasq2 b"), ("c", "dnsmasq c")]));
        assert_eq!(
            actions,
            vec![
                stop("a", 10),
                stop("b", 11),
                spawned("b", "dnsmasq2 b"),
                spawned("c", "dnsmasq c")
            ]
        );
        assert!(table.get("a").is_none(), "forgotten");
        // The same definitions again: nothing to do.
        table.spawned("b", 12, now);
        table.spawned("c", 13, now);
        assert!(
            table
                .rescan(&defined(&[("b", "dnsmasq2 b"), ("c", "dnsmasq c")]))
                .is_empty()
        );
    }

    #[test]
    fn stop_start_restart_and_signals_act_on_the_named_child() {
        let now = Instant::now();
        let mut table = running(now);
        assert_eq!(table.pid("a"), Ok(10));
        assert_eq!(table.stop("a"), Ok(vec![stop("a", 10)]));
        assert_eq!(table.pid("a"), Err(Refusal::NotRunning));
        // Stopped stays stopped: a rescan does not start it, nor is any restart due.
        assert!(
            table
                .rescan(&defined(&[("a", "dnsmasq a"), ("b", "dnsmasq b")]))
                .is_empty()
        );
        assert_eq!(table.next_due(), None);
        assert_eq!(table.stop("a"), Ok(vec![]), "already stopped");
        assert_eq!(table.start("a"), Ok(vec![spawned("a", "dnsmasq a")]));
        table.spawned("a", 20, now);
        assert_eq!(table.start("a"), Ok(vec![]), "already running");
        assert_eq!(
            table.restart("a"),
            Ok(vec![stop("a", 20), spawned("a", "dnsmasq a")])
        );
        for refused in [table.stop("x"), table.start("x"), table.restart("x")] {
            assert_eq!(refused, Err(Refusal::UnknownService));
        }
        assert_eq!(table.pid("x"), Err(Refusal::UnknownService));
    }

    #[test]
    fn one_that_dies_is_restarted_after_a_backoff_that_doubles_to_its_cap() {
        let start = Instant::now();
        let mut table = running(start);
        let mut now = start;
        let mut pid = 10;
        let mut waits = Vec::new();
        for _ in 0..7 {
            let (service, wait) = table.exited(pid, now).expect("ours");
            assert_eq!(service, "a");
            waits.push(wait.as_secs());
            assert!(table.due(now + wait - Duration::from_millis(1)).is_empty());
            assert_eq!(table.next_due(), Some(now + wait));
            now += wait;
            assert_eq!(table.due(now), vec![spawned("a", "dnsmasq a")]);
            pid += 100;
            table.spawned("a", pid, now);
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30]);
        // A run that lasted: the next failure waits the base again.
        let (_, wait) = table.exited(pid, now + STABLE).expect("ours");
        assert_eq!(wait, BACKOFF_BASE);
        // Another process (an orphan reaped as PID 1) is nobody's.
        assert_eq!(table.exited(4242, now), None);
        // A requested start cuts a backoff short and starts over.
        assert_eq!(table.start("a"), Ok(vec![spawned("a", "dnsmasq a")]));
        assert_eq!(table.get("a").map(|c| c.failures), Some(0));
    }

    #[test]
    fn one_that_cannot_be_spawned_is_tried_again_and_sigterm_stops_all() {
        let now = Instant::now();
        let mut table = running(now);
        assert_eq!(table.spawn_failed("b", now), Some(BACKOFF_BASE));
        assert_eq!(table.next_due(), Some(now + BACKOFF_BASE));
        assert_eq!(table.stop_all(), vec![stop("a", 10)]);
        assert_eq!(table.next_due(), None, "nothing restarts after a stop");
        assert!(table.due(now + BACKOFF_MAX).is_empty());
    }
}
