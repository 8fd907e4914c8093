//! Restart policy as pure functions of (spec, history, exit, now): what to do when a
//! service's process ends on its own. No processes, no clock reads: tests drive `now`.

use crate::exit::Exit;
use crate::spec::{RestartPolicy, RestartSpec, ServiceType};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the supervisor should do after an unrequested exit.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Oneshot finished with exit 0.
    Done,
    /// Start again after `delay` (zero: at once).
    Restart { delay: Duration },
    /// Leave it stopped: the policy does not restart this kind of exit.
    Stop,
    /// Give up: the reason goes to `supctl status`.
    Fail { reason: String },
}

/// Restart bookkeeping kept per service between runs.
#[derive(Debug, Clone, Default)]
pub struct RestartHistory {
    /// Restarts in a row since the last stable run; drives the backoff.
    pub consecutive: u32,
    /// When recent restarts happened; drives the intensity limit.
    pub recent: VecDeque<Instant>,
}

impl RestartHistory {
    /// A fresh start requested by a person (`supctl start`): forget past failures.
    pub fn reset(&mut self) {
        self.consecutive = 0;
        self.recent.clear();
    }
}

/// Delay before the `nth` restart in a row (0-based): the first is immediate, then
/// `base * 2^(n-1)`, capped at `max`, shortened by up to `jitter` of itself.
/// `jitter_sample` is uniform in [0, 1) and supplied by the caller.
pub fn backoff_delay(spec: &RestartSpec, nth: u32, jitter_sample: f64) -> Duration {
    if nth == 0 {
        return Duration::ZERO;
    }
    let doublings = (nth - 1).min(31);
    let raw = spec
        .backoff_base
        .saturating_mul(1u32 << doublings)
        .min(spec.backoff_max);
    let keep = 1.0 - spec.backoff_jitter * jitter_sample.clamp(0.0, 1.0);
    raw.mul_f64(keep)
}

/// Drops restarts older than the window; true if one more restart would exceed the
/// intensity (more than `intensity` restarts within `intensity_window`).
pub fn intensity_exceeded(
    spec: &RestartSpec,
    recent: &mut VecDeque<Instant>,
    now: Instant,
) -> bool {
    while let Some(&first) = recent.front() {
        if now.saturating_duration_since(first) >= spec.intensity_window {
            recent.pop_front();
        } else {
            break;
        }
    }
    recent.len() >= spec.intensity as usize
}

/// Decides what follows an exit nobody asked for. Updates `history` when it restarts.
pub fn after_exit(
    kind: ServiceType,
    spec: &RestartSpec,
    history: &mut RestartHistory,
    exit: Exit,
    ran_for: Duration,
    now: Instant,
    jitter_sample: f64,
) -> Verdict {
    if kind == ServiceType::Oneshot && exit.success() {
        return Verdict::Done;
    }
    let wants_restart = match spec.policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => !exit.success(),
        RestartPolicy::Never => false,
    };
    if !wants_restart {
        return if exit.success() {
            Verdict::Stop
        } else {
            Verdict::Fail {
                reason: format!("{exit} and restart policy does not restart it"),
            }
        };
    }
    if ran_for >= spec.stable_after {
        history.consecutive = 0;
    }
    retry(spec, history, &exit.to_string(), now, jitter_sample)
}

/// Decides what follows a start that failed before the program ran (exec failed, say):
/// the restart policy's backoff and intensity apply as for a crash, whatever the policy,
/// since nothing ran to completion.
pub fn after_spawn_failure(
    spec: &RestartSpec,
    history: &mut RestartHistory,
    error: &str,
    now: Instant,
    jitter_sample: f64,
) -> Verdict {
    if spec.policy == RestartPolicy::Never {
        return Verdict::Fail {
            reason: format!("cannot start: {error}"),
        };
    }
    retry(
        spec,
        history,
        &format!("cannot start: {error}"),
        now,
        jitter_sample,
    )
}

fn retry(
    spec: &RestartSpec,
    history: &mut RestartHistory,
    what: &str,
    now: Instant,
    jitter_sample: f64,
) -> Verdict {
    if intensity_exceeded(spec, &mut history.recent, now) {
        return Verdict::Fail {
            reason: format!(
                "{what}: more than {} restarts within {}",
                spec.intensity,
                confkit::durations::format_duration(spec.intensity_window)
            ),
        };
    }
    let delay = backoff_delay(spec, history.consecutive, jitter_sample);
    history.consecutive = history.consecutive.saturating_add(1);
    history.recent.push_back(now);
    Verdict::Restart { delay }
}

