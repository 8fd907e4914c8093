//! Requests from the control socket: start, stop, restart, signal.

use super::*;

impl<E: Executor> Core<E> {
    pub(super) fn lookup(&mut self, name: &str) -> Result<&mut Service, RequestError> {
        if self.shutting_down {
            return Err(RequestError::ShuttingDown);
        }
        self.services
            .get_mut(name)
            .ok_or_else(|| RequestError::UnknownService(name.to_string()))
    }

    /// `supctl start`: wanted again, and a fresh start for one that failed or finished.
    pub fn request_start(&mut self, name: &str) -> Result<(), RequestError> {
        let svc = self.lookup_kept(name)?;
        svc.wanted = true;
        if matches!(
            svc.state,
            State::Failed | State::Done | State::Skipped | State::Backoff { .. }
        ) {
            svc.state = State::Stopped;
            svc.history.reset();
            svc.note = None;
        }
        // A pending Replace already starts the new definition once stopped.
        if matches!(svc.state, State::Stopping { .. }) && svc.then == AfterStop::Rest {
            svc.then = AfterStop::Restart;
        }
        Ok(())
    }

    /// Like `lookup`, but a service a rescan is removing can't be brought back by a verb.
    pub(super) fn lookup_kept(&mut self, name: &str) -> Result<&mut Service, RequestError> {
        let svc = self.lookup(name)?;
        if svc.then == AfterStop::Remove {
            return Err(RequestError::UnknownService(format!(
                "{name} (its definition was removed; it is stopping)"
            )));
        }
        Ok(svc)
    }

    /// `supctl stop`: down until started again; what requires it stops first.
    pub fn request_stop(&mut self, name: &str, now: Instant) -> Result<(), RequestError> {
        let svc = self.lookup(name)?;
        svc.wanted = false;
        if matches!(svc.then, AfterStop::Restart) {
            svc.then = AfterStop::Rest;
        }
        if matches!(svc.state, State::Backoff { .. }) {
            svc.state = State::Stopped;
        }
        svc.note = Some("stopped on request".into());
        let _ = now;
        Ok(())
    }

    /// `supctl restart`: stop this one (only this one) and start it again.
    pub fn request_restart(&mut self, name: &str, now: Instant) -> Result<(), RequestError> {
        let svc = self.lookup_kept(name)?;
        svc.wanted = true;
        // A pending Replace restarts with the new definition: keep it.
        let keep_replace = matches!(svc.then, AfterStop::Replace(_));
        match svc.state {
            State::Starting | State::Ready | State::Running => {
                if !keep_replace {
                    svc.then = AfterStop::Restart;
                }
                self.begin_stop(name, now);
            }
            State::Stopping { .. } => {
                if !keep_replace {
                    svc.then = AfterStop::Restart;
                }
            }
            _ => {
                svc.state = State::Stopped;
                svc.history.reset();
                svc.note = None;
            }
        }
        Ok(())
    }

    /// `supctl signal` / `supctl reload`: one signal to the service's main process.
    pub fn send_signal(
        &mut self,
        name: &str,
        signal: Option<Signal>,
    ) -> Result<Signal, RequestError> {
        let svc = self.lookup(name)?;
        let signal = signal.unwrap_or(svc.spec.reload_signal);
        let Some(pid) = svc.pid else {
            return Err(RequestError::InvalidState(format!(
                "{name} has no process ({})",
                svc.state.name()
            )));
        };
        self.exec
            .signal_process(pid, signal)
            .map_err(RequestError::InvalidState)?;
        Ok(signal)
    }
}
