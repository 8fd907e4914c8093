//! Events from the event loop: an exit, a tick, an exec report, and the next deadline
//! the loop must wake for.

use super::*;

impl<E: Executor> Core<E> {
    /// A child was reaped. Returns false if it was not a service (an orphan).
    pub fn on_exit(&mut self, pid: i32, exit: Exit, now: Instant) -> bool {
        if self.on_probe_exit(pid, exit, now) {
            return true;
        }
        let Some(name) = self
            .services
            .iter()
            .find(|(_, s)| s.pid == Some(pid))
            .map(|(n, _)| n.clone())
        else {
            self.orphans_reaped += 1;
            return false;
        };
        if self
            .services
            .get(&name)
            .is_some_and(|s| s.exec_deadline.is_some())
        {
            // Exited before its exec report was read: the pipe holds it now.
            let report = self.exec.exec_report(pid);
            if let Some(svc) = self.services.get_mut(&name) {
                svc.exec_deadline = None;
                match report {
                    Some(Err(e)) => {
                        svc.exec_failed.get_or_insert(e);
                    }
                    // Its program ran: a longrun without `[ready]` came up, however briefly.
                    Some(Ok(()))
                        if svc.state == State::Starting
                            && svc.spec.kind == ServiceType::Longrun
                            && svc.spec.ready.is_none() =>
                    {
                        svc.came_up = svc.generation;
                    }
                    _ => {}
                }
            }
        }
        let Some(svc) = self.services.get_mut(&name) else {
            return false;
        };
        let ran_for = svc
            .started_at
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or_default();
        svc.last_exit = Some(exit);
        svc.pid = None;
        svc.started_at = None;
        self.exec.kill_leftovers(pid);
        // Stopped for a stale heartbeat: the exit is a failure for the restart policy.
        let stale_restart = svc.stale == Stale::Restarting && svc.wanted && !self.shutting_down;
        match svc.state {
            State::Stopping { .. } if !stale_restart => {
                log::info(format_args!("{name}: stopped ({exit})"));
                svc.state = State::Stopped;
                self.finish_stop(&name);
            }
            _ if self.shutting_down || !svc.wanted => {
                log::info(format_args!("{name}: exited ({exit})"));
                svc.state = State::Stopped;
                self.finish_stop(&name);
            }
            _ if svc.exec_failed.is_some() => {
                let error = svc.exec_failed.take().unwrap_or_default();
                self.start_failed(&name, &error, now);
            }
            _ => {
                log::info(format_args!(
                    "{name}: exited ({exit}) after {}",
                    confkit::durations::format_duration(ran_for)
                ));
                let verdict = policy::after_exit(
                    svc.spec.kind,
                    &svc.spec.restart,
                    &mut svc.history,
                    exit,
                    ran_for,
                    now,
                    self.jitter.sample(),
                );
                let not_ready = if svc.readiness.timed_out {
                    let timeout = svc
                        .spec
                        .ready
                        .as_ref()
                        .map(|r| r.timeout)
                        .unwrap_or_default();
                    Some(format!(
                        "not ready within {}",
                        confkit::durations::format_duration(timeout)
                    ))
                } else if stale_restart {
                    let max_age = svc
                        .spec
                        .heartbeat
                        .as_ref()
                        .map(|h| h.max_age)
                        .unwrap_or_default();
                    Some(format!(
                        "heartbeat stale (none for {})",
                        confkit::durations::format_duration(max_age)
                    ))
                } else {
                    None
                };
                svc.stale = Stale::Fresh;
                self.apply_verdict(&name, verdict, now);
                if let (Some(not_ready), Some(svc)) = (not_ready, self.services.get_mut(&name)) {
                    svc.note = Some(match svc.note.take() {
                        Some(note) => format!("{not_ready}; {note}"),
                        None => not_ready,
                    });
                }
            }
        }
        true
    }

