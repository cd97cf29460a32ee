//! Pod status writes, coalesced as the kubelet's status manager does: a pod
//! worker sets the status it wants and goes on; a few writer tasks send
//! each pod's latest wish, one write per pod at a time. A status set again
//! before it was sent replaces the older one, a status equal to the last
//! one written is not sent, and a failed write is retried after a back-off.
//!
//! Every write carries the pod's uid as a precondition, so a late status
//! never lands on a newer pod of the same name.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// Writes in flight at once.
const WRITERS: usize = 32;

/// Back-off of a failed write: doubling from this, up to `RETRY_MAX`.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// The status writes of a node's pods.
pub(crate) struct StatusManager {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    pods: HashMap<String, Entry>,
    queue: VecDeque<String>,
}

struct Entry {
    namespace: String,
    name: String,
    /// The status the worker wants and how many times it was set.
    want: Arc<Value>,
    version: u64,
    /// The status last written.
    written: Option<Arc<Value>>,
    queued: bool,
    in_flight: bool,
    failures: u32,
}

/// What a writer does next with a pod.
enum Next {
    Write {
        uid: String,
        namespace: String,
        name: String,
        status: Arc<Value>,
        version: u64,
    },
    Skip,
}

impl StatusManager {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        })
    }

    /// Starts the writer tasks.
    pub fn start(self: &Arc<Self>, client: kube::Client) -> Vec<tokio::task::JoinHandle<()>> {
        (0..WRITERS)
            .map(|_| tokio::spawn(self.clone().writer(client.clone())))
            .collect()
    }

    /// Sets the status pod `uid` should have (`status` is the value of the
    /// pod's `.status`).
    pub fn set(&self, uid: &str, namespace: &str, name: &str, status: Value) {
        let mut st = self.state.lock().expect("status lock");
        let entry = st.pods.entry(uid.to_string()).or_insert_with(|| Entry {
            namespace: namespace.to_string(),
            name: name.to_string(),
            want: Arc::new(Value::Null),
            version: 0,
            written: None,
            queued: false,
            in_flight: false,
            failures: 0,
        });
        if *entry.want == status {
            return;
        }
        entry.want = Arc::new(status);
        entry.version += 1;
        if !entry.queued && !entry.in_flight {
            entry.queued = true;
            st.queue.push_back(uid.to_string());
            drop(st);
            self.wake.notify_one();
        }
    }

    /// Drops what is kept of a pod that is gone.
    pub fn forget(&self, uid: &str) {
        self.state.lock().expect("status lock").pods.remove(uid);
    }

    /// Pods with a status kept (for tests and metrics).
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.state.lock().expect("status lock").pods.len()
    }

    fn next(&self) -> Option<Next> {
        let mut st = self.state.lock().expect("status lock");
        let uid = st.queue.pop_front()?;
        let Some(e) = st.pods.get_mut(&uid) else {
            return Some(Next::Skip);
        };
        e.queued = false;
        if e.written.as_ref() == Some(&e.want) {
            return Some(Next::Skip);
        }
        e.in_flight = true;
        Some(Next::Write {
            namespace: e.namespace.clone(),
            name: e.name.clone(),
            status: e.want.clone(),
            version: e.version,
            uid,
        })
    }

    /// Records how a write of `version` went; returns the back-off before
    /// the pod is queued again, if it must be.
    fn done(
        &self,
        uid: &str,
        status: Arc<Value>,
        version: u64,
        ok: bool,
        gone: bool,
    ) -> Option<Duration> {
        let mut st = self.state.lock().expect("status lock");
        if gone {
            st.pods.remove(uid);
            return None;
        }
        let e = st.pods.get_mut(uid)?;
        e.in_flight = false;
        if ok {
            e.written = Some(status);
            e.failures = 0;
            if e.version == version {
                return None;
            }
            e.queued = true;
            st.queue.push_back(uid.to_string());
            return Some(Duration::ZERO);
        }
        let delay = RETRY_MIN
            .saturating_mul(1 << e.failures.min(8))
            .min(RETRY_MAX);
        e.failures += 1;
        e.queued = true;
        Some(delay)
    }

    async fn writer(self: Arc<Self>, client: kube::Client) {
        loop {
            let Some(next) = self.next() else {
                self.wake.notified().await;
                continue;
            };
            let Next::Write {
                uid,
                namespace,
                name,
                status,
                version,
            } = next
            else {
                continue;
            };
            let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
            let patch = json!({"metadata": {"uid": uid}, "status": &*status});
            let result = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
            let (ok, gone) = match &result {
                Ok(_) => (true, false),
                // The pod is gone, or this name is another pod now.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => (false, true),
                Err(e) => {
                    tracing::debug!("writing the status of {namespace}/{name}: {e}");
                    (false, false)
                }
            };
            match self.done(&uid, status, version, ok, gone) {
                Some(d) if d.is_zero() => self.wake.notify_one(),
                Some(d) => {
                    let me = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(d).await;
                        me.requeue(&uid);
                    });
                }
                None => {}
            }
        }
    }

    /// Puts a pod whose write failed back in the queue after its back-off.
    fn requeue(&self, uid: &str) {
        let mut st = self.state.lock().expect("status lock");
        if st.pods.contains_key(uid) {
            st.queue.push_back(uid.to_string());
            drop(st);
            self.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(m: &StatusManager) -> (String, Arc<Value>, u64) {
        match m.next() {
            Some(Next::Write {
                uid,
                status,
                version,
                ..
            }) => (uid, status, version),
            Some(Next::Skip) => panic!("skipped"),
            None => panic!("nothing queued"),
        }
    }

    #[test]
    fn statuses_set_before_a_write_are_coalesced() {
        let m = StatusManager::new();
        m.set("u1", "ns", "p", json!({"phase": "Pending"}));
        m.set("u1", "ns", "p", json!({"phase": "Running"}));
        let (uid, status, version) = take(&m);
        assert_eq!(uid, "u1");
        assert_eq!(*status, json!({"phase": "Running"}));
        assert!(m.next().is_none(), "one write for two wishes");
        assert_eq!(m.done(&uid, status, version, true, false), None);
        // The same status again is not written.
        m.set("u1", "ns", "p", json!({"phase": "Running"}));
        assert!(m.next().is_none());
    }

    #[test]
    fn a_status_set_during_a_write_follows_it() {
        let m = StatusManager::new();
        m.set("u1", "ns", "p", json!({"phase": "Pending"}));
        let (uid, status, version) = take(&m);
        m.set("u1", "ns", "p", json!({"phase": "Running"}));
        assert!(m.next().is_none(), "never two writes of a pod at once");
        assert_eq!(
            m.done(&uid, status, version, true, false),
            Some(Duration::ZERO)
        );
        let (_, status, _) = take(&m);
        assert_eq!(*status, json!({"phase": "Running"}));
    }

    #[test]
    fn failures_back_off_and_gone_pods_are_dropped() {
        let m = StatusManager::new();
        m.set("u1", "ns", "p", json!({"phase": "Running"}));
        let (uid, status, version) = take(&m);
        let first = m.done(&uid, status.clone(), version, false, false).unwrap();
        m.requeue(&uid);
        let (_, status, version) = take(&m);
        let second = m.done(&uid, status, version, false, false).unwrap();
        assert!(second > first, "{second:?} after {first:?}");
        m.requeue(&uid);
        let (_, status, version) = take(&m);
        assert_eq!(m.done(&uid, status, version, false, true), None);
        assert_eq!(m.tracked(), 0);
        m.set("u2", "ns", "q", json!({}));
        m.forget("u2");
        assert!(matches!(m.next(), Some(Next::Skip)));
        assert_eq!(m.tracked(), 0);
    }
}
