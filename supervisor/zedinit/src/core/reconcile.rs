//! Starting and stopping: the reconcile passes, dependencies, a start, a stop, and
//! what an exit's verdict does.

use super::*;

impl<E: Executor> Core<E> {
    /// Starts what may start and stops what must stop, until nothing changes.
    pub fn reconcile(&mut self, now: Instant) {
        // Each pass can only settle more services, so this ends; the bound is a guard.
        for _ in 0..=self.order.len() + 1 {
            if !self.reconcile_pass(now) {
                break;
            }
        }
        for svc in self.services.values_mut() {
            if svc.recovering && (svc.state.is_up() || !svc.wanted) {
                svc.recovering = false;
                if svc.state.is_up() {
                    log::info(format_args!("{}: recovered", svc.spec.name));
                }
            }
        }
    }

    pub(super) fn reconcile_pass(&mut self, now: Instant) -> bool {
        let mut changed = false;
        let order = self.order.clone();
        // Stops, dependents first: walk the start order backwards.
        for name in order.iter().rev() {
            let Some(svc) = self.services.get(name) else {
                continue;
            };
            if !svc.state.is_running() {
                continue;
            }
            let reason = if self.shutting_down || !svc.wanted {
                // Wait for dependents to be gone first: all of them at shutdown, the
                // ones that require it otherwise.
                let waiting = self.active_dependents(name, !self.shutting_down);
                if !waiting.is_empty() || (self.shutting_down && self.must_stay_up(svc)) {
                    continue;
                }
                None
            } else if let Some(down) = self.required_down(svc) {
                Some(format!("stopped: requires {down}, which is down"))
            } else {
                continue;
            };
            self.begin_stop(name, now);
            if let (Some(reason), Some(svc)) = (reason, self.services.get_mut(name)) {
                svc.note = Some(reason);
            }
            changed = true;
        }
        if self.shutting_down {
            return changed;
        }
        // Starts, dependencies first.
        for name in &order {
            let Some(svc) = self.services.get(name) else {
                continue;
            };
            let due = match svc.state {
                State::Stopped => true,
                State::Backoff { until } => until <= now,
                _ => false,
            };
            if !(svc.wanted && due) {
                continue;
            }
            let waiting = self.unmet_dependencies(svc);
            if waiting.is_empty() {
                self.start(name, now);
                changed = true;
            } else {
                let note = format!("waiting for {}", waiting.join(", "));
                if let Some(svc) = self.services.get_mut(name) {
                    if svc.note.as_deref() != Some(note.as_str()) {
                        svc.note = Some(note);
                    }
                }
            }
        }
        changed
    }

    /// Dependents of `name` that still have a process (only `requires` ones if asked).
    pub(super) fn active_dependents(&self, name: &str, requires_only: bool) -> Vec<String> {
        self.services
            .values()
            .filter(|s| s.state.is_active())
            .filter(|s| {
                if requires_only {
                    s.spec.requires.iter().any(|d| d == name)
                } else {
                    s.spec.dependencies().any(|d| d == name)
                }
            })
            .map(|s| s.spec.name.clone())
            .collect()
    }

    /// A `stop-last` service at shutdown stays up while any other service still has a
    /// process, except the ones it depends on (directly or not): those stop after it, so
    /// waiting for them would wait forever. Other `stop-last` services don't hold it.
    pub(super) fn must_stay_up(&self, svc: &Service) -> bool {
        if !svc.spec.stop_last {
            return false;
        }
        let needed = self.dependencies_of(&svc.spec.name);
        self.services.values().any(|other| {
            other.state.is_active()
                && !other.spec.stop_last
                && !needed.contains(other.spec.name.as_str())
        })
    }

    /// Every service `name` depends on, directly or through others.
    pub(super) fn dependencies_of(&self, name: &str) -> BTreeSet<&str> {
        let mut found = BTreeSet::new();
        let mut todo = vec![name];
        while let Some(next) = todo.pop() {
            let Some(svc) = self.services.get(next) else {
                continue;
            };
            for dep in svc.spec.dependencies() {
                if found.insert(dep) {
                    todo.push(dep);
                }
            }
        }
        found
    }

    /// A required service that is durably down (failed, or stopped or removed on request).
    pub(super) fn required_down(&self, svc: &Service) -> Option<String> {
        svc.spec
            .requires
            .iter()
            .find_map(|dep| match self.services.get(dep) {
                None => Some(dep.clone()),
                Some(d) if d.state == State::Failed => Some(dep.clone()),
                // Not wanted: it is going down (or stays down), so its dependents go first.
                Some(d) if !d.wanted && d.state != State::Skipped => Some(dep.clone()),
                Some(_) => None,
            })
    }

    /// Dependencies `svc` still waits for. `after` waits for a dependency to settle
    /// (up, failed, or stopped on request); `requires` waits for it to be up.
    pub(super) fn unmet_dependencies(&self, svc: &Service) -> Vec<String> {
        let mut unmet = Vec::new();
        for dep in svc.spec.dependencies() {
            let required = svc.spec.requires.iter().any(|r| r == dep);
            let met = match self.services.get(dep) {
                None => !required,
                Some(d) if d.state.is_up() => true,
                Some(_) if required => false,
                Some(d) => d.state == State::Failed || (!d.wanted && !d.state.is_active()),
            };
            if !met {
                unmet.push(dep.to_string());
            }
        }
        unmet
    }

