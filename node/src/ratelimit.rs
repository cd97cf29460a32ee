//! A token bucket, as client-go's QPS and burst: `burst` requests may go at
//! once, then `qps` a second. A caller reserves its token at once and
//! waits until the bucket would have held it, so waiters go in the order
//! they came and none is woken for nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// A shared token bucket; clones share the tokens.
#[derive(Clone)]
pub struct TokenBucket {
    inner: Arc<Mutex<Bucket>>,
}

struct Bucket {
    qps: f64,
    burst: f64,
    /// Tokens at `at`; negative when callers hold reservations.
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() * self.qps;
        self.tokens = (self.tokens + gained).min(self.burst);
        self.at = now;
    }
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `qps` a second. A `qps`
    /// of zero or less means no limit.
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            inner: Arc::new(Mutex::new(Bucket {
                qps,
                burst,
                tokens: burst,
                at: Instant::now(),
            })),
        }
    }

    /// Reserves a token and returns how long to wait before using it.
    fn reserve(&self) -> Duration {
        let mut b = self.inner.lock().expect("token bucket lock");
        if b.qps <= 0.0 {
            return Duration::ZERO;
        }
        b.refill(Instant::now());
        b.tokens -= 1.0;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / b.qps)
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_qps_paces() {
        let bucket = TokenBucket::new(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            bucket.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        for _ in 0..10 {
            bucket.acquire().await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(999) && took <= Duration::from_millis(1001),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_are_spread_over_time() {
        let bucket = TokenBucket::new(100.0, 1);
        let start = Instant::now();
        let waits: Vec<_> = (0..50)
            .map(|_| {
                let b = bucket.clone();
                tokio::spawn(async move {
                    b.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        let mut last = start;
        for w in waits {
            last = last.max(w.await.unwrap());
        }
        let took = last - start;
        assert!(took >= Duration::from_millis(489), "{took:?}");
        assert!(took <= Duration::from_millis(500), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn zero_qps_is_unlimited() {
        let bucket = TokenBucket::new(0.0, 1);
        let start = Instant::now();
        for _ in 0..1000 {
            bucket.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
