//! The node's Events, recorded as client-go's event recorder does for a
//! kubelet: a worker never waits for one; a repeated event (same object,
//! type, reason and message) is one Event whose `count` and
//! `lastTimestamp` grow; each object gets a burst of events and then one
//! every few minutes; all go out at the node's event rate, and when the
//! queue is full new ones are dropped (and counted) rather than slowing
//! the pods down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::ratelimit::TokenBucket;

/// Events waiting to be sent; past this, new ones are dropped.
const QUEUE: usize = 1000;
/// Events an object may have at once, then one per `SPAM_REFILL`
/// (client-go's spam filter).
const SPAM_BURST: u32 = 25;
const SPAM_REFILL: Duration = Duration::from_secs(300);
/// How long a repeated event still counts into the earlier one.
const SERIES_WINDOW: Duration = Duration::from_secs(600);
/// Series kept per object; the oldest goes first.
const SERIES_PER_OBJECT: usize = 16;
/// Objects whose events are remembered; past this the memory is cleared.
const OBJECTS: usize = 65_536;

/// What an Event is about.
#[derive(Debug, Clone)]
pub(crate) struct Involved {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Involved {
    pub fn pod(pod: &Pod) -> Self {
        Self {
            kind: "Pod",
            namespace: pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }
}

/// What the send loop takes, in the order it was given.
#[derive(Debug)]
enum Msg {
    Record(Record),
    /// The object is gone: drop what is remembered of it (after its last
    /// events, which are queued before this).
    Forget(String),
}

/// One event to record.
#[derive(Debug)]
struct Record {
    involved: Involved,
    type_: &'static str,
    reason: String,
    message: String,
    /// When it happened (RFC 3339) and its name if it starts a series.
    time: String,
    name: String,
}

/// The node's event recorder.
pub(crate) struct EventRecorder {
    tx: mpsc::Sender<Msg>,
    rx: Mutex<Option<mpsc::Receiver<Msg>>>,
    memory: Mutex<HashMap<String, ObjectEvents>>,
    host: String,
    dropped: AtomicU64,
}

/// What is remembered of one object's events.
struct ObjectEvents {
    /// Spam filter tokens and when they were counted.
    tokens: f64,
    at: Instant,
    series: Vec<Series>,
}

struct Series {
    type_: &'static str,
    reason: String,
    message: String,
    /// The name of the series' Event.
    name: String,
    count: u32,
    last: Instant,
}

/// What to send for a recorded event.
#[derive(Debug, PartialEq)]
enum Send {
    Create,
    Count { name: String, count: u32 },
    Drop,
}

impl EventRecorder {
    pub fn new(host: &str) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        Arc::new(Self {
            tx,
            rx: Mutex::new(Some(rx)),
            memory: Mutex::new(HashMap::new()),
            host: host.to_string(),
            dropped: AtomicU64::new(0),
        })
    }

    /// Starts the task that sends events at `qps` after a `burst`.
    pub fn start(
        self: &Arc<Self>,
        client: kube::Client,
        qps: f64,
        burst: u32,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let rx = self.rx.lock().expect("events lock").take()?;
        Some(tokio::spawn(self.clone().send_loop(
            client,
            rx,
            TokenBucket::new(qps, burst),
        )))
    }

