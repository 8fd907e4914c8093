//! When PID 1 gives memory back: pure decisions. The OS work is in `sys::codepages`
//! and the event loop's `malloc_trim`.

use std::time::{Duration, Instant};

/// How long start-up (or a rescan) must have settled before zedinit hands its code
/// pages back: the first spawns, log files opened, the services' first bursts of
/// output, first heartbeats all run one-off code in the seconds after a start.
pub const CODE_SETTLE: Duration = Duration::from_secs(1);

/// How long one-off work (an operator's requests, a burst of service output) must have
/// been quiet before its code pages go back: longer than [`CODE_SETTLE`], so that a
/// person's `supctl status` every few seconds costs one give-back, not one each.
pub const ACTIVITY_SETTLE: Duration = Duration::from_secs(10);

/// The longest one-off work can postpone a give-back it owes. Requests that keep coming
/// more often than [`ACTIVITY_SETTLE`] (a `supctl status` every 10 s, as the soak
/// sends: bench/memory_phases.py) would otherwise push it back for good, and the code
/// they ran once stays resident for the device's lifetime (BENCHMARKS.md, issue 16).
pub const ACTIVITY_POSTPONE_AT_MOST: Duration = Duration::from_secs(60);

/// When zedinit should hand its code pages back (`sys::codepages::give_back`).
///
/// Start-up code (parsers, graph, first spawns, opening log files) runs again only on
/// a rescan. So: once, [`CODE_SETTLE`] after start-up with no service `starting` (a
/// oneshot running or a readiness check pending: their settling runs more one-off
/// code), and once more after each later rescan has settled the same way. Other one-off
/// work (control requests other than `health`, a log flood: counted by the caller as
/// `activity`) owes a give-back too, [`ACTIVITY_SETTLE`] after the last of it: what
/// the steady state runs (a line a second from each service, zedwatchdog's `health`)
/// faults back in, and only that stays.
#[derive(Debug)]
pub struct CodePages {
    /// When to give the pages back, once nothing is starting; `None` with `pending`:
    /// waiting for the starting services to settle (no timer meanwhile: their state
    /// changes come with events that wake the loop anyway).
    due: Option<Instant>,
    /// A give-back is owed (start-up, or a rescan since the last one).
    pending: bool,
    rescans_seen: u64,
    activity_seen: u64,
    /// When the oldest activity not yet followed by a give-back happened: the due time
    /// is never later than [`ACTIVITY_POSTPONE_AT_MOST`] after it.
    unpaid_since: Option<Instant>,
}

impl CodePages {
    pub fn new(now: Instant) -> Self {
        CodePages {
            due: Some(now + CODE_SETTLE),
            pending: true,
            rescans_seen: 0,
            activity_seen: 0,
            unpaid_since: None,
        }
    }

    /// Called before the loop sleeps: true when the pages should be given back now.
    /// `rescans` is the supervisor's rescan count, `activity` a count of other one-off
    /// work, `any_starting` says whether a service is `starting` (asked only while a
    /// give-back is owed: the loop calls this on every wake-up, and a scan of the
    /// services on each would be wasted).
    pub fn poll(
        &mut self,
        now: Instant,
        rescans: u64,
        activity: u64,
        any_starting: impl FnOnce() -> bool,
    ) -> bool {
        if rescans != self.rescans_seen {
            self.rescans_seen = rescans;
            self.pending = true;
            self.due = Some(now + CODE_SETTLE);
        }
        if activity != self.activity_seen {
            self.activity_seen = activity;
            self.pending = true;
            // Each new bit of activity pushes it back: one give-back once it is quiet,
            // or, if it never is, once it has been postponed long enough.
            let since = *self.unpaid_since.get_or_insert(now);
            let quiet = (now + ACTIVITY_SETTLE).min(since + ACTIVITY_POSTPONE_AT_MOST);
            self.due = Some(self.due.map_or(quiet, |due| due.max(quiet)));
        }
        if !self.pending {
            return false;
        }
        if any_starting() {
            // Settling again once they are up: from then on, the full settle time.
            self.due = None;
            return false;
        }
        match self.due {
            None => {
                self.due = Some(now + CODE_SETTLE);
                false
            }
            Some(due) if now >= due => {
                self.due = None;
                self.pending = false;
                self.unpaid_since = None;
                true
            }
            Some(_) => false,
        }
    }

