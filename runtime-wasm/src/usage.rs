//! What a container's instances use, counted as they run: CPU as the time
//! spent polling their futures (a guest runs only inside a poll, and a
//! poll is all guest work or the host calls it makes), memory as the
//! linear memories they hold now. Every instance of one container (its
//! command, each HTTP request's instance, commands run in it) adds to the
//! same [`Usage`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One container's running total.
#[derive(Debug, Default)]
pub struct Usage {
    cpu_nanos: AtomicU64,
    memory: AtomicUsize,
    instances: AtomicUsize,
}

impl Usage {
    /// CPU time its instances have used.
    pub fn cpu(&self) -> Duration {
        Duration::from_nanos(self.cpu_nanos.load(Ordering::Relaxed))
    }

    /// Bytes of linear memory its instances hold now.
    pub fn memory(&self) -> usize {
        self.memory.load(Ordering::Relaxed)
    }

    /// Instances running now.
    pub fn instances(&self) -> usize {
        self.instances.load(Ordering::Relaxed)
    }

    pub(crate) fn grew(&self, bytes: usize) {
        self.memory.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn shrank(&self, bytes: usize) {
        self.memory.fetch_sub(bytes, Ordering::Relaxed);
    }

    fn ran(&self, d: Duration) {
        let n = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.cpu_nanos.fetch_add(n, Ordering::Relaxed);
    }
}

/// Runs `f`, counting the time each poll of it takes (and the instance
/// while it runs) against `usage`.
pub(crate) async fn metered<F: Future>(usage: Option<std::sync::Arc<Usage>>, f: F) -> F::Output {
    let Some(usage) = usage else { return f.await };
    struct Running<'a>(&'a Usage);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            self.0.instances.fetch_sub(1, Ordering::Relaxed);
        }
    }
    usage.instances.fetch_add(1, Ordering::Relaxed);
    let _running = Running(&usage);
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(|cx| {
        let start = Instant::now();
        let r = f.as_mut().poll(cx);
        usage.ran(start.elapsed());
        r
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn polls_are_counted_and_idle_time_is_not() {
        let usage = Arc::new(Usage::default());
        let u = usage.clone();
        metered(Some(usage.clone()), async move {
            assert_eq!(u.instances(), 1);
            // Busy in a poll, then idle between polls.
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(30) {
                std::hint::spin_loop();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        })
        .await;
        assert!(
            usage.cpu() >= Duration::from_millis(30),
            "{:?}",
            usage.cpu()
        );
        assert!(usage.cpu() < Duration::from_millis(90), "{:?}", usage.cpu());
        assert_eq!(usage.instances(), 0);
    }
}
