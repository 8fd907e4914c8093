//! Which answer to take, as a pure function of what has been heard so far.
//!
//! Methods run together; the answer is taken by preference (A query > _workstation >
//! _http > _https, or the configured order) as soon as no better method can still
//! answer. Among bridges answering the same method: the one whose network instance
//! confirms the host at that address first (a lease, a reservation or a `hosts` entry:
//! `confirm`), then network-instance order; all are kept for failover. Addresses set
//! aside (they failed this download before) come last.
//!
//! When the best method has answered on one bridge, the others are waited for only as
//! long as needed to settle the rare same-name-on-two-bridges case: not at all when the
//! instance confirms the answer, otherwise until each bridge has answered or given up,
//! or the settle window after that first answer is over (`Heard::settled`; responders
//! answer a unique record at once, RFC 6762 §6, so a second bridge's answer comes within
//! milliseconds or not at all).

use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// A direct mDNS A query for the host (legacy unicast, answered at once).
    AQuery,
    Workstation,
    Http,
    Https,
}

impl Method {
    pub const ALL: [Method; 4] = [
        Method::AQuery,
        Method::Workstation,
        Method::Http,
        Method::Https,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::AQuery => "a-query",
            Method::Workstation => "workstation",
            Method::Http => "http",
            Method::Https => "https",
        }
    }

    pub fn parse(text: &str) -> Result<Method, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == text.trim())
            .ok_or_else(|| format!("unknown method {text:?} (a-query, workstation, http, https)"))
    }

    /// The DNS-SD service type browsed, if this is a browse.
    pub fn service_type(self) -> Option<&'static str> {
        match self {
            Method::AQuery => None,
            Method::Workstation => Some("_workstation._tcp.local."),
            Method::Http => Some("_http._tcp.local."),
            Method::Https => Some("_https._tcp.local."),
        }
    }
}

/// What has been heard: answers, and which (method, bridge) pairs can say no more.
#[derive(Debug, Clone, Default)]
pub struct Heard {
    /// (method, bridge index, address), in arrival order.
    pub answers: Vec<(Method, usize, Ipv4Addr)>,
    /// (method, bridge index) that finished without more to say.
    pub finished: Vec<(Method, usize)>,
    /// The total budget ran out: everything is finished.
    pub out_of_time: bool,
    /// Methods whose settle window, started by their first usable answer, is over: the
    /// bridges that have not answered them by then are not waited for any more.
    pub settled: Vec<Method>,
    /// (bridge index, address) that failed this download's earlier attempts (refused
    /// connections, or answered with something that failed the download): set aside
    /// while another answer may still come, on this bridge or another; taken only if
    /// nothing else answers (the server there may be back, or fixed).
    pub set_aside: Vec<(usize, Ipv4Addr)>,
}