    pub(super) fn start(&mut self, name: &str, now: Instant) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        // The first condition that does not hold is the one said.
        for cond in &svc.spec.conditions {
            let exists = self.exec.path_exists(&cond.path);
            if exists == cond.negate {
                svc.state = State::Skipped;
                let what = if cond.negate {
                    "exists"
                } else {
                    "does not exist"
                };
                svc.note = Some(format!("condition: {} {what}", cond.path.display()));
                log::info(format_args!(
                    "{name}: skipped ({} {what})",
                    cond.path.display()
                ));
                return;
            }
        }
        match self.exec.spawn(&svc.spec) {
            Ok(Spawned {
                pid,
                exec_confirmed,
            }) => {
                svc.pid = Some(pid);
                svc.exec_deadline = (!exec_confirmed).then_some(now + EXEC_DEADLINE);
                svc.exec_failed = None;
                svc.started_at = Some(now);
                svc.generation += 1;
                // After a crash, the note says why it restarted until something new.
                if !matches!(svc.state, State::Backoff { .. }) {
                    svc.note = None;
                }
                svc.status_text = None;
                svc.readiness = Readiness::default();
                svc.last_beat = Some(now);
                svc.stale = Stale::Fresh;
                svc.state = match (&svc.spec.kind, &svc.spec.ready) {
                    (ServiceType::Oneshot, _) => State::Starting,
                    // Up (dependents may start) only once its program runs.
                    (ServiceType::Longrun, None) if exec_confirmed => {
                        svc.came_up = svc.generation;
                        State::Running
                    }
                    (ServiceType::Longrun, None) => State::Starting,
                    (ServiceType::Longrun, Some(ready)) => {
                        svc.readiness.deadline = Some(now + ready.timeout);
                        // Probes start once the program runs.
                        if ready.check != ReadyCheck::Notify && exec_confirmed {
                            svc.readiness.next_probe = Some(now);
                        }
                        State::Starting
                    }
                };
                log::info(format_args!("{name}: started, pid {pid}"));
            }
            Err(error) => self.start_failed(name, &error, now),
        }
    }

    /// A start that never reached the program (spawn, a confinement step, exec, or the
    /// exec deadline): the restart policy's spawn-failure verdict.
    pub(super) fn start_failed(&mut self, name: &str, error: &str, now: Instant) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        log::warn(format_args!("{name}: cannot start: {error}"));
        svc.readiness = Readiness::default();
        let verdict = policy::after_spawn_failure(
            &svc.spec.restart,
            &mut svc.history,
            error,
            now,
            self.jitter.sample(),
        );
        svc.note = Some(format!("cannot start: {error}"));
        self.apply_verdict(name, verdict, now);
    }

    pub(super) fn begin_stop(&mut self, name: &str, now: Instant) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        match (svc.pid, &svc.state) {
            (Some(pid), State::Starting | State::Ready | State::Running) => {
                log::info(format_args!(
                    "{name}: stopping with {}",
                    svc.spec.stop.signal.as_str()
                ));
                self.exec.signal_group(pid, svc.spec.stop.signal);
                // A stopped (SIGSTOP) process would sit on the signal until the deadline.
                if svc.spec.stop.signal != Signal::SIGCONT {
                    self.exec.signal_group(pid, Signal::SIGCONT);
                }
                svc.state = State::Stopping {
                    deadline: now + svc.spec.stop.timeout,
                    killed: false,
                };
            }
            (_, State::Stopping { .. }) => {}
            _ => {
                svc.state = State::Stopped;
                self.finish_stop(name);
            }
        }
    }

    /// The process is gone (or was never there): carry out what the stop was for.
    pub(super) fn finish_stop(&mut self, name: &str) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        svc.pid = None;
        svc.started_at = None;
        match std::mem::replace(&mut svc.then, AfterStop::Rest) {
            AfterStop::Rest => {}
            AfterStop::Restart => {
                svc.wanted = true;
                svc.restarts += 1;
            }
            AfterStop::Replace(spec) => {
                svc.spec = *spec;
                svc.history.reset();
                self.reorder();
            }
            AfterStop::Remove => {
                self.services.remove(name);
                self.exec.release(name);
                self.reorder();
                log::info(format_args!("{name}: removed"));
            }
        }
    }

    pub(super) fn apply_verdict(&mut self, name: &str, verdict: Verdict, now: Instant) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        match verdict {
            Verdict::Done => {
                svc.state = State::Done;
                svc.came_up = svc.generation;
                svc.note = None;
                log::info(format_args!("{name}: done"));
            }
            Verdict::Stop => {
                svc.state = State::Stopped;
                svc.wanted = false;
                svc.note = Some("exited; its restart policy does not restart it".into());
            }
            Verdict::Fail { reason } => {
                svc.state = State::Failed;
                // Its own policy said never: a person decides. Restarts exhausted: a
                // cause outside it may pass, so try again after the cool-down.
                svc.retry_at = match svc.spec.restart.policy {
                    crate::spec::RestartPolicy::Never => None,
                    _ => svc.spec.restart.retry_failed_after.map(|d| now + d),
                };
                match svc.retry_at {
                    Some(at) => log::warn(format_args!(
                        "{name}: failed: {reason}; trying again in {}",
                        confkit::durations::format_duration(at.saturating_duration_since(now))
                    )),
                    None => log::warn(format_args!("{name}: failed: {reason}")),
                }
                svc.note = Some(reason);
            }
            Verdict::Restart { delay } => {
                svc.restarts += 1;
                if delay.is_zero() {
                    // Due at once: reconcile starts it (never a direct call to `start`
                    // here, which could recurse as deep as the intensity allows).
                    svc.state = State::Backoff { until: now };
                } else {
                    log::info(format_args!(
                        "{name}: restarting in {}",
                        confkit::durations::format_duration(delay)
                    ));
                    svc.state = State::Backoff { until: now + delay };
                }
            }
        }
    }
}
