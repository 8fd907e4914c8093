//! Heartbeats: a beat, and a service whose beats stopped.

use super::*;

impl<E: Executor> Core<E> {
    /// A beat from the service: its file was touched, or it sent WATCHDOG=1.
    pub fn on_beat(&mut self, name: &str, now: Instant) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        if svc.pid.is_none() || svc.spec.heartbeat.is_none() {
            return;
        }
        svc.last_beat = Some(now);
        if let Stale::Signaled(_) = svc.stale {
            log::info(format_args!("{name}: heartbeat back"));
            svc.stale = Stale::Fresh;
        }
    }

    /// Signals, then restarts, a service whose heartbeat is older than its max-age.
    pub(super) fn heartbeat_tick(&mut self, name: &str, now: Instant) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let (Some(hb), Some(pid), Some(due)) = (
            svc.spec.heartbeat.clone(),
            svc.pid,
            svc.heartbeat_deadline(),
        ) else {
            return;
        };
        if due > now || self.shutting_down {
            return;
        }
        match (svc.stale, hb.signal) {
            (Stale::Fresh, Some(signal)) => {
                log::warn(format_args!(
                    "{name}: no heartbeat for {}; sending {}",
                    confkit::durations::format_duration(hb.max_age),
                    signal.as_str()
                ));
                let _ = self.exec.signal_process(pid, signal);
                svc.stale = Stale::Signaled(now);
            }
            (Stale::Fresh, None) | (Stale::Signaled(_), _) => {
                log::warn(format_args!("{name}: heartbeat stale; restarting it"));
                svc.stale = Stale::Restarting;
                self.begin_stop(name, now);
            }
            (Stale::Restarting, _) => {}
        }
    }
}