impl Heard {
    /// Whether `bridge` can say no more for `method`: it finished, time is up, or it
    /// gave a usable answer (one set aside does not count: another may follow).
    fn finished(&self, method: Method, bridge: usize) -> bool {
        self.out_of_time
            || self.finished.contains(&(method, bridge))
            || self.answers.iter().any(|(m, b, ip)| {
                *m == method && *b == bridge && !self.set_aside.contains(&(*b, *ip))
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Wait,
    /// Candidates, best first: (bridge index, address).
    Take {
        method: Method,
        candidates: Vec<(usize, Ipv4Addr)>,
        why: Why,
    },
    NotFound,
}

/// Why an answer was taken when it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Why {
    /// Every bridge has answered this method or can say no more (given up, out of time),
    /// and no better method can still answer.
    AllHeard,
    /// The network instance confirms an answer (`confirm`): taken at once.
    Confirmed,
    /// The settle window after the first answer is over; bridges still silent then
    /// are not waited for.
    SettleWindow,
}

/// `methods` in preference order; `bridges` is the number of bridges (network-instance
/// order); `confirmed(bridge, ip)` says whether that bridge's network instance confirms
/// `ip` as the host (a lease, reservation or `hosts` entry of that name: `confirm`).
pub fn decide(
    methods: &[Method],
    bridges: usize,
    heard: &Heard,
    confirmed: impl Fn(usize, Ipv4Addr) -> bool,
) -> Decision {
    for (i, &method) in methods.iter().enumerate() {
        let (usable, set_aside) = answers_for(heard, method);
        let all_finished = (0..bridges).all(|b| heard.finished(method, b));
        if usable.is_empty() {
            if !all_finished {
                // A better method, or another bridge, may still answer.
                return Decision::Wait;
            }
            if set_aside.is_empty() {
                continue;
            }
            // Every bridge has finished this method, with only addresses set aside. A
            // worse method that has already found a usable one wins; otherwise those set
            // aside after all (a server may be back), by the same order.
            for &later in &methods[i + 1..] {
                let (usable, also_set_aside) = answers_for(heard, later);
                if !usable.is_empty() {
                    return take(later, usable, also_set_aside, Why::AllHeard, &confirmed);
                }
            }
            return take(method, set_aside, Vec::new(), Why::AllHeard, &confirmed);
        }
        // Take at once if the instance confirms one; otherwise let the other bridges
        // finish this method, within the settle window, so the confirmation and order
        // rules can choose among them.
        let why = if usable.iter().any(|(b, ip)| confirmed(*b, *ip)) {
            Why::Confirmed
        } else if all_finished {
            Why::AllHeard
        } else if heard.settled.contains(&method) {
            Why::SettleWindow
        } else {
            return Decision::Wait;
        };
        return take(method, usable, set_aside, why, &confirmed);
    }
    Decision::NotFound
}

/// Takes `method`'s answers: `usable` first, then `set_aside` (tried if every usable one
/// fails to connect), each confirmed first, then by network-instance order.
fn take(
    method: Method,
    mut usable: Addresses,
    mut set_aside: Addresses,
    why: Why,
    confirmed: &impl Fn(usize, Ipv4Addr) -> bool,
) -> Decision {
    for list in [&mut usable, &mut set_aside] {
        list.sort_by_key(|(b, ip)| (!confirmed(*b, *ip), *b));
    }
    usable.extend(set_aside);
    Decision::Take {
        method,
        candidates: usable,
        why,
    }
}

/// Whether `ip`, heard for `method` on `bridge`, is the first usable answer for that
/// method (one not set aside): the moment its settle window starts.
pub fn starts_settling(heard: &Heard, method: Method, bridge: usize, ip: Ipv4Addr) -> bool {
    !heard.set_aside.contains(&(bridge, ip))
        && !heard
            .answers
            .iter()
            .any(|(m, b, a)| *m == method && !heard.set_aside.contains(&(*b, *a)))
}

/// (bridge index, address) pairs, best first once ordered.
type Addresses = Vec<(usize, Ipv4Addr)>;

/// `method`'s answers, one address per bridge in arrival order: (usable, set aside).
fn answers_for(heard: &Heard, method: Method) -> (Addresses, Addresses) {
    let mut usable: Addresses = Vec::new();
    let mut set_aside: Addresses = Vec::new();
    for (m, b, ip) in &heard.answers {
        let list = if heard.set_aside.contains(&(*b, *ip)) {
            &mut set_aside
        } else {
            &mut usable
        };
        if *m == method && !list.iter().any(|(cb, _)| cb == b) {
            list.push((*b, *ip));
        }
    }
    (usable, set_aside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Method::*;
    use Why::*;

    const ALL: [Method; 4] = Method::ALL;
    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 1, 0, last)
    }
    fn no_lease(_: usize, _: Ipv4Addr) -> bool {
        false
    }

    #[test]
    fn a_better_method_that_may_still_answer_is_waited_for() {
        let heard = Heard {
            answers: vec![(Workstation, 0, ip(5))],
            ..Default::default()
        };
        assert_eq!(decide(&ALL, 1, &heard, no_lease), Decision::Wait);
        let heard = Heard {
            finished: vec![(AQuery, 0)],
            ..heard
        };
        assert_eq!(
            decide(&ALL, 1, &heard, no_lease),
            Decision::Take {
                method: Workstation,
                candidates: vec![(0, ip(5))],
                why: AllHeard,
            }
        );
    }

    #[test]
    fn the_best_method_is_taken_at_once() {
        let heard = Heard {
            answers: vec![(AQuery, 0, ip(5))],
            ..Default::default()
        };
        assert_eq!(
            decide(&ALL, 1, &heard, no_lease),
            Decision::Take {
                method: AQuery,
                candidates: vec![(0, ip(5))],
                why: AllHeard,
            }
        );
    }

    #[test]
    fn a_method_alone_needs_no_waiting_for_others() {
        let heard = Heard {
            answers: vec![(Https, 0, ip(9))],
            ..Default::default()
        };
        assert_eq!(
            decide(&[Https], 1, &heard, no_lease),
            Decision::Take {
                method: Https,
                candidates: vec![(0, ip(9))],
                why: AllHeard,
            }
        );
    }

    #[test]
    fn nothing_heard_until_the_budget_runs_out_is_not_found() {
        let heard = Heard::default();
        assert_eq!(decide(&ALL, 2, &heard, no_lease), Decision::Wait);
        let heard = Heard {
            out_of_time: true,
            ..heard
        };
        assert_eq!(decide(&ALL, 2, &heard, no_lease), Decision::NotFound);
    }

    #[test]
    fn two_bridges_answering_prefer_the_lease_then_instance_order() {
        let both = Heard {
            answers: vec![(AQuery, 1, ip(7)), (AQuery, 0, ip(5))],
            ..Default::default()
        };
        assert_eq!(
            decide(&ALL, 2, &both, no_lease),
            Decision::Take {
                method: AQuery,
                candidates: vec![(0, ip(5)), (1, ip(7))],
                why: AllHeard,
            }
        );
        let leased_on_1 = |b: usize, _| b == 1;
        assert_eq!(
            decide(&ALL, 2, &both, leased_on_1),
            Decision::Take {
                method: AQuery,
                candidates: vec![(1, ip(7)), (0, ip(5))],
                why: Confirmed,
            }
        );
        // One bridge answered, the other may still: wait, unless a lease confirms it.
        let one = Heard {
            answers: vec![(AQuery, 0, ip(5))],
            ..Default::default()
        };
        assert_eq!(decide(&ALL, 2, &one, no_lease), Decision::Wait);
        assert_eq!(
            decide(&ALL, 2, &one, |b, _| b == 0),
            Decision::Take {
                method: AQuery,
                candidates: vec![(0, ip(5))],
                why: Confirmed,
            }
        );
    }

    #[test]
    fn an_address_set_aside_waits_for_the_other_bridges_and_is_the_last_resort() {
        let bad = (1, ip(7));
        let mut heard = Heard {
            answers: vec![(AQuery, 1, ip(7))],
            set_aside: vec![bad],
            ..Heard::default()
        };
        let leased_on_1 = |b: usize, _: Ipv4Addr| b == 1;
        // Leased, but set aside: no taking at once; bridge 0 may still answer.
        assert_eq!(decide(&[AQuery], 2, &heard, leased_on_1), Decision::Wait);
        heard.answers.push((AQuery, 0, ip(5)));
        // Bridge 1 may still give another address than the one set aside.
        assert_eq!(decide(&[AQuery], 2, &heard, leased_on_1), Decision::Wait);
        heard.finished.push((AQuery, 1));
        assert_eq!(
            decide(&[AQuery], 2, &heard, leased_on_1),
            Decision::Take {
                method: AQuery,
                candidates: vec![(0, ip(5)), (1, ip(7))],
                why: AllHeard,
            },
            "the one set aside last, in case the other fails too"
        );
        // Nobody else answers: the address set aside after all.
        let alone = Heard {
            answers: vec![(AQuery, 1, ip(7))],
            finished: vec![(AQuery, 0), (AQuery, 1)],
            set_aside: vec![bad],
            ..Heard::default()
        };
        assert_eq!(
            decide(&[AQuery], 2, &alone, leased_on_1),
            Decision::Take {
                method: AQuery,
                candidates: vec![(1, ip(7))],
                why: AllHeard,
            }
        );
        // One bridge: its A query may still give another address; once it is finished,
        // the one set aside, with no wait for the browses.
        let mut single = Heard {
            answers: vec![(AQuery, 0, ip(5))],
            set_aside: vec![(0, ip(5))],
            ..Heard::default()
        };
        assert_eq!(decide(&ALL, 1, &single, no_lease), Decision::Wait);
        single.finished.push((AQuery, 0));
        assert_eq!(
            decide(&ALL, 1, &single, no_lease),
            Decision::Take {
                method: AQuery,
                candidates: vec![(0, ip(5))],
                why: AllHeard,
            }
        );
        // Only answers set aside for the best method, but a worse one already found a
        // usable address on the other bridge: that one.
        let worse = Heard {
            answers: vec![(AQuery, 1, ip(7)), (Workstation, 0, ip(5))],
            finished: vec![(AQuery, 0), (AQuery, 1)],
            set_aside: vec![bad],
            ..Heard::default()
        };
        assert_eq!(
            decide(&ALL, 2, &worse, leased_on_1),
            Decision::Take {
                method: Workstation,
                candidates: vec![(0, ip(5))],
                why: AllHeard,
            }
        );
    }

    #[test]
    fn another_address_on_the_same_bridge_beats_the_one_set_aside() {
        // An impostor answered first and failed the download; the app answers next.
        let mut heard = Heard {
            answers: vec![(AQuery, 0, ip(9))],
            set_aside: vec![(0, ip(9))],
            ..Heard::default()
        };
        assert_eq!(decide(&[AQuery], 1, &heard, no_lease), Decision::Wait);
        heard.answers.push((AQuery, 0, ip(5)));
        assert_eq!(
            decide(&[AQuery], 1, &heard, no_lease),
            Decision::Take {
                method: AQuery,
                candidates: vec![(0, ip(5)), (0, ip(9))],
                why: AllHeard,
            }
        );
    }
    #[test]
    fn the_settle_window_ends_the_wait_for_silent_bridges() {
        // Bridge 0 answered; bridge 1 neither answered nor gave up yet.
        let mut heard = Heard {
            answers: vec![(AQuery, 0, ip(5))],
            ..Heard::default()
        };
        assert_eq!(decide(&ALL, 2, &heard, no_lease), Decision::Wait);
        // Another method's window changes nothing for this one.
        heard.settled.push(Workstation);
        assert_eq!(decide(&ALL, 2, &heard, no_lease), Decision::Wait);
        heard.settled.push(AQuery);
        assert_eq!(
            decide(&ALL, 2, &heard, no_lease),
            Decision::Take {
                method: AQuery,
                candidates: vec![(0, ip(5))],
                why: SettleWindow,
            }
        );
        // What came within the window is kept, by instance order, for failover.
        heard.answers.push((AQuery, 1, ip(7)));
        heard.answers.swap(0, 1);
        let mut later = heard.clone();
        later.settled.clear();
        assert_eq!(
            decide(&ALL, 2, &later, no_lease),
            Decision::Take {
                method: AQuery,
                candidates: vec![(0, ip(5)), (1, ip(7))],
                why: AllHeard,
            }
        );
    }

    #[test]
    fn a_window_starts_with_the_first_usable_answer_only() {
        let mut heard = Heard {
            set_aside: vec![(0, ip(9))],
            ..Heard::default()
        };
        assert!(
            !starts_settling(&heard, AQuery, 0, ip(9)),
            "an answer set aside starts no window: another may follow"
        );
        heard.answers.push((AQuery, 0, ip(9)));
        assert!(starts_settling(&heard, AQuery, 1, ip(7)));
        heard.answers.push((AQuery, 1, ip(7)));
        assert!(
            !starts_settling(&heard, AQuery, 0, ip(5)),
            "already started"
        );
        assert!(starts_settling(&heard, Workstation, 0, ip(5)), "per method");
    }
}
