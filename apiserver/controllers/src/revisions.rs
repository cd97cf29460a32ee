//! ControllerRevisions: the template history of DaemonSets and
//! StatefulSets, which `kubectl rollout history` lists and `rollout undo`
//! patches back.

use serde_json::{Value, json};

use super::{Action, Snapshot, int, owner_ref, res};
use shoal_machinery::meta;

/// The label that names the template revision a pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// Keeps a ControllerRevision named `revision` for `owner`'s current
/// template, numbered after every other one (a template that comes back
/// takes the next number), and drops the oldest past
/// `revisionHistoryLimit`.
pub fn keep(s: &Snapshot, owner: &Value, kind: &str, revision: &str, hash: &str) -> Vec<Action> {
    let cr_r = res("ControllerRevision", "apps");
    let (ns, uid) = (meta::namespace(owner), meta::uid(owner));
    let mut mine: Vec<&Value> = s.controlled("controllerrevisions", ns, uid).collect();
    mine.sort_by_key(|c| int(c, "/revision"));
    let newest = mine.last().map_or(0, |c| int(c, "/revision"));
    let mut actions = Vec::new();
    match mine.iter().find(|c| meta::name(c) == revision) {
        Some(c) if int(c, "/revision") == newest => {}
        Some(_) => actions.push(Action::Patch {
            resource: cr_r,
            namespace: ns.to_string(),
            name: revision.to_string(),
            patch: json!({"revision": newest + 1}),
            status: false,
        }),
        None => {
            let mut template = owner
                .pointer("/spec/template")
                .cloned()
                .unwrap_or(json!({}));
            template["$patch"] = json!("replace");
            let mut labels = owner
                .pointer("/spec/template/metadata/labels")
                .cloned()
                .unwrap_or(json!({}));
            labels[REVISION_LABEL] = json!(hash);
            actions.push(Action::Create {
                resource: cr_r,
                namespace: ns.to_string(),
                object: json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
                    "metadata": {"name": revision, "namespace": ns, "labels": labels,
                        "ownerReferences": owner_ref(owner, kind)},
                    "data": {"spec": {"template": template}}, "revision": newest + 1}),
            });
        }
    }
    let limit = owner
        .pointer("/spec/revisionHistoryLimit")
        .and_then(Value::as_i64)
        .unwrap_or(10)
        .max(0) as usize;
    let old: Vec<&&Value> = mine.iter().filter(|c| meta::name(c) != revision).collect();
    for c in old.iter().take(old.len().saturating_sub(limit)) {
        actions.push(Action::Delete {
            resource: cr_r,
            namespace: ns.to_string(),
            name: meta::name(c).to_string(),
        });
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{created, deleted, snap};
    use super::*;

    fn ds(limit: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "d", "uid": "ds-uid"},
            "spec": {"revisionHistoryLimit": limit,
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "a:v2"}]}}}})
    }

    fn revision(name: &str, n: i64) -> Value {
        json!({"metadata": {"name": name, "namespace": "d", "ownerReferences": [{"uid": "ds-uid", "controller": true}]},
            "revision": n})
    }

    #[test]
    fn templates_get_numbered_revisions_within_the_limit() {
        let d = ds(1);
        let a = keep(
            &snap(&[("daemonsets", d.clone())]),
            &d,
            "DaemonSet",
            "agent-new",
            "new",
        );
        let cr = created(&a)[0];
        assert_eq!(cr["revision"], 1);
        assert_eq!(
            cr["metadata"]["labels"],
            json!({"app": "agent", REVISION_LABEL: "new"})
        );
        assert_eq!(cr["data"]["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            cr["data"]["spec"]["template"]["spec"]["containers"][0]["image"],
            "a:v2"
        );

        // Two older revisions and a limit of 1: the oldest goes.
        let s = snap(&[
            ("daemonsets", d.clone()),
            ("controllerrevisions", revision("agent-a", 1)),
            ("controllerrevisions", revision("agent-b", 2)),
        ]);
        let a = keep(&s, &d, "DaemonSet", "agent-new", "new");
        assert_eq!(created(&a)[0]["revision"], 3);
        assert_eq!(deleted(&a), ["controllerrevisions/agent-a"]);

        // A template that comes back takes the next number.
        let a = keep(&s, &d, "DaemonSet", "agent-a", "a");
        assert!(
            matches!(&a[0], Action::Patch { name, patch: p, status: false, .. } if name == "agent-a" && p["revision"] == 3)
        );
    }
}