    /// The timer the loop owes for it (one wake-up after start-up and after a rescan).
    pub fn deadline(&self) -> Option<Instant> {
        self.due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_after_start_up_has_settled() {
        let t0 = Instant::now();
        let mut c = CodePages::new(t0);
        assert_eq!(c.deadline(), Some(t0 + CODE_SETTLE));
        assert!(!c.poll(t0, 0, 0, || false), "not at once");
        assert!(!c.poll(t0 + CODE_SETTLE / 2, 0, 0, || false));
        assert!(c.poll(t0 + CODE_SETTLE, 0, 0, || false));
        assert_eq!(c.deadline(), None, "no timer left: idle means no wake-ups");
        assert!(!c.poll(t0 + CODE_SETTLE * 10, 0, 0, || false), "only once");
    }

    #[test]
    fn a_service_still_starting_postpones_it_without_a_timer() {
        let t0 = Instant::now();
        let mut c = CodePages::new(t0);
        let t1 = t0 + CODE_SETTLE;
        assert!(!c.poll(t1, 0, 0, || true));
        assert_eq!(
            c.deadline(),
            None,
            "no wake-ups while a oneshot runs for long"
        );
        assert!(!c.poll(t1 + CODE_SETTLE * 100, 0, 0, || true));
        assert_eq!(c.deadline(), None);
        // It settled (an event woke the loop): the full settle time from now.
        let t2 = t1 + CODE_SETTLE * 200;
        assert!(!c.poll(t2, 0, 0, || false));
        assert_eq!(c.deadline(), Some(t2 + CODE_SETTLE));
        assert!(!c.poll(t2 + CODE_SETTLE / 2, 0, 0, || false));
        assert!(c.poll(t2 + CODE_SETTLE, 0, 0, || false));
        assert_eq!(c.deadline(), None);
    }

    #[test]
    fn again_after_each_rescan_has_settled() {
        let t0 = Instant::now();
        let mut c = CodePages::new(t0);
        assert!(c.poll(t0 + CODE_SETTLE, 0, 0, || false));
        let t1 = t0 + CODE_SETTLE * 5;
        assert!(
            !c.poll(t1, 1, 0, || false),
            "a rescan re-arms, it does not fire"
        );
        assert_eq!(c.deadline(), Some(t1 + CODE_SETTLE));
        // A second rescan before it settled pushes it back: one give-back for both.
        let t2 = t1 + CODE_SETTLE / 2;
        assert!(!c.poll(t2, 2, 0, || false));
        assert!(!c.poll(t1 + CODE_SETTLE, 2, 0, || false));
        assert!(c.poll(t2 + CODE_SETTLE, 2, 0, || false));
        assert!(!c.poll(t2 + CODE_SETTLE * 3, 2, 0, || false));
    }

    #[test]
    fn one_off_work_owes_a_give_back_once_it_has_been_quiet() {
        let t0 = Instant::now();
        let mut c = CodePages::new(t0);
        assert!(c.poll(t0 + CODE_SETTLE, 0, 0, || false));
        assert_eq!(c.deadline(), None, "idle: no timer");
        // An operator's status, then another a few seconds later: one give-back, after
        // the last has been quiet for the whole settle time.
        let t1 = t0 + CODE_SETTLE * 30;
        assert!(!c.poll(t1, 0, 1, || false));
        assert_eq!(c.deadline(), Some(t1 + ACTIVITY_SETTLE));
        let t2 = t1 + ACTIVITY_SETTLE / 2;
        assert!(!c.poll(t2, 0, 2, || false));
        assert!(!c.poll(t1 + ACTIVITY_SETTLE, 0, 2, || false), "pushed back");
        assert!(c.poll(t2 + ACTIVITY_SETTLE, 0, 2, || false));
        assert_eq!(c.deadline(), None);
        assert!(!c.poll(t2 + ACTIVITY_SETTLE * 9, 0, 2, || false), "once");
    }

    #[test]
    fn activity_that_never_pauses_still_gets_a_give_back() {
        let t0 = Instant::now();
        let mut c = CodePages::new(t0);
        assert!(c.poll(t0 + CODE_SETTLE, 0, 0, || false));
        // A status request every 9 s, for ever: never quiet for ACTIVITY_SETTLE.
        let t1 = t0 + CODE_SETTLE * 30;
        let every = ACTIVITY_SETTLE - Duration::from_secs(1);
        let mut gave_back = Vec::new();
        let mut activity = 0;
        let mut now = t1;
        while now < t1 + ACTIVITY_POSTPONE_AT_MOST * 3 {
            activity += 1;
            if c.poll(now, 0, activity, || false) {
                gave_back.push(now);
            }
            // The loop also wakes at the deadline it asked for, before the next request.
            if let Some(due) = c.deadline().filter(|due| *due < now + every) {
                if c.poll(due, 0, activity, || false) {
                    gave_back.push(due);
                }
            }
            now += every;
        }
        assert!(gave_back.len() >= 2, "{gave_back:?}");
        assert!(
            gave_back[0] <= t1 + ACTIVITY_POSTPONE_AT_MOST,
            "{:?} after the first request",
            gave_back[0] - t1
        );
        for pair in gave_back.windows(2) {
            assert!(pair[1] - pair[0] <= ACTIVITY_POSTPONE_AT_MOST + every);
        }
    }

    #[test]
    fn a_rescan_and_activity_together_wait_for_the_later() {
        let t0 = Instant::now();
        let mut c = CodePages::new(t0);
        assert!(c.poll(t0 + CODE_SETTLE, 0, 0, || false));
        let t1 = t0 + CODE_SETTLE * 30;
        assert!(!c.poll(t1, 1, 1, || false));
        assert_eq!(c.deadline(), Some(t1 + ACTIVITY_SETTLE));
        assert!(!c.poll(t1 + CODE_SETTLE, 1, 1, || false));
        assert!(c.poll(t1 + ACTIVITY_SETTLE, 1, 1, || false));
    }
}
