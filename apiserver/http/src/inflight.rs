//! Requests in flight, bounded as kube-apiserver bounds them: at most
//! `--max-requests-inflight` reads and `--max-mutating-requests-inflight`
//! writes at once; one more is answered at once with 429
//! `TooManyRequests` and `Retry-After: 1`, which clients back off on.
//! Long-running requests (watches, followed logs, proxied requests) are not
//! counted, as in Kubernetes.
//!
//! May import: `route` (what a request is).

use std::sync::Arc;

use http::Method;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::request::Query;
use crate::route::Route;
use shoal_machinery::error::ApiError;

/// kube-apiserver's defaults.
pub const MAX_READS: usize = 400;
/// kube-apiserver's default for writes.
pub const MAX_WRITES: usize = 200;

/// The two budgets.
pub struct Inflight {
    reads: Arc<Semaphore>,
    writes: Arc<Semaphore>,
}

impl Default for Inflight {
    fn default() -> Self {
        Self::new(MAX_READS, MAX_WRITES)
    }
}

impl Inflight {
    /// Budgets of `reads` and `writes` requests at once.
    pub fn new(reads: usize, writes: usize) -> Self {
        Self {
            reads: Arc::new(Semaphore::new(reads)),
            writes: Arc::new(Semaphore::new(writes)),
        }
    }

    /// A place for one request, held until its answer is made; `None` for
    /// a long-running request; 429 when the budget is spent.
    pub(crate) fn admit(
        &self,
        method: &Method,
        route: &Route,
        query: &Query,
    ) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        let long_running = match route {
            Route::Resource(t) => {
                t.watch
                    || query.flag("watch")
                    || (t.sub.as_deref() == Some("log") && query.flag("follow"))
                    || matches!(t.sub.as_deref(), Some("exec" | "attach" | "portforward"))
            }
            // Peers' calls (Raft's heartbeats among them) never wait
            // behind clients.
            Route::Remote(_) | Route::Health | Route::Peers(_) => true,
            _ => false,
        };
        if long_running {
            return Ok(None);
        }
        let budget = if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            &self.reads
        } else {
            &self.writes
        };
        budget
            .clone()
            .try_acquire_owned()
            .map(Some)
            .map_err(|_| ApiError::too_many_requests())
    }

    /// Takes every write place (for tests: the next write is refused).
    #[cfg(test)]
    pub(crate) fn exhaust_writes(&self) -> OwnedSemaphorePermit {
        let n = self.writes.available_permits() as u32;
        self.writes
            .clone()
            .try_acquire_many_owned(n)
            .expect("free places")
    }
}
