//! Exponential backoff with full jitter, for retrying upstreams without a thundering herd.

use std::time::Duration;

/// Delay before the next retry: grows exponentially with each failure, capped, jittered.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    /// Starts at `base`, never exceeds `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: 0,
            rng: fastrand::Rng::new(),
        }
    }

    /// A backoff with a fixed seed, for tests.
    pub fn seeded(base: Duration, max: Duration, seed: u64) -> Self {
        Self {
            base,
            max,
            failures: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// Records a failure and returns how long to wait: uniform in `[ceiling/2, ceiling]`
    /// where the ceiling is `base * 2^failures`, capped at `max`.
    pub fn next_delay(&mut self) -> Duration {
        let exponent = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let ceiling = self.base.saturating_mul(1 << exponent).min(self.max);
        let half = ceiling / 2;
        let jitter = self.rng.u64(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter)
    }

    /// Records a success: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_reset() {
        let mut b = Backoff::seeded(Duration::from_millis(100), Duration::from_secs(5), 7);
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        assert!(delays[3] >= Duration::from_millis(400) && delays[3] <= Duration::from_millis(800));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(5)));
        assert!(delays[9] >= Duration::from_millis(2500));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