    /// Timers: backoffs that ran out, stop deadlines that passed, readiness probes and
    /// readiness deadlines.
    pub fn on_tick(&mut self, now: Instant) {
        let names: Vec<String> = self.services.keys().cloned().collect();
        for name in &names {
            self.exec_tick(name, now);
            self.readiness_tick(name, now);
            self.heartbeat_tick(name, now);
        }
        for name in names {
            let Some(svc) = self.services.get_mut(&name) else {
                continue;
            };
            match svc.state {
                State::Backoff { until } if until <= now => {
                    svc.state = State::Stopped;
                }
                State::Failed if svc.retry_at.is_some_and(|at| at <= now) && svc.wanted => {
                    log::info(format_args!("{name}: trying again after its cool-down"));
                    svc.retry_at = None;
                    svc.recovering = true;
                    svc.history.reset();
                    svc.state = State::Stopped;
                }
                State::Stopping { deadline, killed } if deadline <= now => {
                    if killed {
                        log::warn(format_args!(
                            "{name}: still there {}s after SIGKILL; no longer waiting for it",
                            KILL_GRACE.as_secs()
                        ));
                        svc.note = Some("did not exit after SIGKILL".into());
                        svc.state = State::Stopped;
                        self.finish_stop(&name);
                    } else if let Some(pid) = svc.pid {
                        log::warn(format_args!(
                            "{name}: did not stop within {}; SIGKILL to its process group",
                            confkit::durations::format_duration(svc.spec.stop.timeout)
                        ));
                        self.exec.signal_group(pid, Signal::SIGKILL);
                        // Only a shutdown's SIGKILLs make zedinit's exit unclean; one
                        // during an earlier `supctl stop` or restart does not.
                        if self.shutting_down {
                            self.unclean = true;
                        }
                        svc.state = State::Stopping {
                            deadline: now + KILL_GRACE,
                            killed: true,
                        };
                    }
                }
                _ => {}
            }
        }
    }

    /// The exec report of a new child arrived (or may have): a program that runs is
    /// up or starts its readiness checks; a failed one is dealt with at its exit.
    pub fn on_exec_report(&mut self, pid: i32, now: Instant) {
        let Some(name) = self
            .services
            .iter()
            .find(|(_, s)| s.pid == Some(pid) && s.exec_deadline.is_some())
            .map(|(n, _)| n.clone())
        else {
            return;
        };
        let Some(report) = self.exec.exec_report(pid) else {
            return;
        };
        let Some(svc) = self.services.get_mut(&name) else {
            return;
        };
        svc.exec_deadline = None;
        match report {
            Err(e) => {
                // The child exits 127 now; its exit applies the restart policy.
                svc.exec_failed = Some(e);
            }
            Ok(()) if svc.state == State::Starting => match (&svc.spec.kind, &svc.spec.ready) {
                (ServiceType::Longrun, None) => {
                    svc.state = State::Running;
                    svc.came_up = svc.generation;
                }
                (ServiceType::Longrun, Some(ready)) if ready.check != ReadyCheck::Notify => {
                    svc.readiness.next_probe = Some(now);
                }
                _ => {}
            },
            Ok(()) => {}
        }
    }

    /// A child that has not reached exec by its deadline is killed; its exit is a
    /// failed start.
    pub(super) fn exec_tick(&mut self, name: &str, now: Instant) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let (Some(deadline), Some(pid)) = (svc.exec_deadline, svc.pid) else {
            return;
        };
        if deadline > now {
            return;
        }
        let why = format!(
            "did not reach exec within {}",
            confkit::durations::format_duration(EXEC_DEADLINE)
        );
        log::warn(format_args!("{name}: {why}; SIGKILL to it"));
        svc.exec_deadline = None;
        svc.exec_failed = Some(why);
        self.exec.signal_group(pid, Signal::SIGKILL);
    }

    /// The earliest timer the core owes.
    pub fn next_deadline(&self) -> Option<Instant> {
        let phases = self.services.values().filter_map(|s| match s.state {
            State::Backoff { until } => Some(until),
            State::Stopping { deadline, .. } => Some(deadline),
            _ => None,
        });
        let execs = self.services.values().filter_map(|s| s.exec_deadline);
        let retries = self
            .services
            .values()
            .filter(|s| s.state == State::Failed && s.wanted)
            .filter_map(|s| s.retry_at);
        let readiness = self
            .services
            .values()
            .filter(|s| s.state == State::Starting && !s.readiness.timed_out)
            .flat_map(|s| {
                let probe = s
                    .readiness
                    .next_probe
                    .filter(|_| s.readiness.probe_pid.is_none());
                [s.readiness.deadline, probe]
            })
            .flatten();
        let heartbeats = self
            .services
            .values()
            .filter_map(Service::heartbeat_deadline);
        phases
            .chain(execs)
            .chain(retries)
            .chain(readiness)
            .chain(heartbeats)
            .min()
    }
}
