//! What each control verb does to the supervisor, and when a waiting request is
//! answered. Socket I/O lives in `server`; this is testable with a fake executor.

use crate::core::{Core, Executor, RequestError};
use crate::parse;
use crate::signal_names::parse_signal;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use zedctr_proto::protocol::{ErrorKind, PROTOCOL_VERSION, Request, Response, Verb};
use zedctr_proto::status::{StatusReport, SupervisorStatus};

/// Longest wait a client may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// The supervisor as the control socket sees it.
pub struct Supervisor<E: Executor> {
    pub core: Core<E>,
    pub dirs: Vec<PathBuf>,
    pub pid: i32,
    pub subreaper: bool,
    /// Rescans done: each one runs the parsers again (start-up code, see
    /// `sys::codepages`).
    pub rescans: u64,
    /// Requests answered other than `health`: an operator's `status`, `restart` or
    /// `logs` runs code the steady state does not (zedwatchdog's `health` every few
    /// seconds is the steady state), so its pages are given back once things settle.
    pub one_off_requests: u64,
}

/// A state a client waits for before its answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Goal {
    /// A process of at least this generation came up (ran, was ready or finished well),
    /// or the service was skipped.
    Started {
        service: String,
        min_generation: u64,
    },
    /// No process left (or the service was removed).
    Stopped { service: String },
}

/// What the server does with a request.
#[derive(Debug)]
pub enum Outcome {
    Reply(Response),
    /// Answer when `goal` is reached or at `deadline`.
    Wait {
        goal: Goal,
        deadline: Instant,
    },
    /// Reply, then begin the ordered shutdown.
    Shutdown(Response),
    /// Reply, then stream `service`'s new log lines on this connection.
    Follow {
        service: String,
        response: Response,
    },
}

impl<E: Executor> Supervisor<E> {
    pub fn status_report(&self, now: Instant) -> StatusReport {
        StatusReport {
            version: PROTOCOL_VERSION,
            supervisor: SupervisorStatus {
                pid: self.pid,
                subreaper: self.subreaper,
                reaped_orphans: self.core.orphans_reaped,
                services_dirs: self.dirs.iter().map(|d| d.display().to_string()).collect(),
                shutting_down: self.core.is_shutting_down(),
                definition_errors: self
                    .core
                    .definition_errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect(),
            },
            services: self.core.status(now),
        }
    }

    /// Re-reads every definition directory and applies the difference.
    pub fn rescan(&mut self, now: Instant) -> Response {
        self.rescans += 1;
        let loaded = parse::load_dirs(&self.dirs);
        let errors: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
        let diff = self.core.apply_rescan(loaded, now);
        self.core.reconcile(now);
        Response::ok(serde_json::json!({
            "added": diff.added, "removed": diff.removed, "changed": diff.changed,
            "definition_errors": errors,
        }))
    }

