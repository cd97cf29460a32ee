//! Namespaces: each gets the `default` ServiceAccount and the
//! `kube-root-ca.crt` ConfigMap; a terminating one is emptied, then
//! finalized.

use std::collections::BTreeSet;

use serde_json::json;

use super::{Action, Snapshot, res, terminating};
use shoal_machinery::meta;

/// What Kubernetes puts in every namespace: the `default` ServiceAccount
/// and the `kube-root-ca.crt` ConfigMap holding the cluster's CA.
pub fn reconcile_namespace_defaults(s: &Snapshot, ca_pem: &str) -> Vec<Action> {
    let present = |plural: &str, name: &str| -> BTreeSet<&str> {
        s.of(plural)
            .iter()
            .filter(|o| meta::name(o) == name)
            .map(|o| meta::namespace(o))
            .collect()
    };
    let accounts = present("serviceaccounts", "default");
    let cas = present("configmaps", "kube-root-ca.crt");
    let mut actions = Vec::new();
    for ns in s.of("namespaces").iter().filter(|n| !terminating(n)) {
        let ns = meta::name(ns);
        if !accounts.contains(ns) {
            actions.push(Action::Create {
                resource: res("ServiceAccount", ""),
                namespace: ns.to_string(),
                object: json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": ns}}),
            });
        }
        if !cas.contains(ns) {
            actions.push(Action::Create { resource: res("ConfigMap", ""), namespace: ns.to_string(), object: json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "kube-root-ca.crt", "namespace": ns,
                        "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                    "data": {"ca.crt": ca_pem}}) });
        }
    }
    actions
}

/// Empties terminating namespaces, then lets them go.
pub fn reconcile_namespaces(s: &Snapshot) -> Vec<Action> {
    let mut actions = Vec::new();
    for ns in s.of("namespaces").iter().filter(|n| terminating(n)) {
        let name = meta::name(ns);
        let mut left = 0;
        for (r, os) in s.each().filter(|(r, _)| r.namespaced) {
            for o in os.iter().filter(|o| meta::namespace(o) == name) {
                left += 1;
                if !terminating(o) || r.builtin_kind() != "Pod" {
                    actions.push(Action::Delete {
                        resource: r,
                        namespace: name.to_string(),
                        name: meta::name(o).to_string(),
                    });
                }
            }
        }
        if left == 0 {
            actions.push(Action::FinalizeNamespace(name.to_string()));
        }
    }
    actions
}
