//! What the control socket lets its clients hold, and the pure decisions made with it.
//!
//! The aim: whatever the other clients do (follow logs, wait for states, never read),
//! a `health` or `status` request gets in and is answered, and PID 1's memory for all
//! clients together stays bounded.

use zedctr_proto::protocol::Verb;

/// Clients served at once in the ordinary slots.
pub const MAX_CLIENTS: usize = 64;
/// Extra slots used only when every ordinary slot is taken: they serve `health` and
/// `status` (zedwatchdog's check, an operator's look) and nothing else.
pub const RESERVED_CLIENTS: usize = 8;
/// Log followers and waiters (`logs -f`, `wait_ms`) at once, so that some ordinary
/// slots stay free for short requests (dnsmasq-render's `rescan`, `start`).
pub const MAX_LONG_LIVED: usize = 48;
/// Log followers and waiters at once from one client process.
pub const MAX_LONG_LIVED_PER_PEER: usize = 8;
/// A client's next request is served (and a follower gets new lines) only while less
/// than this much of its output waits; so one client holds at most this plus one answer.
pub const CLIENT_OUTPUT_LIMIT: usize = 256 * 1024;
/// Output held for all clients together. Past it, the clients holding the most are
/// dropped until the rest fit (followers lose lines instead of growing past it).
pub const OUTPUT_BUDGET: usize = 8 * 1024 * 1024;
/// Bytes of received requests queued per client before reading pauses.
pub const MAX_QUEUED_BYTES: usize = 128 * 1024;

/// The verbs a reserved slot serves: they answer at once and never follow or wait.
pub fn reserved_may_ask(verb: Option<Verb>) -> bool {
    matches!(verb, Some(Verb::Health | Verb::Status))
}

/// Why one more follower or waiter is refused, if it is: `total` are there now, `of_peer`
/// of them from the asking process.
pub fn long_lived_refusal(total: usize, of_peer: usize) -> Option<String> {
    if total >= MAX_LONG_LIVED {
        Some(format!(
            "too many clients follow logs or wait for a state ({MAX_LONG_LIVED} at most); try again later"
        ))
    } else if of_peer >= MAX_LONG_LIVED_PER_PEER {
        Some(format!(
            "this process already follows logs or waits on {MAX_LONG_LIVED_PER_PEER} connections; try again later"
        ))
    } else {
        None
    }
}

/// The clients to drop so that the output held for the rest fits `budget`: those
/// holding the most first (the worst non-readers), the older on a tie. `held` is
/// (token, bytes); tokens grow with age.
pub fn over_budget(held: &[(u64, usize)], budget: usize) -> Vec<u64> {
    let mut total: usize = held.iter().map(|(_, bytes)| bytes).sum();
    if total <= budget {
        return Vec::new();
    }
    let mut largest_first = held.to_vec();
    largest_first.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut dropped = Vec::new();
    for (token, bytes) in largest_first {
        if total <= budget {
            break;
        }
        total -= bytes;
        dropped.push(token);
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_the_budget_nobody_is_dropped() {
        assert!(over_budget(&[], 10).is_empty());
        assert!(over_budget(&[(1, 4), (2, 6)], 10).is_empty());
    }

    #[test]
    fn over_the_budget_the_largest_go_first_until_the_rest_fit() {
        let held = [(1, 3), (2, 9), (3, 5), (4, 1)];
        assert_eq!(over_budget(&held, 10), vec![2], "18 - 9 = 9 fits");
        assert_eq!(over_budget(&held, 4), vec![2, 3], "18 - 9 - 5 = 4 fits");
        assert_eq!(over_budget(&held, 3), vec![2, 3, 1]);
        assert_eq!(over_budget(&held, 0), vec![2, 3, 1, 4]);
    }

    #[test]
    fn on_a_tie_the_older_client_goes() {
        assert_eq!(over_budget(&[(7, 5), (3, 5), (9, 5)], 12), vec![3]);
    }

    #[test]
    fn empty_clients_are_never_dropped_for_the_budget() {
        assert_eq!(over_budget(&[(1, 0), (2, 11), (3, 0)], 10), vec![2]);
    }

    #[test]
    fn followers_and_waiters_are_capped_overall_and_per_process() {
        assert_eq!(long_lived_refusal(0, 0), None);
        assert_eq!(long_lived_refusal(MAX_LONG_LIVED - 1, 0), None);
        assert!(
            long_lived_refusal(MAX_LONG_LIVED, 0)
                .is_some_and(|m| m.contains(&MAX_LONG_LIVED.to_string()))
        );
        assert_eq!(long_lived_refusal(10, MAX_LONG_LIVED_PER_PEER - 1), None);
        assert!(
            long_lived_refusal(10, MAX_LONG_LIVED_PER_PEER)
                .is_some_and(|m| m.contains("this process"))
        );
    }

    #[test]
    fn reserved_slots_serve_only_health_and_status() {
        assert!(reserved_may_ask(Some(Verb::Health)));
        assert!(reserved_may_ask(Some(Verb::Status)));
        for verb in Verb::ALL {
            let reserved = matches!(verb, Verb::Health | Verb::Status);
            assert_eq!(reserved_may_ask(Some(verb)), reserved, "{verb}");
        }
        assert!(!reserved_may_ask(None), "an unknown verb");
    }

    #[test]
    fn the_limits_leave_room_for_short_requests() {
        // Followers and waiters can never take every ordinary slot; a whole budget is
        // many clients' worth of output.
        const { assert!(MAX_LONG_LIVED < MAX_CLIENTS) };
        const { assert!(MAX_LONG_LIVED_PER_PEER <= MAX_LONG_LIVED) };
        const { assert!(OUTPUT_BUDGET >= 8 * CLIENT_OUTPUT_LIMIT) };
        const { assert!(MAX_QUEUED_BYTES >= zedctr_proto::protocol::MAX_REQUEST_BYTES) };
    }
}
