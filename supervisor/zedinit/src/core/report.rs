//! What the supervisor reports: `status` and `health`.

use super::*;

impl<E: Executor> Core<E> {
    pub fn status(&self, now: Instant) -> Vec<ServiceStatus> {
        self.order
            .iter()
            .filter_map(|n| self.services.get(n))
            .map(|s| ServiceStatus {
                name: s.spec.name.clone(),
                state: s.state.name().to_string(),
                kind: match s.spec.kind {
                    ServiceType::Longrun => "longrun".into(),
                    ServiceType::Oneshot => "oneshot".into(),
                },
                pid: s.pid,
                uptime_ms: s
                    .started_at
                    .map(|t| now.saturating_duration_since(t).as_millis() as u64),
                restarts: s.restarts,
                last_exit: s.last_exit.map(Exit::to_wire),
                next_retry_ms: match (&s.state, s.retry_at) {
                    (State::Backoff { until }, _) => {
                        Some(until.saturating_duration_since(now).as_millis() as u64)
                    }
                    (State::Failed, Some(at)) if s.wanted => {
                        Some(at.saturating_duration_since(now).as_millis() as u64)
                    }
                    _ => None,
                },
                note: s.note.clone(),
                critical: s.spec.critical,
                wanted: s.wanted,
                status_text: s.status_text.clone(),
                heartbeat_age_ms: s
                    .last_beat
                    .filter(|_| s.spec.heartbeat.is_some() && s.pid.is_some())
                    .map(|t| now.saturating_duration_since(t).as_millis() as u64),
            })
            .collect()
    }

    /// Unhealthy when a critical service has failed, or its heartbeat is stale and
    /// zedinit is not already restarting it (DESIGN.md "Heartbeats and the watchdog").
    pub fn health(&self) -> Health {
        let mut reasons = Vec::new();
        for s in self.services.values().filter(|s| s.spec.critical) {
            if s.state == State::Failed {
                reasons.push(format!(
                    "{} failed: {}",
                    s.spec.name,
                    s.note.as_deref().unwrap_or("")
                ));
            } else if s.recovering {
                reasons.push(format!(
                    "{} failed and is being tried again: {}",
                    s.spec.name,
                    s.note.as_deref().unwrap_or("")
                ));
            } else if let Stale::Signaled(_) = s.stale {
                reasons.push(format!("{}: heartbeat stale", s.spec.name));
            }
        }
        Health {
            healthy: reasons.is_empty(),
            reasons,
        }
    }
}
