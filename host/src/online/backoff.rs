//! Jittered exponential backoff between compare-and-set rounds that lost to other writers,
//! bounded by a deadline rather than a count: contention is waited out, never reported as
//! an outage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The longest first wait; each later round may wait twice as long, up to [`LONGEST`] (or a
/// quarter of the budget, if less).
const FIRST: Duration = Duration::from_millis(1);
const LONGEST: Duration = Duration::from_millis(50);
/// Tokio's timers fire on millisecond ticks: a sleep may end up to this much late.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// Retries of one read-modify-write until `deadline`.
#[derive(Debug)]
pub(super) struct Backoff {
    deadline: Instant,
    cap: Duration,
    round: u32,
}

impl Backoff {
    /// Rounds until `budget` from now.
    pub fn new(budget: Duration) -> Self {
        Self {
            deadline: Instant::now() + budget,
            cap: (budget / 4).clamp(FIRST, LONGEST),
            round: 0,
        }
    }

    /// Waits a random time up to the round's bound ("full jitter": writers that collided
    /// spread out instead of colliding again) and returns true; false, without waiting, when
    /// the wait would end past the deadline.
    pub async fn wait(&mut self) -> bool {
        let bound = FIRST.saturating_mul(1 << self.round.min(16)).min(self.cap);
        self.round += 1;
        let pause = bound.mul_f64(unit_random());
        if Instant::now() + pause + TIMER_RESOLUTION >= self.deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
        true
    }
}

/// A number in [0, 1), different on every call in the process: a SplitMix64 step over a
/// shared counter, seeded by the clock, so concurrent writers draw different waits.
fn unit_random() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut seed = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    if seed == 0 {
        seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        STATE.fetch_add(seed, Ordering::Relaxed);
    }
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ_and_stay_in_the_unit_interval() {
        let draws: Vec<f64> = (0..1000).map(|_| unit_random()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let mut distinct = draws.clone();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        assert_eq!(distinct.len(), draws.len());
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }

    /// On a paused clock (sleeps advance virtual time), so a busy machine cannot stretch it.
    #[tokio::test(start_paused = true)]
    async fn waits_grow_and_stop_at_the_deadline() {
        let budget = Duration::from_millis(60);
        let started = Instant::now();
        let mut backoff = Backoff::new(budget);
        let mut rounds = 0;
        while backoff.wait().await {
            rounds += 1;
            assert!(rounds < 10_000, "never stops");
        }
        let took = started.elapsed();
        assert!(took < budget, "{took:?}");
        // Bounds of 1, 2, 4, 8 and then 15 ms: a handful of rounds, not thousands.
        assert!((3..200).contains(&rounds), "{rounds} rounds");
    }
}
