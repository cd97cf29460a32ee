//! RBAC as the API's authorizer: a [`Policy`] of the cluster's roles and
//! bindings, rebuilt whenever the store's watch shows one of them change,
//! asked for every request.
//!
//! May import: `layers` (the authorizer's trait).

use std::sync::{Arc, RwLock};

use serde_json::Value;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::layers::{Authorizer, Rules};
use shoal_machinery::error::ApiError;
use shoal_machinery::meta;
use shoal_machinery::selectors::{FieldSelector, LabelSelector};
use shoal_machinery::user::ResourceAttributes;
use shoal_machinery::user::{Attributes, User};
use shoal_rbac::{Policy, Rule, forbidden_message};
use shoal_registry::admission::{Admission, Attempt};
use shoal_registry::objects::Objects;
use shoal_registry::resources::{self, Resource};
use shoal_store::Event;

/// The RBAC kinds, in [`Policy::new`]'s order.
const KINDS: [&str; 4] = ["ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"];

fn rbac_resources() -> [&'static Resource; 4] {
    KINDS
        .map(|k| resources::by_kind("rbac.authorization.k8s.io", k).expect("RBAC kinds are served"))
}

/// The authorizer: RBAC over a policy kept current from the store.
pub struct Rbac {
    policy: RwLock<Arc<Policy>>,
}

impl Rbac {
    /// An authorizer with no roles yet: only `system:masters` may act
    /// until [`Rbac::follow`] reads the store.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            policy: RwLock::new(Arc::new(Policy::default())),
        })
    }

    /// Builds the policy from `objects` and keeps it current until the
    /// returned task is aborted.
    pub fn follow(self: &Arc<Self>, objects: Objects) -> tokio::task::JoinHandle<()> {
        // Subscribed before the first build, so no change falls between.
        let events = objects.store().watch(None).ok().map(|(_, rx)| rx);
        *self.policy.write().expect("policy lock") = Arc::new(build(&objects));
        tokio::spawn(keep_current(self.clone(), objects, events))
    }

    fn policy(&self) -> Arc<Policy> {
        self.policy.read().expect("policy lock").clone()
    }
}

/// The admission check RBAC's own kinds need: a user writes a role only
/// with rules it holds itself (or the `escalate` verb), and binds a role
/// only when it holds the role's permissions where the binding applies
/// (or the `bind` verb), so no one grants more than they have.
pub struct NoEscalation(pub Arc<Rbac>);

impl Admission for NoEscalation {
    fn admit(&self, a: Attempt<'_>) -> Result<(), ApiError> {
        let (Some(user), "rbac.authorization.k8s.io") = (a.user, a.resource.group) else {
            return Ok(());
        };
        let policy = self.0.policy();
        let obj = &*a.object;
        let ns = meta::namespace(obj);
        let name = meta::name(obj);
        let may = |verb: &str, resource: &str, name: &str| {
            policy
                .authorize(
                    user,
                    &Attributes {
                        verb: verb.into(),
                        resource: Some(ResourceAttributes {
                            group: "rbac.authorization.k8s.io".into(),
                            version: String::new(),
                            resource: resource.into(),
                            subresource: String::new(),
                            namespace: ns.into(),
                            name: name.into(),
                        }),
                        path: String::new(),
                    },
                )
                .is_some()
        };
        let (rules, what) = match a.resource.kind {
            "Role" | "ClusterRole" => {
                if may("escalate", a.resource.plural, name) {
                    return Ok(());
                }
                let rules: Vec<Rule> = obj
                    .get("rules")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().map(Rule::from_json).collect())
                    .unwrap_or_default();
                (rules, "grant")
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                let kind = meta::str_at(obj, "/roleRef/kind").unwrap_or_default();
                let role = meta::str_at(obj, "/roleRef/name").unwrap_or_default();
                let plural = if kind == "Role" {
                    "roles"
                } else {
                    "clusterroles"
                };
                if may("bind", plural, role) {
                    return Ok(());
                }
                // A role that does not exist grants nothing yet.
                (
                    policy.role_rules(kind, ns, role).unwrap_or_default(),
                    "bind",
                )
            }
            _ => return Ok(()),
        };
        policy.covers(user, &rules, ns).map_err(|missing| {
            ApiError::forbidden(
                format!(
                    "{}.rbac.authorization.k8s.io \"{name}\" is forbidden: user \"{}\" (groups={:?}) is attempting to {what} RBAC permissions not currently held:\n{}",
                    a.resource.plural,
                    user.name,
                    user.groups,
                    missing.join("\n")
                ),
                Some(("rbac.authorization.k8s.io", a.resource.plural, name)),
            )
        })
    }
}

/// The policy of the roles and bindings stored now.
fn build(objects: &Objects) -> Policy {
    let [a, b, c, d] = rbac_resources().map(|r| {
        let (items, _) = objects.list(
            r,
            None,
            &LabelSelector::default(),
            &FieldSelector::default(),
        );
        items
            .iter()
            .map(|s| Value::clone(&s.value))
            .collect::<Vec<_>>()
    });
    Policy::new(&a, &b, &c, &d)
}

async fn keep_current(rbac: Arc<Rbac>, objects: Objects, mut events: Option<Receiver<Arc<Event>>>) {
    let prefixes: Vec<String> = rbac_resources().iter().map(|r| r.prefix(None)).collect();
    loop {
        let Some(rx) = events.as_mut() else {
            // The store replaced its state (a snapshot installed): the
            // policy is built again from what it holds now.
            events = objects.store().watch(None).ok().map(|(_, rx)| rx);
            *rbac.policy.write().expect("policy lock") = Arc::new(build(&objects));
            if events.is_none() {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            continue;
        };
        let changed = match rx.recv().await {
            Ok(e) => prefixes.iter().any(|p| e.key.starts_with(p.as_str())),
            Err(RecvError::Lagged(_)) => true,
            Err(RecvError::Closed) => {
                events = None;
                continue;
            }
        };
        if changed {
            // Changes that arrived meanwhile are in the one rebuild.
            while matches!(rx.try_recv(), Ok(_) | Err(TryRecvError::Lagged(_))) {}
            *rbac.policy.write().expect("policy lock") = Arc::new(build(&objects));
        }
    }
}

impl Authorizer for Rbac {
    fn authorize(&self, user: &User, a: &Attributes) -> Result<(), ApiError> {
        self.policy().authorize(user, a).map(|_| ()).ok_or_else(|| {
            ApiError::forbidden(
                forbidden_message(user, a),
                a.resource
                    .as_ref()
                    .map(|r| (r.group.as_str(), r.resource.as_str(), r.name.as_str())),
            )
        })
    }

    fn rules(&self, user: &User, namespace: &str) -> Rules {
        let (resource, non_resource) = self.policy().rules_for(user, namespace);
        Rules {
            resource: resource.iter().map(shoal_rbac::Rule::to_json).collect(),
            non_resource: non_resource.iter().map(shoal_rbac::Rule::to_json).collect(),
        }
    }
}
