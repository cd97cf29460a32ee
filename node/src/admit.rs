//! The node's own admission of pods, as a kubelet's: a pod whose memory
//! requests the node's allocatable memory cannot hold beside the pods
//! already admitted is refused (`Failed`, reason `OutOfmemory`), whatever
//! bound it here. An admitted pod holds its share until its worker ends.
//!
//! May import: nothing of the crate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// The node's allocatable memory and what admitted pods request of it.
pub(crate) struct Admissions {
    allocatable: u64,
    held: Mutex<HashMap<String, u64>>,
}

/// A pod's share of the node, returned when dropped.
pub(crate) struct Admitted {
    admissions: Arc<Admissions>,
    uid: String,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admissions
            .held
            .lock()
            .expect("admissions lock")
            .remove(&self.uid);
    }
}

/// The memory a pod requests: each container's `requests.memory`, or its
/// `limits.memory` when it requests none (as Kubernetes defaults it).
pub(crate) fn memory_request(pod: &Value) -> u64 {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            c.pointer("/resources/requests/memory")
                .or_else(|| c.pointer("/resources/limits/memory"))
                .and_then(Value::as_str)
                .and_then(shoal_quantity::bytes)
        })
        .fold(0u64, u64::saturating_add)
}

impl Admissions {
    /// Admissions against `allocatable` bytes of memory.
    pub(crate) fn new(allocatable: u64) -> Arc<Self> {
        Arc::new(Self {
            allocatable,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// Admits pod `uid` requesting `requested` bytes, or says why not in
    /// the kubelet's words.
    pub(crate) fn admit(self: &Arc<Self>, uid: &str, requested: u64) -> Result<Admitted, String> {
        let mut held = self.held.lock().expect("admissions lock");
        let used: u64 = held
            .iter()
            .filter(|(u, _)| u.as_str() != uid)
            .map(|(_, n)| *n)
            .fold(0, u64::saturating_add);
        if used.saturating_add(requested) > self.allocatable {
            return Err(format!(
                "Pod was rejected: Node didn't have enough resource: memory, requested: {requested}, used: {used}, capacity: {}",
                self.allocatable
            ));
        }
        held.insert(uid.to_string(), requested);
        Ok(Admitted {
            admissions: self.clone(),
            uid: uid.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_are_admitted_while_their_requests_fit() {
        let a = Admissions::new(1 << 30);
        let pod = json!({"spec": {"containers": [
            {"resources": {"requests": {"memory": "256Mi"}}},
            {"resources": {"limits": {"memory": "256Mi"}}}, {}]}});
        assert_eq!(memory_request(&pod), 512 << 20);
        let first = a.admit("a", 512 << 20).unwrap();
        let _second = a.admit("b", 512 << 20).unwrap();
        let err = a.admit("c", 1).err().unwrap();
        assert_eq!(
            err,
            "Pod was rejected: Node didn't have enough resource: memory, requested: 1, used: 1073741824, capacity: 1073741824"
        );
        drop(first);
        assert!(a.admit("c", 1).is_ok(), "a pod gone returns its share");
    }
}
