//! Memory limits of instances, as a node's cgroups bound its containers:
//! each instance grows its linear memories up to its own limit (the pod's
//! `limits.memory`, or the node's default), and all instances together up
//! to the node's memory for pods (its allocatable memory). Growth past
//! either traps, so the container ends as `OOMKilled`; a guest cannot make
//! the node's process run out of memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The memory all instances of a node may hold together.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes of linear memory instances hold now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The budget's size.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Takes `bytes` from the budget, if they are left.
    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|n| *n <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// One instance's limits: its own and its share of the node's budget,
/// returned when the instance is dropped.
#[derive(Debug)]
pub struct InstanceLimits {
    limit: Option<usize>,
    budget: Option<Arc<MemoryBudget>>,
    held: usize,
    /// Growth taken from the budget that wasmtime may still fail.
    pending: usize,
    /// Where the instance's memory is counted, and how much it holds.
    usage: Option<Arc<crate::Usage>>,
    grown: usize,
    /// The last growth counted, which wasmtime may still fail.
    last_growth: usize,
}

impl InstanceLimits {
    /// Limits of `limit` bytes (none: only the budget's), within `budget`.
    pub fn new(limit: Option<usize>, budget: Option<Arc<MemoryBudget>>) -> Self {
        Self {
            limit,
            budget,
            held: 0,
            pending: 0,
            usage: None,
            grown: 0,
            last_growth: 0,
        }
    }

    /// The same limits, the instance's memory counted in `usage`.
    pub fn counted(mut self, usage: Option<Arc<crate::Usage>>) -> Self {
        self.usage = usage;
        self
    }

    /// No limit at all (a host before its store is made).
    pub fn unbounded() -> Self {
        Self::new(None, None)
    }
}

impl Drop for InstanceLimits {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.give_back(self.held);
        }
        if let Some(u) = &self.usage {
            u.shrank(self.grown);
        }
    }
}

impl wasmtime::ResourceLimiter for InstanceLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if let Some(limit) = self.limit
            && desired > limit
        {
            wasmtime::bail!(
                "forcing trap when growing memory to {desired} bytes: the container's memory limit is {limit} bytes"
            );
        }
        let delta = desired.saturating_sub(current);
        self.pending = 0;
        if let Some(b) = &self.budget {
            if !b.take(delta) {
                wasmtime::bail!(
                    "forcing trap when growing memory to {desired} bytes: the node's memory for pods ({} bytes) is used up",
                    b.limit
                );
            }
            self.held += delta;
            self.pending = delta;
        }
        if let Some(u) = &self.usage {
            u.grew(delta);
        }
        self.grown += delta;
        self.last_growth = delta;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        if let Some(b) = &self.budget {
            b.give_back(self.pending);
            self.held -= self.pending;
        }
        self.pending = 0;
        if let Some(u) = &self.usage {
            u.shrank(self.last_growth);
        }
        self.grown -= self.last_growth;
        self.last_growth = 0;
        Err(error)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn instances_grow_within_their_limit_and_the_nodes() {
        let budget = MemoryBudget::new(100);
        let mut a = InstanceLimits::new(Some(80), Some(budget.clone()));
        let mut b = InstanceLimits::new(None, Some(budget.clone()));
        assert!(a.memory_growing(0, 60, None).unwrap());
        assert!(
            a.memory_growing(60, 90, None).is_err(),
            "past its own limit"
        );
        assert!(b.memory_growing(0, 30, None).unwrap());
        let err = b.memory_growing(30, 50, None).unwrap_err().to_string();
        assert!(err.contains("forcing trap when growing memory") && err.contains("used up"));
        assert_eq!(budget.used(), 90);
        drop(a);
        assert_eq!(budget.used(), 30, "a dropped instance returns its memory");
        assert!(b.memory_growing(30, 100, None).unwrap());
        let _ = b.memory_grow_failed(wasmtime::format_err!("no"));
        assert_eq!(budget.used(), 30, "failed growth is returned");
    }
}
