//! Pod status writes, coalesced as the kubelet's status manager does: a pod
//! worker sets the status it wants and goes on; a few writer tasks send
//! each pod's latest wish, one write per pod at a time. A status set again
//! before it was sent replaces the older one, a status equal to the last
//! one written is not sent, and a failed write is retried after a back-off.
//!
//! Every write carries the pod's uid as a precondition, so a late status
//! never lands on a newer pod of the same name. A pod seen in the API,
//! newer than the last write, with another Ready condition than written
//! (the control plane marks the pods of an unreachable node not Ready) has
//! its status written again.

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
    /// The status last written and the resourceVersion the write made.
    written: Option<Arc<Value>>,
    written_rv: u64,
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
            written_rv: 0,
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

    /// The pod as the API has it at `resource_version` is Ready or not
    /// (`ready`): if another writer changed that after this node's last
    /// write, the status is written again.
    pub fn observed(&self, uid: &str, resource_version: Option<&str>, ready: Option<bool>) {
        let Some(rv) = resource_version.and_then(|v| v.parse::<u64>().ok()) else {
            return;
        };
        let mut st = self.state.lock().expect("status lock");
        let Some(e) = st.pods.get_mut(uid) else {
            return;
        };
        let Some(written) = &e.written else {
            return;
        };
        if e.in_flight || rv <= e.written_rv || ready_in(written) == ready {
            return;
        }
        e.written = None;
        if !e.queued {
            e.queued = true;
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
        ok: Option<u64>,
        gone: bool,
    ) -> Option<Duration> {
        let mut st = self.state.lock().expect("status lock");
        if gone {
            st.pods.remove(uid);
            return None;
        }
        let e = st.pods.get_mut(uid)?;
        e.in_flight = false;
        if let Some(rv) = ok {
            e.written = Some(status);
            e.written_rv = rv;
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
                Ok(p) => {
                    let rv = p.metadata.resource_version.as_deref();
                    (Some(rv.and_then(|v| v.parse().ok()).unwrap_or(0)), false)
                }
                // The pod is gone, or this name is another pod now.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => (None, true),
                Err(e) => {
                    tracing::warn!("writing the status of {namespace}/{name} (retried): {e}");
                    (None, false)
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

/// The Ready condition's truth in a pod status, if it has one.
fn ready_in(status: &Value) -> Option<bool> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        .map(|c| c.get("status").and_then(Value::as_str) == Some("True"))
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
        assert_eq!(m.done(&uid, status, version, Some(5), false), None);
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
            m.done(&uid, status, version, Some(5), false),
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
        let first = m.done(&uid, status.clone(), version, None, false).unwrap();
        m.requeue(&uid);
        let (_, status, version) = take(&m);
        let second = m.done(&uid, status, version, None, false).unwrap();
        assert!(second > first, "{second:?} after {first:?}");
        m.requeue(&uid);
        let (_, status, version) = take(&m);
        assert_eq!(m.done(&uid, status, version, None, true), None);
        assert_eq!(m.tracked(), 0);
        m.set("u2", "ns", "q", json!({}));
        m.forget("u2");
        assert!(matches!(m.next(), Some(Next::Skip)));
        assert_eq!(m.tracked(), 0);
    }

    #[test]
    fn a_ready_condition_changed_by_another_writer_is_written_again() {
        let m = StatusManager::new();
        let ready =
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
        m.set("u1", "ns", "p", ready.clone());
        let (uid, status, version) = take(&m);
        assert_eq!(m.done(&uid, status, version, Some(10), false), None);
        // Older news, or the same Ready, change nothing.
        m.observed("u1", Some("9"), Some(false));
        m.observed("u1", Some("12"), Some(true));
        assert!(m.next().is_none());
        // The control plane marked it not Ready after the write.
        m.observed("u1", Some("13"), Some(false));
        let (_, status, _) = take(&m);
        assert_eq!(*status, ready);
    }
}
