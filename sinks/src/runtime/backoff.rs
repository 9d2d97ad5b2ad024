//! Capped exponential backoff with full jitter, and a log line that is not repeated too often.

use crate::config::RetryConfig;
use rand::Rng;
use std::time::{Duration, Instant};

/// The pause before try number `attempt + 1` (`attempt` starts at 1 after the first failure):
/// a random duration in `[cap/2, cap]` where `cap = min(max, initial * 2^(attempt-1))`.
pub fn backoff(config: &RetryConfig, attempt: u32) -> Duration {
    let cap = ceiling(config, attempt);
    let half = cap / 2;
    let jitter = rand::rng().random_range(0..=cap - half);
    Duration::from_millis(half + jitter)
}

/// The upper bound of [`backoff`] for `attempt`, in milliseconds.
pub fn ceiling(config: &RetryConfig, attempt: u32) -> u64 {
    let shift = attempt.saturating_sub(1).min(32);
    config
        .initial_backoff_ms
        .saturating_mul(1u64 << shift)
        .min(config.max_backoff_ms)
        .max(1)
}

/// Lets one line through per `every`, counting the ones held back.
#[derive(Debug)]
pub struct RateLimit {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    pub fn new(every: Duration) -> Self {
        RateLimit {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were held back since the last.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_stays_within_it() {
        let c = RetryConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
            max_retries: None,
        };
        let ceilings: Vec<u64> = (1..=6).map(|a| ceiling(&c, a)).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(ceiling(&c, u32::MAX), 1_000);
        for attempt in 1..=10 {
            for _ in 0..50 {
                let d = backoff(&c, attempt).as_millis() as u64;
                let cap = ceiling(&c, attempt);
                assert!(
                    d >= cap / 2 && d <= cap,
                    "{attempt}: {d} not in [{}, {cap}]",
                    cap / 2
                );
            }
        }
    }

    #[test]
    fn rate_limit_counts_what_it_holds_back() {
        let mut r = RateLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(r.allow(t0), Some(0));
        assert_eq!(r.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(r.allow(t0 + Duration::from_secs(2)), None);
        assert_eq!(r.allow(t0 + Duration::from_secs(11)), Some(2));
    }
}
