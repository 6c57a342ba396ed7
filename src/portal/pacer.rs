//! The client-side request pacer: a token bucket that mirrors the portal's leaky bucket.

use std::time::{Duration, Instant};

/// Lets requests through at the portal's drain rate once its burst allowance is spent, so the
/// portal never has to refuse one. Pure: callers pass the time, which keeps it testable without
/// sleeping.
#[derive(Clone, Debug)]
pub struct Pacer {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl Pacer {
    /// `rate` requests per second after a burst of `burst` (the cloud: 2 and 50; Enterprise: 5
    /// and 250). A non-positive rate turns pacing off.
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Pacer {
            rate,
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Takes one request slot at `now` and says how long to wait before sending it.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        if self.rate <= 0.0 || !self.rate.is_finite() {
            return Duration::ZERO;
        }
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        }
        self.last = Some(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    /// The portal said it is over its limit: our picture of the bucket was too optimistic.
    pub fn drain(&mut self) {
        self.tokens = self.tokens.min(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_passes_then_paces_at_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(2.0, 3);
        assert_eq!(p.reserve(t0), Duration::ZERO);
        assert_eq!(p.reserve(t0), Duration::ZERO);
        assert_eq!(p.reserve(t0), Duration::ZERO);
        assert_eq!(p.reserve(t0), Duration::from_millis(500));
        assert_eq!(p.reserve(t0), Duration::from_millis(1000));
        // After waiting, the bucket has refilled at 2/s.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(p.reserve(later), Duration::ZERO);
    }

    #[test]
    fn refill_never_exceeds_burst() {
        let t0 = Instant::now();
        let mut p = Pacer::new(5.0, 2);
        p.reserve(t0);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(p.reserve(later), Duration::ZERO);
        assert_eq!(p.reserve(later), Duration::ZERO);
        assert!(p.reserve(later) > Duration::ZERO);
    }

    #[test]
    fn zero_rate_means_no_pacing() {
        let mut p = Pacer::new(0.0, 1);
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(p.reserve(t0), Duration::ZERO);
        }
    }

    #[test]
    fn drain_forces_a_wait() {
        let t0 = Instant::now();
        let mut p = Pacer::new(2.0, 50);
        p.drain();
        assert_eq!(p.reserve(t0), Duration::from_millis(500));
    }
}
