//! A token bucket: at most `rate_per_second` on average, in bursts of at most `burst`. The
//! sender replays a spooled backlog through one (after an outage, no faster than the replay
//! rate); the masters' Events sender keeps its events-per-second budget with one.
//!
//! Pure: the caller passes the current [`Instant`], so tests need no clock.

use std::time::{Duration, Instant};

/// Admits up to `rate_per_second` records per second on average.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_second: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket (`burst` tokens) refilled at `rate_per_second`; both are at least 1.
    pub fn new(rate_per_second: u32, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate_per_second: f64::from(rate_per_second.max(1)),
            burst,
            tokens: burst,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate_per_second).min(self.burst);
        self.updated = self.updated.max(now);
    }

    /// Takes as many whole tokens as are available, up to `wanted`, and returns how many.
    pub fn take_up_to(&mut self, wanted: u32, now: Instant) -> u32 {
        self.refill(now);
        let granted = self.tokens.floor().min(f64::from(wanted)) as u32;
        self.tokens -= f64::from(granted);
        granted
    }

    /// How long until `wanted` tokens (capped at the burst size) are available.
    pub fn wait_time(&mut self, wanted: u32, now: Instant) -> Duration {
        self.refill(now);
        let missing = f64::from(wanted).min(self.burst) - self.tokens;
        Duration::from_secs_f64((missing / self.rate_per_second).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_admits_more_than_burst_plus_rate_times_elapsed() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100, 10, start);
        assert_eq!(bucket.take_up_to(50, start), 10);
        assert_eq!(bucket.take_up_to(50, start), 0);
        let mut admitted = 0;
        for tick in 1..=1000 {
            admitted += bucket.take_up_to(7, start + Duration::from_millis(tick * 3));
        }
        // 3 s at 100/s, give or take the fraction of a token still in the bucket.
        assert!((299..=300).contains(&admitted), "admitted {admitted}");
    }

    #[test]
    fn idle_time_refills_only_up_to_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(5, 3, start);
        assert_eq!(bucket.take_up_to(3, start), 3);
        assert_eq!(bucket.take_up_to(100, start + Duration::from_secs(3600)), 3);
    }

    #[test]
    fn wait_time_says_when_tokens_are_back() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 10, start);
        assert_eq!(bucket.wait_time(5, start), Duration::ZERO);
        bucket.take_up_to(10, start);
        assert_eq!(bucket.wait_time(5, start), Duration::from_millis(500));
        let later = start + Duration::from_millis(500);
        assert_eq!(bucket.take_up_to(5, later), 5);
        // A request above the burst waits only for a full bucket, never forever.
        assert_eq!(bucket.wait_time(1000, later), Duration::from_secs(1));
    }
}
