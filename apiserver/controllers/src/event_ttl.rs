//! Events expire, as kube-apiserver's `--event-ttl` makes them (one hour by
//! default): an Event not written for that long is deleted, so a cluster
//! that started and removed many pods does not keep their Events for ever.

use std::time::Duration;

use serde_json::Value;

use super::{Action, Snapshot, res};
use shoal_machinery::meta::{self, parse_time, str_at};

/// When `event` was last written: the latest of its timestamps.
fn last_written(event: &Value) -> Option<jiff::Timestamp> {
    [
        "/lastTimestamp",
        "/eventTime",
        "/series/lastObservedTime",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .filter_map(|p| str_at(event, p).and_then(parse_time))
    .max()
}

/// Deletes the Events last written more than `ttl` before `now`.
pub fn reconcile_event_ttl(s: &Snapshot, now: jiff::Timestamp, ttl: Duration) -> Vec<Action> {
    let r = res("Event", "");
    let Ok(ttl) = jiff::SignedDuration::try_from(ttl) else {
        return Vec::new();
    };
    let cutoff = now - ttl;
    s.of(r.plural)
        .iter()
        .filter(|e| last_written(e).is_some_and(|t| t < cutoff))
        .map(|e| Action::Delete {
            resource: r,
            namespace: meta::namespace(e).to_string(),
            name: meta::name(e).to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{deleted, snap};
    use super::*;
    use serde_json::json;

    #[test]
    fn events_older_than_the_ttl_are_deleted() {
        let ev = |name: &str, created: &str, last: Option<&str>| {
            let mut e = json!({"metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
                "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Scheduled"});
            if let Some(l) = last {
                e["lastTimestamp"] = json!(l);
            }
            ("events", e)
        };
        let s = snap(&[
            ev("old", "2026-12-01T08:00:00Z", None),
            ev(
                "repeated",
                "2026-12-01T08:00:00Z",
                Some("2026-12-01T09:30:00Z"),
            ),
            ev("new", "2026-12-01T09:45:00Z", None),
        ]);
        let now: jiff::Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let gone = deleted(&reconcile_event_ttl(&s, now, Duration::from_secs(3600)));
        assert_eq!(gone, ["events/old"]);
    }
}
