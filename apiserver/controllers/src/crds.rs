//! CustomResourceDefinitions: a definition is `Established` once its
//! resources are served (which `Objects` does as soon as it is stored);
//! a deleted one keeps its cleanup finalizer until its objects are gone.

use super::{Action, Snapshot, res, status_patch, terminating, without_finalizer};
use shoal_machinery::meta;
use shoal_registry::custom::{self, CLEANUP_FINALIZER};

/// Reports each definition's accepted names and conditions, and empties
/// the resources of deleted ones.
pub fn reconcile_definitions(s: &Snapshot) -> Vec<Action> {
    let crd_r = res("CustomResourceDefinition", "apiextensions.k8s.io");
    let mut actions = Vec::new();
    for crd in s.of("customresourcedefinitions") {
        actions.extend(status_patch(
            crd_r,
            crd,
            custom::established_status(crd, &meta::now()),
        ));
        if !terminating(crd) || !super::has_finalizer(crd, CLEANUP_FINALIZER) {
            continue;
        }
        let name = meta::name(crd);
        let objects: Vec<_> = s
            .custom
            .iter()
            .filter(|(r, _)| r.custom.is_some_and(|c| c.definition == name))
            .flat_map(|(r, os)| os.iter().map(move |o| (*r, o)))
            .collect();
        if objects.is_empty() {
            actions.push(Action::Patch {
                resource: crd_r,
                namespace: String::new(),
                name: name.to_string(),
                patch: without_finalizer(crd, CLEANUP_FINALIZER),
                status: false,
            });
        }
        for (r, o) in objects.into_iter().filter(|(_, o)| !terminating(o)) {
            actions.push(Action::Delete {
                resource: r,
                namespace: meta::namespace(o).to_string(),
                name: meta::name(o).to_string(),
            });
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::snap;
    use serde_json::{Value, json};
    use shoal_registry::resources::Resource;

    fn crd(deleting: bool) -> Value {
        let mut c = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com", "uid": "u1", "finalizers": [CLEANUP_FINALIZER]},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]},
        });
        if deleting {
            c["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        c
    }

    #[test]
    fn a_definition_is_established() {
        let actions = reconcile_definitions(&snap(&[("customresourcedefinitions", crd(false))]));
        let [
            Action::Patch {
                name,
                patch: p,
                status: true,
                ..
            },
        ] = actions.as_slice()
        else {
            panic!("{actions:?}")
        };
        assert_eq!(name, "widgets.example.com");
        let types: Vec<&Value> = p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["type"])
            .collect();
        assert_eq!(types, ["NamesAccepted", "Established"]);
        assert_eq!(p["status"]["acceptedNames"]["kind"], "Widget");
        assert_eq!(p["status"]["storedVersions"], json!(["v1"]));
    }

    #[test]
    fn a_deleted_definition_deletes_its_objects_then_lets_go() {
        let def = crd(true);
        let r: &'static Resource = custom::served(&[&def])[0];
        let widget = json!({"metadata": {"name": "w", "namespace": "default", "uid": "u2"}});
        let mut s = snap(&[("customresourcedefinitions", def.clone())]);
        s.custom.push((r, vec![std::sync::Arc::new(widget)]));
        let actions = reconcile_definitions(&s);
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, Action::Delete { resource: dr, namespace: ns, name: n } if std::ptr::eq(*dr, r) && ns == "default" && n == "w")),
            "{actions:?}"
        );
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::Patch { status: false, .. }))
        );
        let s = snap(&[("customresourcedefinitions", def)]);
        let actions = reconcile_definitions(&s);
        assert!(actions.iter().any(|a| matches!(a, Action::Patch { patch: p, status: false, .. } if p["metadata"]["finalizers"].is_null())));
    }
}
