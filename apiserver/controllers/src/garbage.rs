//! Garbage collection by `ownerReferences`: dependents of deleted owners
//! go, foreground and orphan deletions are carried out.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{Action, Snapshot, has_finalizer, terminating, without_finalizer};
use shoal_machinery::meta;
use shoal_registry::objects::{FOREGROUND_DELETION, ORPHAN};
use shoal_registry::resources::Resource;

/// Deletes objects whose owners are all gone.
pub fn reconcile_garbage(s: &Snapshot) -> Vec<Action> {
    let uids: BTreeSet<&str> = s
        .each()
        .flat_map(|(_, os)| os)
        .map(|o| meta::uid(o))
        .collect();
    let mut actions = propagate_deletions(s);
    for (r, os) in s.each() {
        for o in os {
            let owners = o
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array);
            if owners.is_some_and(|os| {
                !os.is_empty()
                    && os.iter().all(|w| {
                        !uids.contains(w.get("uid").and_then(Value::as_str).unwrap_or_default())
                    })
            }) {
                actions.push(Action::Delete {
                    resource: r,
                    namespace: meta::namespace(o).to_string(),
                    name: meta::name(o).to_string(),
                });
            }
        }
    }
    actions
}

fn owner_uids(o: &Value) -> impl Iterator<Item = &str> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|w| w.get("uid").and_then(Value::as_str))
}

/// Whether `dependent`'s reference to the owner `uid` has
/// `blockOwnerDeletion: true`.
fn blocks_deletion_of(dependent: &Value, uid: &str) -> bool {
    dependent
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter().any(|w| {
                w.get("uid").and_then(Value::as_str) == Some(uid)
                    && w.get("blockOwnerDeletion") == Some(&json!(true))
            })
        })
}

/// Deletions with a propagation policy: an owner held by `orphan` is
/// removed from its dependents' owners, one held by `foregroundDeletion`
/// has its dependents deleted (in the foreground too); once it has no
/// dependents left, its finalizer is removed and the deletion completes.
fn propagate_deletions(s: &Snapshot) -> Vec<Action> {
    let mut dependents: BTreeMap<&str, Vec<(&'static Resource, &Value)>> = BTreeMap::new();
    for (r, os) in s.each() {
        for o in os {
            for uid in owner_uids(o) {
                dependents.entry(uid).or_default().push((r, o));
            }
        }
    }
    let mut actions = Vec::new();
    for (r, os) in s.each() {
        for o in os.iter().filter(|o| terminating(o)) {
            let uid = meta::uid(o);
            let deps = dependents.get(uid).map(Vec::as_slice).unwrap_or(&[]);
            let finalizer = if has_finalizer(o, ORPHAN) {
                for (dr, d) in deps {
                    let rest: Vec<&Value> = d
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter(|w| w.get("uid").and_then(Value::as_str) != Some(uid))
                        .collect();
                    let refs = if rest.is_empty() {
                        Value::Null
                    } else {
                        json!(rest)
                    };
                    actions.push(Action::Patch {
                        resource: dr,
                        namespace: meta::namespace(d).to_string(),
                        name: meta::name(d).to_string(),
                        patch: json!({"metadata": {"ownerReferences": refs}}),
                        status: false,
                    });
                }
                ORPHAN
            } else if has_finalizer(o, FOREGROUND_DELETION) {
                for (dr, d) in deps.iter().filter(|(_, d)| !terminating(d)) {
                    actions.push(Action::DeleteForeground {
                        resource: dr,
                        namespace: meta::namespace(d).to_string(),
                        name: meta::name(d).to_string(),
                    });
                }
                FOREGROUND_DELETION
            } else {
                continue;
            };
            // A foreground deletion waits only for the dependents that
            // block it (`blockOwnerDeletion`); the others are deleted too,
            // and collected as orphans if their owner goes first.
            let waiting = deps
                .iter()
                .any(|(_, d)| finalizer == ORPHAN || blocks_deletion_of(d, uid));
            if !waiting {
                actions.push(Action::Patch {
                    resource: r,
                    namespace: meta::namespace(o).to_string(),
                    name: meta::name(o).to_string(),
                    patch: without_finalizer(o, finalizer),
                    status: false,
                });
            }
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::snap;

    #[test]
    fn orphan_and_foreground_deletions_handle_dependents_first() {
        let owner = |fin: &str| {
            json!({"metadata": {"name": "r", "namespace": "d", "uid": "rs1",
                "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["keep", fin]}})
        };
        let pod = json!({"metadata": {"name": "q", "namespace": "d", "uid": "y",
            "ownerReferences": [{"uid": "rs1", "blockOwnerDeletion": true}, {"uid": "other"}]}});
        let other = json!({"metadata": {"name": "o", "namespace": "d", "uid": "other"}});

        // Orphan: the dependent loses this owner and keeps the other one.
        let actions = reconcile_garbage(&snap(&[
            ("replicasets", owner(ORPHAN)),
            ("pods", pod.clone()),
            ("replicasets", other.clone()),
        ]));
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert!(
            matches!(&actions[0], Action::Patch { resource: r, name: n, patch: p, status: false, .. }
            if r.kind == "Pod" && n == "q" && p["metadata"]["ownerReferences"] == json!([{"uid": "other"}]))
        );

        // Foreground: the dependent is deleted, in the foreground too; the
        // owner keeps its finalizer meanwhile.
        let actions = reconcile_garbage(&snap(&[
            ("replicasets", owner(FOREGROUND_DELETION)),
            ("pods", pod.clone()),
            ("replicasets", other.clone()),
        ]));
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert!(
            matches!(&actions[0], Action::DeleteForeground { resource: r, namespace: _, name: n } if r.kind == "Pod" && n == "q")
        );
        // A dependent that does not block its owner is deleted, but the
        // owner goes at once.
        let mut free = pod.clone();
        free["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] = json!(false);
        let actions = reconcile_garbage(&snap(&[
            ("replicasets", owner(FOREGROUND_DELETION)),
            ("pods", free),
            ("replicasets", other.clone()),
        ]));
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert!(actions.iter().any(
            |a| matches!(a, Action::Patch { resource: r, patch: p, status: false, .. }
            if r.kind == "ReplicaSet" && p["metadata"]["finalizers"] == json!(["keep"]))
        ));

        // With no dependents left, only the policy's finalizer goes.
        for fin in [ORPHAN, FOREGROUND_DELETION] {
            let actions = reconcile_garbage(&snap(&[("replicasets", owner(fin))]));
            assert_eq!(actions.len(), 1, "{actions:?}");
            assert!(
                matches!(&actions[0], Action::Patch { resource: r, name: n, patch: p, status: false, .. }
                if r.kind == "ReplicaSet" && n == "r" && p["metadata"]["finalizers"] == json!(["keep"]))
            );
        }
    }

    #[test]
    fn orphans_are_collected() {
        let orphan = json!({"metadata": {"name": "p", "namespace": "d", "uid": "x", "ownerReferences": [{"uid": "gone"}]}});
        let owned = json!({"metadata": {"name": "q", "namespace": "d", "uid": "y", "ownerReferences": [{"uid": "rs1"}]}});
        let owner = json!({"metadata": {"name": "r", "namespace": "d", "uid": "rs1"}});
        let actions = reconcile_garbage(&snap(&[
            ("pods", orphan),
            ("pods", owned),
            ("replicasets", owner),
        ]));
        assert_eq!(actions.len(), 1);
        assert!(
            matches!(&actions[0], Action::Delete { resource: r, namespace: _, name: n } if r.kind == "Pod" && n == "p")
        );
    }
}
