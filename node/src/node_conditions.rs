//! When each of the node's conditions last changed. A condition's
//! `lastTransitionTime` is the moment its status last changed — not the
//! moment it was last posted — whatever the API server gives back. The
//! record starts from the conditions the Node already has (a restarted
//! agent that was Ready stays Ready since then), and takes a condition
//! someone else wrote (the control plane marks a silent node `Unknown`)
//! only when that write is newer than the agent's own. Pure; the agent
//! posts what it stamps.

use std::collections::HashMap;

use serde_json::Value;

/// A condition's status and since when, by condition type.
#[derive(Debug, Default, Clone)]
pub(crate) struct Transitions {
    at: HashMap<String, (String, String)>,
}

fn field<'a>(c: &'a Value, key: &str) -> Option<&'a str> {
    c.get(key).and_then(Value::as_str)
}

impl Transitions {
    /// The record of the conditions a Node object carries.
    pub fn of(conditions: &[Value]) -> Self {
        let mut t = Self::default();
        t.observe(conditions);
        t
    }

    /// Takes the conditions read back from the API where they changed
    /// after the agent's own record of them.
    pub fn observe(&mut self, conditions: &[Value]) {
        for c in conditions {
            let (Some(ty), Some(status), Some(time)) = (
                field(c, "type"),
                field(c, "status"),
                field(c, "lastTransitionTime"),
            ) else {
                continue;
            };
            let newer = self
                .at
                .get(ty)
                .is_none_or(|(s, t)| s != status && time > t.as_str());
            if newer {
                self.at
                    .insert(ty.to_string(), (status.to_string(), time.to_string()));
            }
        }
    }

    /// `condition` with its `lastTransitionTime`: `now` when its status
    /// differs from the record, else the recorded time.
    pub fn stamp(&mut self, mut condition: Value, now: &str) -> Value {
        let (Some(ty), Some(status)) = (field(&condition, "type"), field(&condition, "status"))
        else {
            return condition;
        };
        let since = match self.at.get(ty) {
            Some((s, t)) if s == status => t.clone(),
            _ => {
                self.at
                    .insert(ty.to_string(), (status.to_string(), now.to_string()));
                now.to_string()
            }
        };
        condition["lastTransitionTime"] = Value::String(since);
        condition
    }

    /// Whether the record has `ty` at `status`.
    #[cfg(test)]
    pub fn is(&self, ty: &str, status: &str) -> bool {
        self.at.get(ty).is_some_and(|(s, _)| s == status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(ty: &str, status: &str) -> Value {
        json!({"type": ty, "status": status})
    }

    fn since(c: &Value) -> &str {
        c["lastTransitionTime"].as_str().unwrap()
    }

    #[test]
    fn a_transition_time_moves_only_when_the_status_does() {
        let mut t = Transitions::default();
        let first = t.stamp(cond("Ready", "True"), "2026-01-01T00:00:00Z");
        assert_eq!(since(&first), "2026-01-01T00:00:00Z");
        // Posted again and again: the time stays.
        for now in ["2026-01-01T00:00:10Z", "2026-01-01T00:05:00Z"] {
            let again = t.stamp(cond("Ready", "True"), now);
            assert_eq!(since(&again), "2026-01-01T00:00:00Z");
        }
        let p = t.stamp(cond("MemoryPressure", "True"), "2026-01-01T00:06:00Z");
        assert_eq!(since(&p), "2026-01-01T00:06:00Z");
        let p = t.stamp(cond("MemoryPressure", "False"), "2026-01-01T00:07:00Z");
        assert_eq!(since(&p), "2026-01-01T00:07:00Z");
        assert!(t.is("MemoryPressure", "False") && t.is("Ready", "True"));
    }

    #[test]
    fn a_restarted_agent_keeps_the_times_the_node_has() {
        let mut t = Transitions::of(&[
            json!({"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}),
        ]);
        let ready = t.stamp(cond("Ready", "True"), "2026-01-02T00:00:00Z");
        assert_eq!(since(&ready), "2026-01-01T00:00:00Z");
    }

    #[test]
    fn only_a_newer_change_by_someone_else_counts() {
        let mut t = Transitions::default();
        t.stamp(cond("Ready", "True"), "2026-01-01T00:00:00Z");
        // An API server that gives back a stale or missing condition does
        // not move the time.
        t.observe(&[
            json!({"type": "Ready", "status": "False", "lastTransitionTime": "2025-12-31T00:00:00Z"}),
        ]);
        t.observe(&[json!({"type": "Ready", "status": "Unknown"})]);
        let ready = t.stamp(cond("Ready", "True"), "2026-01-01T00:01:00Z");
        assert_eq!(since(&ready), "2026-01-01T00:00:00Z");
        // The control plane marked the node Unknown after that: Ready
        // again is a transition.
        t.observe(&[
            json!({"type": "Ready", "status": "Unknown", "lastTransitionTime": "2026-01-01T00:02:00Z"}),
        ]);
        assert!(t.is("Ready", "Unknown"));
        let ready = t.stamp(cond("Ready", "True"), "2026-01-01T00:03:00Z");
        assert_eq!(since(&ready), "2026-01-01T00:03:00Z");
    }
}
