//! The per-source request rate limit: a token bucket per identity source. Beyond it the answer
//! is 429 with an integer `Retry-After` (seconds), which Okta and Entra ID honour.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Token buckets, one per source.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_second == 0` disables the limit.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request's token for `source`; `Err(seconds)` to wait when none is left.
    pub fn take(&self, source: &str) -> Result<(), u64> {
        self.take_at(source, Instant::now())
    }

    fn take_at(&self, source: &str, now: Instant) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let (tokens, last) = buckets
            .entry(source.to_owned())
            .or_insert((self.burst, now));
        let refilled =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            Err(((1.0 - refilled) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_waits_and_refills() {
        let l = RateLimiter::new(2, 3);
        let t0 = Instant::now();
        assert!((0..3).all(|_| l.take_at("okta", t0).is_ok()));
        assert_eq!(l.take_at("okta", t0), Err(1));
        assert!(
            l.take_at("entra", t0).is_ok(),
            "sources are limited separately"
        );
        assert!(l.take_at("okta", t0 + Duration::from_millis(600)).is_ok());
        assert!(RateLimiter::new(0, 0).take("x").is_ok());
    }
}