    pub fn handle_line(&mut self, line: &[u8], now: Instant) -> Outcome {
        let request: Request = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Reply(Response::error(
                    ErrorKind::BadRequest,
                    format!("not a valid request: {e}"),
                ));
            }
        };
        self.handle(request, now)
    }

    pub fn handle(&mut self, req: Request, now: Instant) -> Outcome {
        if req.version != PROTOCOL_VERSION {
            return reply_err(
                ErrorKind::UnsupportedVersion,
                format!(
                    "protocol version {} is not supported; this zedinit speaks {PROTOCOL_VERSION}",
                    req.version
                ),
            );
        }
        let wait = req
            .wait_ms
            .map(Duration::from_millis)
            .unwrap_or_default()
            .min(MAX_WAIT);
        let service = req.service.as_deref();
        if req.known_verb() != Some(Verb::Health) {
            self.one_off_requests += 1;
        }
        let Some(verb) = req.known_verb() else {
            return reply_err(
                ErrorKind::UnknownVerb,
                format!(
                    "unknown verb {:?}; verbs: {}",
                    req.verb,
                    Verb::ALL.map(Verb::as_str).join(", ")
                ),
            );
        };
        match verb {
            Verb::Status => match service {
                Some(name) if self.core.service(name).is_none() => unknown(name),
                _ => Outcome::Reply(Response::ok(json(&self.status_report(now)))),
            },
            Verb::Health => Outcome::Reply(Response::ok(json(&self.core.health()))),
            Verb::Rescan => Outcome::Reply(self.rescan(now)),
            Verb::Shutdown => {
                Outcome::Shutdown(Response::ok(serde_json::json!({"shutting_down": true})))
            }
            Verb::Logs => {
                let Some(name) = service else {
                    return reply_err(ErrorKind::BadRequest, "logs: needs \"service\"");
                };
                if self.core.service(name).is_none() {
                    return unknown(name);
                }
                let lines = self.core.exec.log_tail(name, req.lines.unwrap_or(50));
                let response = Response::ok(serde_json::json!({ "lines": lines }));
                if req.follow == Some(true) {
                    Outcome::Follow {
                        service: name.to_string(),
                        response,
                    }
                } else {
                    Outcome::Reply(response)
                }
            }
            Verb::Start | Verb::Stop | Verb::Restart | Verb::Reload | Verb::Signal => {
                let Some(name) = service else {
                    return reply_err(ErrorKind::BadRequest, format!("{verb}: needs \"service\""));
                };
                self.service_verb(verb, name, req.signal.as_deref(), wait, now)
            }
        }
    }

    fn service_verb(
        &mut self,
        verb: Verb,
        name: &str,
        signal: Option<&str>,
        wait: Duration,
        now: Instant,
    ) -> Outcome {
        let (generation, has_process) = self
            .core
            .service(name)
            .map(|s| (s.generation, s.state.is_running()))
            .unwrap_or_default();
        let result = match verb {
            // The process it has, else the next one.
            Verb::Start => self.core.request_start(name).map(|_| Goal::Started {
                service: name.into(),
                min_generation: if has_process {
                    generation
                } else {
                    generation + 1
                },
            }),
            Verb::Restart => self.core.request_restart(name, now).map(|_| Goal::Started {
                service: name.into(),
                min_generation: generation + 1,
            }),
            Verb::Stop => self.core.request_stop(name, now).map(|_| Goal::Stopped {
                service: name.into(),
            }),
            _ => {
                let signal = match signal.map(parse_signal) {
                    Some(Ok(s)) => Some(s),
                    Some(Err(e)) => return reply_err(ErrorKind::BadRequest, e),
                    None if verb == Verb::Signal => {
                        return reply_err(ErrorKind::BadRequest, "signal: needs \"signal\"");
                    }
                    None => None,
                };
                return match self.core.send_signal(name, signal) {
                    Ok(sent) => Outcome::Reply(Response::ok(
                        serde_json::json!({"service": name, "signal": sent.as_str()}),
                    )),
                    Err(e) => Outcome::Reply(request_error(e)),
                };
            }
        };
        match result {
            Err(e) => Outcome::Reply(request_error(e)),
            Ok(goal) => {
                // Let the change happen now (a stop sends its signal, a start spawns).
                self.core.reconcile(now);
                match self.check(&goal) {
                    Some(response) => Outcome::Reply(response),
                    None if wait.is_zero() => Outcome::Reply(self.service_reply(name, now)),
                    None => Outcome::Wait {
                        goal,
                        deadline: now + wait,
                    },
                }
            }
        }
    }

    fn service_reply(&self, name: &str, now: Instant) -> Response {
        let status = self.core.status(now).into_iter().find(|s| s.name == name);
        Response::ok(json(&status))
    }

    /// The answer to a waiting request, once its goal is reached or cannot be.
    pub fn check(&self, goal: &Goal) -> Option<Response> {
        let now = Instant::now();
        match goal {
            Goal::Stopped { service } => match self.core.service(service) {
                None => Some(Response::ok(
                    serde_json::json!({"name": service, "state": "removed"}),
                )),
                Some(svc) if !svc.state.is_active() => Some(self.service_reply(service, now)),
                Some(_) => None,
            },
            Goal::Started {
                service,
                min_generation,
            } => {
                let svc = match self.core.service(service) {
                    None => {
                        return Some(Response::error(
                            ErrorKind::UnknownService,
                            format!("{service} was removed"),
                        ));
                    }
                    Some(svc) => svc,
                };
                // A failure first: one that came up and failed since is a failed start
                // to whoever waits (the request reset an earlier failure).
                match &svc.state {
                    crate::core::State::Skipped => Some(self.service_reply(service, now)),
                    crate::core::State::Failed => Some(Response::error(
                        ErrorKind::Failed,
                        format!("{service} failed: {}", svc.note.as_deref().unwrap_or("")),
                    )),
                    _ if svc.came_up >= *min_generation => Some(self.service_reply(service, now)),
                    crate::core::State::Stopped if !svc.wanted => Some(Response::error(
                        ErrorKind::InvalidState,
                        format!(
                            "{service} was stopped: {}",
                            svc.note.as_deref().unwrap_or("")
                        ),
                    )),
                    _ => None,
                }
            }
        }
    }

    /// The answer when a wait ran out.
    pub fn timed_out(&self, goal: &Goal) -> Response {
        let (name, wanted) = match goal {
            Goal::Started { service, .. } => (service, "started"),
            Goal::Stopped { service } => (service, "stopped"),
        };
        let state = self
            .core
            .service(name)
            .map(|s| s.state.name())
            .unwrap_or("removed");
        Response::error(
            ErrorKind::Timeout,
            format!("{name} not {wanted} in time; it is {state}"),
        )
    }
}

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

fn reply_err(kind: ErrorKind, message: impl Into<String>) -> Outcome {
    Outcome::Reply(Response::error(kind, message))
}

fn unknown(name: &str) -> Outcome {
    reply_err(
        ErrorKind::UnknownService,
        format!("no service named {name:?}"),
    )
}

fn request_error(e: RequestError) -> Response {
    match e {
        RequestError::UnknownService(name) => Response::error(
            ErrorKind::UnknownService,
            format!("no service named {name:?}"),
        ),
        RequestError::InvalidState(m) => Response::error(ErrorKind::InvalidState, m),
        RequestError::ShuttingDown => {
            Response::error(ErrorKind::ShuttingDown, "zedinit is shutting down")
        }
    }
}
