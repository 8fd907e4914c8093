//! Shutdown: every service stopped in reverse dependency order.

use super::*;

impl<E: Executor> Core<E> {
    /// SIGTERM/SIGINT/`supctl shutdown`: stop everything, dependents first.
    pub fn begin_shutdown(&mut self, now: Instant) {
        if self.shutting_down {
            return;
        }
        log::info(format_args!("shutting down"));
        self.shutting_down = true;
        for svc in self.services.values_mut() {
            svc.wanted = false;
            if matches!(svc.state, State::Backoff { .. }) {
                svc.state = State::Stopped;
            }
        }
        self.reconcile(now);
    }
}
