//! A token bucket, as client-go's QPS and burst: `burst` requests may go at
//! once, then `qps` a second. A caller reserves its token at once and
//! waits until the bucket would have held it, so waiters go in the order
//! they came and none is woken for nothing. And [`Quiet`], which lets a
//! warning that may repeat thousands of times a second through once in a
//! while, with the count of those held back.

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

/// A warning let through at most once per period; the others are counted.
pub(crate) struct Quiet {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Quiet {
    pub const fn new(every: Duration) -> Self {
        Self {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// Whether to log this one: `Some(n)` with the `n` held back since the
    /// last one logged, or `None` to stay quiet.
    pub fn pass(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if s.0
            .is_some_and(|t| now.saturating_duration_since(t) < self.every)
        {
            s.1 += 1;
            return None;
        }
        s.0 = Some(now);
        Some(std::mem::take(&mut s.1))
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

    #[tokio::test(start_paused = true)]
    async fn a_repeated_warning_passes_once_a_period_with_the_count_held_back() {
        let quiet = Quiet::new(Duration::from_secs(10));
        assert_eq!(quiet.pass(), Some(0));
        assert_eq!(quiet.pass(), None);
        assert_eq!(quiet.pass(), None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(quiet.pass(), Some(2));
        assert_eq!(quiet.pass(), None);
    }
}
