//! The Node authorizer, before RBAC as kube-apiserver's
//! `--authorization-mode=Node,RBAC`: a node's credentials read a Secret,
//! ConfigMap or PersistentVolumeClaim only when a pod bound to that node
//! names it (volumes, projected sources, environment, image pull
//! secrets), and may not list, watch or write those kinds at all; every
//! other request goes on to the authorizer it wraps.
//!
//! May import: `layers` (the authorizer's trait).

use std::sync::Arc;

use serde_json::Value;

use crate::layers::{Authorizer, Rules};
use shoal_machinery::error::ApiError;
use shoal_machinery::user::{Attributes, User};
use shoal_registry::admission::node_restriction::node_name;
use shoal_registry::objects::Objects;
use shoal_registry::resources;

/// The kinds a node reads only through its pods.
const GUARDED: [(&str, &str); 3] = [
    ("secrets", "secret"),
    ("configmaps", "configmap"),
    ("persistentvolumeclaims", "persistentvolumeclaim"),
];

/// The Secrets, ConfigMaps and PersistentVolumeClaims a pod names, as
/// (`secrets`|`configmaps`|`persistentvolumeclaims`, name).
pub fn references(pod: &Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut add = |kind: &'static str, v: Option<&Value>| {
        if let Some(n) = v.and_then(Value::as_str).filter(|n| !n.is_empty()) {
            out.push((kind, n.to_string()));
        }
    };
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    fn list<'a>(v: &'a Value, k: &str) -> &'a [Value] {
        v.get(k)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
    for s in list(spec, "imagePullSecrets") {
        add("secrets", s.get("name"));
    }
    for vol in list(spec, "volumes") {
        add("secrets", vol.pointer("/secret/secretName"));
        add("configmaps", vol.pointer("/configMap/name"));
        add(
            "persistentvolumeclaims",
            vol.pointer("/persistentVolumeClaim/claimName"),
        );
        for src in list(vol.get("projected").unwrap_or(&Value::Null), "sources") {
            add("secrets", src.pointer("/secret/name"));
            add("configmaps", src.pointer("/configMap/name"));
        }
    }
    for group in ["initContainers", "containers", "ephemeralContainers"] {
        for c in list(spec, group) {
            for e in list(c, "env") {
                add("secrets", e.pointer("/valueFrom/secretKeyRef/name"));
                add("configmaps", e.pointer("/valueFrom/configMapKeyRef/name"));
            }
            for e in list(c, "envFrom") {
                add("secrets", e.pointer("/secretRef/name"));
                add("configmaps", e.pointer("/configMapRef/name"));
            }
        }
    }
    out
}

/// The Node authorizer over `inner`.
pub struct NodeAuthorizer {
    /// The authorizer every other request goes to.
    pub inner: Arc<dyn Authorizer>,
    /// Where the pods are read.
    pub objects: Objects,
}

impl NodeAuthorizer {
    /// Whether a pod bound to `node` in `namespace` names `kind`/`name`.
    /// The pods are read in order until one does, so a name that the
    /// node's pods share (the cluster CA's ConfigMap, a common Secret)
    /// costs the first of them, not the namespace.
    fn related(&self, node: &str, namespace: &str, kind: &str, name: &str) -> bool {
        let Some(pods) = resources::by_kind("", "Pod") else {
            return false;
        };
        self.objects.any(pods, Some(namespace), |p| {
            p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node)
                && references(p).iter().any(|(k, n)| *k == kind && n == name)
        })
    }
}

impl Authorizer for NodeAuthorizer {
    fn authorize(&self, user: &User, a: &Attributes) -> Result<(), ApiError> {
        let (Some(node), Some(r)) = (node_name(user), a.resource.as_ref()) else {
            return self.inner.authorize(user, a);
        };
        let Some((plural, singular)) = GUARDED
            .iter()
            .find(|(p, _)| r.group.is_empty() && *p == r.resource && r.subresource.is_empty())
        else {
            return self.inner.authorize(user, a);
        };
        let refuse = |why: String| {
            Err(ApiError::forbidden(
                format!(
                    "{plural} \"{}\" is forbidden: User \"{}\" cannot {} resource \"{plural}\" in API group \"\" in the namespace \"{}\": {why}",
                    r.name, user.name, a.verb, r.namespace
                ),
                Some(("", plural, r.name.as_str())),
            ))
        };
        if a.verb != "get" || r.name.is_empty() {
            return refuse(format!("can only get individual {plural}"));
        }
        if self.related(node, &r.namespace, plural, &r.name) {
            Ok(())
        } else {
            refuse(format!(
                "no relationship found between node '{node}' and this object ({singular} {}/{})",
                r.namespace, r.name
            ))
        }
    }

    fn rules(&self, user: &User, namespace: &str) -> Rules {
        self.inner.rules(user, namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_names_what_its_node_may_read() {
        let pod = json!({"spec": {
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [{"secret": {"secretName": "vol-s"}}, {"configMap": {"name": "vol-c"}},
                {"persistentVolumeClaim": {"claimName": "data"}},
                {"projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}},
                    {"serviceAccountToken": {"path": "token"}}, {"secret": {"name": "proj-s"}}]}}],
            "initContainers": [{"envFrom": [{"secretRef": {"name": "init-s"}}]}],
            "containers": [{"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "env-c", "key": "k"}}},
                {"name": "B", "value": "x"}], "envFrom": [{"configMapRef": {"name": "from-c"}}]}]}});
        let mut got = references(&pod);
        got.sort();
        let want: Vec<(&str, String)> = vec![
            ("configmaps", "env-c".into()),
            ("configmaps", "from-c".into()),
            ("configmaps", "kube-root-ca.crt".into()),
            ("configmaps", "vol-c".into()),
            ("persistentvolumeclaims", "data".into()),
            ("secrets", "init-s".into()),
            ("secrets", "proj-s".into()),
            ("secrets", "pull".into()),
            ("secrets", "vol-s".into()),
        ];
        assert_eq!(got, want);
        assert!(references(&json!({"spec": {"volumes": "x", "containers": [1]}})).is_empty());
    }
}
