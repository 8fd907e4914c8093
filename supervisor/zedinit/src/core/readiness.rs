//! Readiness: `[ready]` checks (file, tcp, exec probes) and the notify socket.

use super::*;

impl<E: Executor> Core<E> {
    pub(super) fn mark_ready(&mut self, name: &str, how: &str) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        if svc.state == State::Starting && svc.spec.ready.is_some() {
            svc.state = State::Ready;
            svc.came_up = svc.generation;
            svc.readiness.deadline = None;
            svc.readiness.next_probe = None;
            log::info(format_args!("{name}: ready ({how})"));
        }
    }

    /// Runs due probes and fails starts whose readiness deadline passed.
    pub(super) fn readiness_tick(&mut self, name: &str, now: Instant) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let (State::Starting, Some(ready), Some(pid)) =
            (&svc.state, svc.spec.ready.clone(), svc.pid)
        else {
            return;
        };
        if svc.readiness.timed_out {
            return;
        }
        if svc.readiness.deadline.is_some_and(|d| d <= now) {
            log::warn(format_args!(
                "{name}: not ready within {}; SIGKILL to its process group",
                confkit::durations::format_duration(ready.timeout)
            ));
            svc.readiness.timed_out = true;
            self.exec.signal_group(pid, Signal::SIGKILL);
            if let Some(probe) = svc.readiness.probe_pid {
                self.exec.signal_group(probe, Signal::SIGKILL);
            }
            return;
        }
        if svc.readiness.probe_pid.is_some() || svc.readiness.next_probe.is_none_or(|t| t > now) {
            return;
        }
        match &ready.check {
            ReadyCheck::Notify => {}
            ReadyCheck::File(_) if self.exec.file_check_needs_probe(&svc.spec) => {
                match self.exec.spawn_probe(&svc.spec, pid) {
                    Ok(probe) => {
                        svc.readiness.probe_pid = Some(probe);
                        svc.readiness.next_probe = None;
                    }
                    Err(e) => {
                        log::warn(format_args!("{name}: readiness probe: {e}"));
                        svc.readiness.next_probe = Some(now + ready.interval);
                    }
                }
            }
            ReadyCheck::File(path) => {
                if self.exec.path_exists(path) {
                    let how = format!("{} exists", path.display());
                    self.mark_ready(name, &how);
                } else {
                    svc.readiness.next_probe = Some(now + ready.interval);
                }
            }
            ReadyCheck::Tcp(_) | ReadyCheck::Exec(_) => match self.exec.spawn_probe(&svc.spec, pid)
            {
                Ok(probe) => {
                    svc.readiness.probe_pid = Some(probe);
                    svc.readiness.next_probe = None;
                }
                Err(e) => {
                    log::warn(format_args!("{name}: readiness probe: {e}"));
                    svc.readiness.next_probe = Some(now + ready.interval);
                }
            },
        }
    }

    /// A probe process ended: ready on exit 0, otherwise probe again after the interval.
    pub(super) fn on_probe_exit(&mut self, pid: i32, exit: Exit, now: Instant) -> bool {
        let Some(name) = self
            .services
            .iter()
            .find(|(_, s)| s.readiness.probe_pid == Some(pid))
            .map(|(n, _)| n.clone())
        else {
            return false;
        };
        let Some(svc) = self.services.get_mut(&name) else {
            return false;
        };
        svc.readiness.probe_pid = None;
        if svc.state != State::Starting || svc.readiness.timed_out {
            return true;
        }
        if exit.success() {
            let how = match &svc.spec.ready.as_ref().map(|r| &r.check) {
                Some(ReadyCheck::Tcp(addr)) => format!("{addr} accepts connections"),
                Some(ReadyCheck::File(path)) => format!("{} exists", path.display()),
                _ => "check command exited 0".to_string(),
            };
            self.mark_ready(&name, &how);
        } else {
            let interval = svc
                .spec
                .ready
                .as_ref()
                .map(|r| r.interval)
                .unwrap_or_default();
            svc.readiness.next_probe = Some(now + interval);
        }
        true
    }

    /// A datagram on a service's notify socket, sent by process `sender`.
    /// Returns false when refused (the sender is not one of the service's processes).
    pub fn on_notify(
        &mut self,
        name: &str,
        sender: Option<i32>,
        message: &str,
        now: Instant,
    ) -> bool {
        let Some(svc) = self.services.get_mut(name) else {
            return false;
        };
        let belongs = match (sender, svc.pid) {
            (Some(sender), Some(main)) => self.exec.belongs_to(sender, main),
            _ => false,
        };
        if !belongs {
            let who = sender
                .map(|p| format!("pid {p}"))
                .unwrap_or_else(|| "an unknown sender".into());
            log::warn(format_args!(
                "{name}: notify message from {who}, not one of its processes: refused"
            ));
            return false;
        }
        let mut ready = false;
        let mut watchdog = false;
        for line in message.lines() {
            match line.split_once('=') {
                Some(("READY", "1")) => ready = true,
                Some(("WATCHDOG", "1")) => watchdog = true,
                Some(("STATUS", text)) => svc.status_text = Some(text.chars().take(200).collect()),
                _ => {}
            }
        }
        let wants_notify = svc
            .spec
            .ready
            .as_ref()
            .is_some_and(|r| r.check == ReadyCheck::Notify);
        if ready && wants_notify && !svc.readiness.timed_out {
            self.mark_ready(name, "READY=1");
        }
        if watchdog {
            self.on_beat(name, now);
        }
        true
    }
}