    /// Records an event about `involved`; never waits.
    pub fn record(&self, involved: Involved, type_: &'static str, reason: &str, message: &str) {
        let record = Record {
            time: now(),
            name: event_name(&involved.name),
            involved,
            type_,
            reason: reason.to_string(),
            message: message.to_string(),
        };
        if self.tx.try_send(Msg::Record(record)).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!("the event queue is full: {n} events dropped so far");
            }
        }
    }

    /// Forgets an object's events (it is gone), once the events recorded
    /// before are sent.
    pub fn forget(&self, uid: &str) {
        if let Err(mpsc::error::TrySendError::Full(msg)) = self.tx.try_send(Msg::Forget(uid.into()))
        {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(msg).await;
            });
        }
    }

    /// Decides what to send for `r`: a new Event, a higher count on the
    /// earlier one, or nothing (the object spent its events).
    fn decide(&self, r: &Record, now: Instant) -> Send {
        let mut memory = self.memory.lock().expect("events lock");
        if memory.len() >= OBJECTS && !memory.contains_key(&r.involved.uid) {
            memory.clear();
        }
        let obj = memory
            .entry(r.involved.uid.clone())
            .or_insert_with(|| ObjectEvents {
                tokens: f64::from(SPAM_BURST),
                at: now,
                series: Vec::new(),
            });
        let refill =
            now.saturating_duration_since(obj.at).as_secs_f64() / SPAM_REFILL.as_secs_f64();
        obj.tokens = (obj.tokens + refill).min(f64::from(SPAM_BURST));
        obj.at = now;
        if obj.tokens < 1.0 {
            return Send::Drop;
        }
        obj.tokens -= 1.0;
        obj.series
            .retain(|s| now.saturating_duration_since(s.last) < SERIES_WINDOW);
        if let Some(s) = obj
            .series
            .iter_mut()
            .find(|s| s.type_ == r.type_ && s.reason == r.reason && s.message == r.message)
        {
            s.count += 1;
            s.last = now;
            return Send::Count {
                name: s.name.clone(),
                count: s.count,
            };
        }
        if obj.series.len() >= SERIES_PER_OBJECT {
            obj.series.remove(0);
        }
        obj.series.push(Series {
            type_: r.type_,
            reason: r.reason.clone(),
            message: r.message.clone(),
            name: r.name.clone(),
            count: 1,
            last: now,
        });
        Send::Create
    }

    async fn send_loop(
        self: Arc<Self>,
        client: kube::Client,
        mut rx: mpsc::Receiver<Msg>,
        bucket: TokenBucket,
    ) {
        while let Some(msg) = rx.recv().await {
            let r = match msg {
                Msg::Record(r) => r,
                Msg::Forget(uid) => {
                    self.memory.lock().expect("events lock").remove(&uid);
                    continue;
                }
            };
            let send = self.decide(&r, Instant::now());
            if send == Send::Drop {
                continue;
            }
            bucket.acquire().await;
            let api: Api<Event> = Api::namespaced(client.clone(), &r.involved.namespace);
            let result = match &send {
                Send::Count { name, count } => {
                    let patch = json!({"count": count, "lastTimestamp": r.time});
                    match api
                        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        // The first of the series is gone (expired or not
                        // yet created): this one starts it again.
                        Err(kube::Error::Api(e)) if e.code == 404 => {
                            self.create(&api, &r, *count).await
                        }
                        other => other.map(|_| ()),
                    }
                }
                _ => self.create(&api, &r, 1).await,
            };
            if let Err(e) = result {
                tracing::warn!(
                    "recording event {} for {}/{}: {e}",
                    r.reason,
                    r.involved.namespace,
                    r.involved.name
                );
            }
        }
    }

    async fn create(&self, api: &Api<Event>, r: &Record, count: u32) -> Result<(), kube::Error> {
        let ev = json!({
            "metadata": {"name": r.name, "namespace": r.involved.namespace},
            "involvedObject": {"kind": r.involved.kind, "apiVersion": "v1", "name": r.involved.name,
                "namespace": r.involved.namespace, "uid": r.involved.uid},
            "reason": r.reason, "message": r.message, "type": r.type_,
            "source": {"component": "kubelet", "host": self.host},
            "firstTimestamp": r.time, "lastTimestamp": r.time, "count": count,
            "reportingComponent": "kubelet", "reportingInstance": self.host,
        });
        let ev: Event = serde_json::from_value(ev).map_err(kube::Error::SerdeError)?;
        api.create(&PostParams::default(), &ev).await.map(|_| ())
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// An Event's name as client-go makes it: the object's name and the time
/// in nanoseconds, so names sort in the order events happened (kubectl
/// describe lists events of the same second in name order).
fn event_name(object: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{object}.{nanos:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(uid: &str, reason: &str, message: &str) -> Record {
        Record {
            involved: Involved {
                kind: "Pod",
                namespace: "ns".into(),
                name: "p".into(),
                uid: uid.into(),
            },
            type_: "Warning",
            reason: reason.into(),
            message: message.into(),
            time: now(),
            name: event_name("p"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn repeats_count_into_one_event() {
        let rec = EventRecorder::new("node");
        let t = Instant::now();
        let first = record("u", "FailedMount", "no such secret");
        assert_eq!(rec.decide(&first, t), Send::Create);
        for n in 2..=5 {
            let again = record("u", "FailedMount", "no such secret");
            assert_eq!(
                rec.decide(&again, t + Duration::from_secs(n)),
                Send::Count {
                    name: first.name.clone(),
                    count: n as u32
                }
            );
        }
        // Another message is another series; another object another memory.
        assert_eq!(
            rec.decide(&record("u", "FailedMount", "other"), t),
            Send::Create
        );
        assert_eq!(
            rec.decide(&record("v", "FailedMount", "no such secret"), t),
            Send::Create
        );
        // Past the window a repeat starts a new Event.
        let late = record("u", "FailedMount", "no such secret");
        assert_eq!(
            rec.decide(&late, t + SERIES_WINDOW + Duration::from_secs(10)),
            Send::Create
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_object_spends_its_burst_then_gets_one_per_refill() {
        let rec = EventRecorder::new("node");
        let t = Instant::now();
        let sent = (0..100)
            .filter(|i| rec.decide(&record("u", "BackOff", &format!("m{i}")), t) != Send::Drop)
            .count();
        assert_eq!(sent, SPAM_BURST as usize);
        assert_eq!(
            rec.decide(&record("u", "BackOff", "x"), t + SPAM_REFILL / 2),
            Send::Drop
        );
        assert_ne!(
            rec.decide(&record("u", "BackOff", "y"), t + SPAM_REFILL),
            Send::Drop
        );
        assert_eq!(rec.memory.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_full_queue_drops_instead_of_waiting() {
        let rec = EventRecorder::new("node");
        for i in 0..(QUEUE + 10) {
            let r = record("u", "Started", &format!("{i}"));
            rec.record(r.involved, "Normal", "Started", "x");
        }
        assert_eq!(rec.dropped.load(Ordering::Relaxed), 10);
    }
}
