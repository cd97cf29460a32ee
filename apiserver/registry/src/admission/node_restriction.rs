//! The NodeRestriction admission plugin, as Kubernetes': a node's
//! credentials (`system:node:NAME` in `system:nodes`) write only that
//! node's own Node and Lease and the status of pods bound to it, and create
//! no pods, so a node taken over cannot reach the rest of the cluster's
//! objects through the API.

use serde_json::Value;

use super::{Admission, Attempt};
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::meta;
use shoal_machinery::user::User;

/// The node a user is, if it is one.
pub fn node_name(user: &User) -> Option<&str> {
    let name = user.name.strip_prefix("system:node:")?;
    (!name.is_empty() && user.groups.iter().any(|g| g == "system:nodes")).then_some(name)
}

/// The plugin.
pub struct NodeRestriction;

fn forbidden(message: String) -> ApiError {
    ApiError::forbidden(message, None)
}

impl Admission for NodeRestriction {
    fn admit(&self, a: Attempt<'_>) -> Result<()> {
        let Some(node) = a.user.and_then(node_name) else {
            return Ok(());
        };
        let name = meta::name(a.object);
        match (a.resource.group, a.resource.kind) {
            ("", "Node") if name != node => Err(forbidden(format!(
                "node \"{node}\" is not allowed to modify node \"{name}\""
            ))),
            ("coordination.k8s.io", "Lease")
                if meta::namespace(a.object) == "kube-node-lease" && name != node =>
            {
                Err(forbidden(format!(
                    "node \"{node}\" is not allowed to modify lease \"kube-node-lease/{name}\""
                )))
            }
            ("", "Pod") => {
                let Some(old) = a.old else {
                    return Err(forbidden(format!(
                        "pod does not have \"kubernetes.io/config.mirror\" annotation, node \"{node}\" can only create mirror pods"
                    )));
                };
                let bound = |p: &Value| meta::str_at(p, "/spec/nodeName") == Some(node);
                if bound(old) && bound(a.object) {
                    Ok(())
                } else {
                    Err(forbidden(format!(
                        "node \"{node}\" can only update pod status for pods with spec.nodeName set to itself"
                    )))
                }
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Operation;
    use crate::resources::by_kind;
    use serde_json::json;

    fn try_write(
        user: &User,
        kind: &str,
        group: &str,
        mut obj: Value,
        old: Option<Value>,
    ) -> Result<()> {
        NodeRestriction.admit(Attempt {
            operation: if old.is_some() {
                Operation::Update
            } else {
                Operation::Create
            },
            resource: by_kind(group, kind).unwrap(),
            object: &mut obj,
            old: old.as_ref(),
            user: Some(user),
            dry_run: false,
            warnings: &mut Vec::new(),
        })
    }

    #[test]
    fn a_node_writes_only_its_own() {
        let a = User {
            name: "system:node:a".into(),
            groups: vec!["system:nodes".into()],
        };
        let node = |n: &str| json!({"metadata": {"name": n}});
        assert!(try_write(&a, "Node", "", node("a"), None).is_ok());
        assert!(try_write(&a, "Node", "", node("b"), None).is_err());
        let lease = |n: &str| json!({"metadata": {"name": n, "namespace": "kube-node-lease"}});
        assert!(try_write(&a, "Lease", "coordination.k8s.io", lease("a"), None).is_ok());
        assert!(try_write(&a, "Lease", "coordination.k8s.io", lease("b"), None).is_err());
        let pod = |on: &str| json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"nodeName": on}});
        assert!(try_write(&a, "Pod", "", pod("a"), Some(pod("a"))).is_ok());
        let err = try_write(&a, "Pod", "", pod("b"), Some(pod("b"))).unwrap_err();
        assert_eq!(err.code, 403);
        assert!(
            try_write(&a, "Pod", "", pod("a"), Some(pod("b"))).is_err(),
            "no moving pods over"
        );
        assert!(
            try_write(&a, "Pod", "", pod("a"), None).is_err(),
            "no new pods"
        );
        let admin = User {
            name: "admin".into(),
            groups: vec!["system:masters".into()],
        };
        assert!(try_write(&admin, "Node", "", node("b"), None).is_ok());
        let pretender = User {
            name: "system:node:a".into(),
            groups: vec![],
        };
        assert!(node_name(&pretender).is_none());
    }
}