/// A small xorshift generator for jitter: no syscalls, no allocation, seeded once.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Jitter(seed | 1)
    }

    /// Uniform in [0, 1).
    pub fn sample(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ServiceType::{Longrun, Oneshot};
    use nix::sys::signal::Signal;

    fn spec() -> RestartSpec {
        RestartSpec {
            policy: RestartPolicy::Always,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            backoff_jitter: 0.0,
            stable_after: Duration::from_secs(10),
            intensity: 3,
            intensity_window: Duration::from_secs(60),
            retry_failed_after: None,
        }
    }

    #[test]
    fn backoff_first_restart_is_immediate_then_doubles_to_the_cap() {
        let s = spec();
        let delays: Vec<u128> = (0..8)
            .map(|n| backoff_delay(&s, n, 0.5).as_millis())
            .collect();
        assert_eq!(delays, vec![0, 100, 200, 400, 800, 1600, 2000, 2000]);
        // Absurd counts saturate instead of overflowing.
        assert_eq!(backoff_delay(&s, u32::MAX, 0.0), Duration::from_secs(2));
    }

    #[test]
    fn backoff_jitter_only_shortens_and_stays_within_its_fraction() {
        let s = RestartSpec {
            backoff_jitter: 0.25,
            ..spec()
        };
        assert_eq!(backoff_delay(&s, 3, 0.0), Duration::from_millis(400));
        assert_eq!(backoff_delay(&s, 3, 1.0), Duration::from_millis(300));
        let mut jitter = Jitter::new(42);
        for _ in 0..1000 {
            let d = backoff_delay(&s, 3, jitter.sample());
            assert!(
                d <= Duration::from_millis(400) && d >= Duration::from_millis(300),
                "{d:?}"
            );
        }
    }

    #[test]
    fn jitter_samples_spread_over_the_unit_interval() {
        let mut jitter = Jitter::new(7);
        let samples: Vec<f64> = (0..10_000).map(|_| jitter.sample()).collect();
        assert!(samples.iter().all(|x| (0.0..1.0).contains(x)));
        let low = samples.iter().filter(|x| **x < 0.5).count();
        assert!((4000..6000).contains(&low), "{low} of 10000 below 0.5");
    }

    #[test]
    fn intensity_fails_on_the_restart_past_the_limit_within_the_window() {
        let s = spec();
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        let crash = Exit::Exited(1);
        let at = |secs| t0 + Duration::from_secs(secs);
        for i in 0..3 {
            let v = after_exit(Longrun, &s, &mut h, crash, Duration::ZERO, at(i), 0.0);
            assert!(matches!(v, Verdict::Restart { .. }), "restart {i}: {v:?}");
        }
        let v = after_exit(Longrun, &s, &mut h, crash, Duration::ZERO, at(3), 0.0);
        match v {
            Verdict::Fail { reason } => assert!(
                reason.contains("more than 3 restarts within 1m00s"),
                "{reason}"
            ),
            other => panic!("expected failure, got {other:?}"),
        }
    }

    #[test]
    fn intensity_forgets_restarts_older_than_the_window() {
        let s = spec();
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        for i in 0..3 {
            after_exit(
                Longrun,
                &s,
                &mut h,
                Exit::Exited(1),
                Duration::ZERO,
                t0 + Duration::from_secs(i),
                0.0,
            );
        }
        // 61 s after the first one, only two restarts remain in the window.
        let v = after_exit(
            Longrun,
            &s,
            &mut h,
            Exit::Exited(1),
            Duration::ZERO,
            t0 + Duration::from_secs(61),
            0.0,
        );
        assert!(matches!(v, Verdict::Restart { .. }), "{v:?}");
    }

    #[test]
    fn a_stable_run_resets_the_backoff() {
        let s = spec();
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        let delay = |v: Verdict| match v {
            Verdict::Restart { delay } => delay,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            delay(after_exit(
                Longrun,
                &s,
                &mut h,
                Exit::Exited(1),
                Duration::ZERO,
                t0,
                0.0
            )),
            Duration::ZERO
        );
        assert_eq!(
            delay(after_exit(
                Longrun,
                &s,
                &mut h,
                Exit::Exited(1),
                Duration::ZERO,
                t0,
                0.0
            )),
            Duration::from_millis(100)
        );
        let later = t0 + Duration::from_secs(100);
        assert_eq!(
            delay(after_exit(
                Longrun,
                &s,
                &mut h,
                Exit::Exited(1),
                Duration::from_secs(30),
                later,
                0.0
            )),
            Duration::ZERO
        );
    }

    #[test]
    fn policies_decide_which_exits_restart() {
        let t = Instant::now();
        let run = |policy, kind, exit| {
            let s = RestartSpec { policy, ..spec() };
            after_exit(
                kind,
                &s,
                &mut RestartHistory::default(),
                exit,
                Duration::ZERO,
                t,
                0.0,
            )
        };
        let killed = Exit::Signaled(Signal::SIGKILL);
        assert!(matches!(
            run(RestartPolicy::Always, Longrun, Exit::Exited(0)),
            Verdict::Restart { .. }
        ));
        assert_eq!(
            run(RestartPolicy::OnFailure, Longrun, Exit::Exited(0)),
            Verdict::Stop
        );
        assert!(matches!(
            run(RestartPolicy::OnFailure, Longrun, killed),
            Verdict::Restart { .. }
        ));
        assert!(matches!(
            run(RestartPolicy::Never, Longrun, Exit::Exited(2)),
            Verdict::Fail { .. }
        ));
        assert_eq!(
            run(RestartPolicy::Never, Longrun, Exit::Exited(0)),
            Verdict::Stop
        );
        assert_eq!(
            run(RestartPolicy::Always, Oneshot, Exit::Exited(0)),
            Verdict::Done
        );
        assert!(matches!(
            run(RestartPolicy::OnFailure, Oneshot, Exit::Exited(1)),
            Verdict::Restart { .. }
        ));
        match run(RestartPolicy::Never, Oneshot, killed) {
            Verdict::Fail { reason } => assert!(reason.contains("SIGKILL"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
