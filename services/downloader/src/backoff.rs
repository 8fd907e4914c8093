//! Retry delays: exponential from `base`, capped at `max`, with jitter so that many
//! devices (or many downloads) that failed together don't all come back together.
//! Pure: the random source is passed in, so the policy is tested without a clock.

use std::time::Duration;

/// The delay policy. `delay(n)` is for the n-th consecutive failure (0 = the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

/// The default cap: 5 minutes. Retries go on for as long as a request exists, through
/// outages of hours: at the cap a request costs one lookup and connect (for `.local`, an
/// mDNS burst on every bridge) every 2.5 to 5 minutes, about 15 an hour, instead of one
/// a minute; and a datastore that comes back is used again within 5 minutes, about
/// what an app VM or a datastore takes to restart anyway. From 1 s the delays reach the
/// cap after 9 failures (about 8 minutes in).
pub const DEFAULT_MAX: Duration = Duration::from_secs(300);

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            max: DEFAULT_MAX,
        }
    }
}

impl Backoff {
    /// `base * 2^failures`, capped at `max`, then "equal jitter": a random point in the
    /// upper half, so a delay never collapses to zero (AWS Architecture Blog, "Exponential
    /// Backoff And Jitter", 2015).
    pub fn delay(&self, failures: u32, rng: &mut XorShift) -> Duration {
        let full = self
            .base
            .checked_mul(1u32 << failures.min(20))
            .unwrap_or(self.max)
            .min(self.max);
        let half = full / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let extra = if nanos == 0 {
            0
        } else {
            rng.next_u64() % (nanos + 1)
        };
        half + Duration::from_nanos(extra)
    }
}

/// xorshift64* (Vigna, 2016): plenty for jitter, no dependency, never zero.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed | 1)
    }

    /// Seeded from the clock and the pid: two processes started in the same
    /// nanosecond still differ.
    pub fn from_entropy() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        XorShift::new(nanos ^ (u64::from(std::process::id()) << 32))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps_and_stays_in_the_upper_half() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let mut rng = XorShift::new(7);
        for (n, full_ms) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1000),
            (40, 1000),
        ] {
            for _ in 0..100 {
                let d = b.delay(n, &mut rng);
                let full = Duration::from_millis(full_ms);
                assert!(
                    d >= full / 2 && d <= full,
                    "failure {n}: {d:?} not in [{full:?}/2, {full:?}]"
                );
            }
        }
    }

    #[test]
    fn jitter_varies() {
        let b = Backoff::default();
        let mut rng = XorShift::new(1);
        let a: Vec<_> = (0..10).map(|_| b.delay(3, &mut rng)).collect();
        assert!(a.windows(2).any(|w| w[0] != w[1]));
    }
}
