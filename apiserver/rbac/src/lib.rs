//! Role-based access control with Kubernetes' semantics, as pure
//! decisions over a snapshot of the cluster's roles and bindings: who may
//! do what ([`Policy::authorize`]), everything a user may do in a
//! namespace ([`Policy::rules_for`]), ClusterRole aggregation, and the
//! default roles and bindings every cluster starts with ([`defaults`]).
//!
//! May import: the machinery (users, request attributes, label
//! selectors). Must not import: the store, the registry, anything with I/O;
//! the API server keeps a [`Policy`] current from the store's watch.

mod defaults;
mod rules;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use shoal_machinery::selectors::LabelSelector;
use shoal_machinery::user::{Attributes, User};

pub use defaults::{SERVER_BOOTSTRAPPERS, defaults};
pub use rules::Rule;

/// The group whose members may do everything, whatever the bindings say.
pub const MASTERS: &str = "system:masters";

/// The user name of a service account.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// The role a binding grants.
#[derive(Debug, Clone)]
enum RoleRef {
    Cluster(String),
    Local(String, String),
}

/// What one binding grants one subject.
#[derive(Debug, Clone)]
struct Grant {
    /// The binding's namespace; `None` for a ClusterRoleBinding.
    namespace: Option<String>,
    role: RoleRef,
    /// `RoleBinding "ns/name"` or `ClusterRoleBinding "name"`, for reasons.
    binding: String,
}

/// A snapshot of the cluster's roles and bindings, indexed by subject.
#[derive(Debug, Default)]
pub struct Policy {
    cluster_roles: HashMap<String, Arc<Vec<Rule>>>,
    roles: HashMap<(String, String), Arc<Vec<Rule>>>,
    by_user: HashMap<String, Vec<Grant>>,
    by_group: HashMap<String, Vec<Grant>>,
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn rules_of(role: &Value) -> Vec<Rule> {
    role.get("rules")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Rule::from_json).collect())
        .unwrap_or_default()
}

/// The rules of every ClusterRole, with aggregated roles holding the rules
/// of every role their selectors match (to a fixed point, so an aggregated
/// role can itself be aggregated, as `view` into `edit` into `admin`).
pub fn aggregate(cluster_roles: &[Value]) -> HashMap<String, Vec<Rule>> {
    let mut rules: HashMap<String, Vec<Rule>> = cluster_roles
        .iter()
        .map(|r| (text(r, "/metadata/name").to_string(), rules_of(r)))
        .collect();
    let aggregated: Vec<(String, Vec<LabelSelector>)> = cluster_roles
        .iter()
        .filter_map(|r| {
            let selectors = r
                .pointer("/aggregationRule/clusterRoleSelectors")?
                .as_array()?;
            Some((
                text(r, "/metadata/name").to_string(),
                selectors.iter().map(LabelSelector::from_object).collect(),
            ))
        })
        .collect();
    for _ in 0..=aggregated.len() {
        let mut changed = false;
        for (name, selectors) in &aggregated {
            let mut add = Vec::new();
            for r in cluster_roles {
                let other = text(r, "/metadata/name");
                if other != name
                    && selectors
                        .iter()
                        .any(|s| !s.is_empty() && s.matches_object(r))
                {
                    add.extend(rules.get(other).cloned().unwrap_or_default());
                }
            }
            let own = rules.entry(name.clone()).or_default();
            for rule in add {
                if !own.contains(&rule) {
                    own.push(rule);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    rules
}

impl Policy {
    /// The policy of these ClusterRoles, Roles, ClusterRoleBindings and
    /// RoleBindings (JSON objects as stored).
    pub fn new(
        cluster_roles: &[Value],
        roles: &[Value],
        cluster_bindings: &[Value],
        bindings: &[Value],
    ) -> Self {
        let mut p = Policy {
            cluster_roles: aggregate(cluster_roles)
                .into_iter()
                .map(|(k, v)| (k, Arc::new(v)))
                .collect(),
            roles: roles
                .iter()
                .map(|r| {
                    (
                        (
                            text(r, "/metadata/namespace").to_string(),
                            text(r, "/metadata/name").to_string(),
                        ),
                        Arc::new(rules_of(r)),
                    )
                })
                .collect(),
            ..Policy::default()
        };
        for b in cluster_bindings {
            p.bind(b, None);
        }
        for b in bindings {
            p.bind(b, Some(text(b, "/metadata/namespace").to_string()));
        }
        p
    }

    fn bind(&mut self, b: &Value, namespace: Option<String>) {
        let role_name = text(b, "/roleRef/name").to_string();
        let role = match (text(b, "/roleRef/kind"), &namespace) {
            ("ClusterRole", _) => RoleRef::Cluster(role_name),
            ("Role", Some(ns)) => RoleRef::Local(ns.clone(), role_name),
            _ => return,
        };
        let name = text(b, "/metadata/name");
        let binding = match &namespace {
            Some(ns) => format!("RoleBinding \"{ns}/{name}\""),
            None => format!("ClusterRoleBinding \"{name}\""),
        };
        let grant = Grant {
            namespace: namespace.clone(),
            role,
            binding,
        };
        for s in b
            .get("subjects")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let subject = text(s, "/name");
            match text(s, "/kind") {
                "User" => self
                    .by_user
                    .entry(subject.to_string())
                    .or_default()
                    .push(grant.clone()),
                "Group" => self
                    .by_group
                    .entry(subject.to_string())
                    .or_default()
                    .push(grant.clone()),
                "ServiceAccount" => {
                    let ns = match text(s, "/namespace") {
                        "" => namespace.as_deref().unwrap_or_default(),
                        ns => ns,
                    };
                    self.by_user
                        .entry(service_account_user(ns, subject))
                        .or_default()
                        .push(grant.clone());
                }
                _ => {}
            }
        }
    }

    /// The grants that name `user` or one of its groups.
    fn grants<'a>(&'a self, user: &'a User) -> impl Iterator<Item = &'a Grant> {
        self.by_user
            .get(&user.name)
            .into_iter()
            .chain(user.groups.iter().filter_map(|g| self.by_group.get(g)))
            .flatten()
    }

    fn rules(&self, role: &RoleRef) -> Option<&Arc<Vec<Rule>>> {
        match role {
            RoleRef::Cluster(n) => self.cluster_roles.get(n),
            RoleRef::Local(ns, n) => self.roles.get(&(ns.clone(), n.clone())),
        }
    }

    /// Whether `user` may make the request `a`: the reason (the binding
    /// and role that allow it), or `None` when nothing does.
    pub fn authorize(&self, user: &User, a: &Attributes) -> Option<String> {
        if user.groups.iter().any(|g| g == MASTERS) {
            return Some(format!("RBAC: allowed for group \"{MASTERS}\""));
        }
        for g in self.grants(user) {
            if let Some(ns) = &g.namespace {
                // A RoleBinding grants only inside its namespace.
                if a.resource.as_ref().is_none_or(|r| &r.namespace != ns) {
                    continue;
                }
            }
            if self
                .rules(&g.role)
                .is_some_and(|rules| rules.iter().any(|r| r.allows(a)))
            {
                let role = match &g.role {
                    RoleRef::Cluster(n) => format!("ClusterRole \"{n}\""),
                    RoleRef::Local(_, n) => format!("Role \"{n}\""),
                };
                return Some(format!(
                    "RBAC: allowed by {} of {role} to {}",
                    g.binding, user.name
                ));
            }
        }
        None
    }

    /// Every rule that applies to `user` in `namespace`: resource rules
    /// and non-resource rules, as a SelfSubjectRulesReview lists them.
    pub fn rules_for(&self, user: &User, namespace: &str) -> (Vec<Rule>, Vec<Rule>) {
        if user.groups.iter().any(|g| g == MASTERS) {
            let star = vec!["*".to_string()];
            return (
                vec![Rule {
                    verbs: star.clone(),
                    api_groups: star.clone(),
                    resources: star.clone(),
                    ..Rule::default()
                }],
                vec![Rule {
                    verbs: star.clone(),
                    non_resource_urls: star,
                    ..Rule::default()
                }],
            );
        }
        let (mut resource, mut non_resource) = (Vec::new(), Vec::new());
        for g in self.grants(user) {
            let local = g.namespace.is_some();
            if g.namespace.as_deref().is_some_and(|ns| ns != namespace) {
                continue;
            }
            for r in self
                .rules(&g.role)
                .map(|r| r.as_slice())
                .unwrap_or_default()
            {
                let list = if r.non_resource_urls.is_empty() {
                    &mut resource
                } else if local {
                    continue;
                } else {
                    &mut non_resource
                };
                if !list.contains(r) {
                    list.push(r.clone());
                }
            }
        }
        (resource, non_resource)
    }
}

impl Policy {
    /// The rules of the role a binding names (`Role` in `namespace`, or a
    /// `ClusterRole` with its aggregated rules).
    pub fn role_rules(&self, kind: &str, namespace: &str, name: &str) -> Option<Vec<Rule>> {
        let role = match kind {
            "ClusterRole" => RoleRef::Cluster(name.into()),
            "Role" => RoleRef::Local(namespace.into(), name.into()),
            _ => return None,
        };
        self.rules(&role).map(|r| r.to_vec())
    }

    /// Whether `user` holds every permission `rules` grant, in `namespace`
    /// (empty: cluster-wide), as Kubernetes requires of whoever writes a
    /// role or a binding without the `escalate` or `bind` verb. `Err`
    /// lists the permissions not held.
    pub fn covers(&self, user: &User, rules: &[Rule], namespace: &str) -> Result<(), Vec<String>> {
        let mut missing = Vec::new();
        for rule in rules {
            for verb in &rule.verbs {
                if !rule.non_resource_urls.is_empty() {
                    for url in &rule.non_resource_urls {
                        let a = Attributes {
                            verb: verb.clone(),
                            resource: None,
                            path: url.clone(),
                        };
                        if self.authorize(user, &a).is_none() {
                            missing.push(format!(
                                "{{NonResourceURLs:[\"{url}\"], Verbs:[\"{verb}\"]}}"
                            ));
                        }
                    }
                    continue;
                }
                let names: Vec<&str> = if rule.resource_names.is_empty() {
                    vec![""]
                } else {
                    rule.resource_names.iter().map(String::as_str).collect()
                };
                for group in &rule.api_groups {
                    for resource in &rule.resources {
                        let (res, sub) = resource.split_once('/').unwrap_or((resource, ""));
                        for name in &names {
                            let a = Attributes {
                                verb: verb.clone(),
                                resource: Some(shoal_machinery::user::ResourceAttributes {
                                    group: group.clone(),
                                    version: String::new(),
                                    resource: res.into(),
                                    subresource: sub.into(),
                                    namespace: namespace.into(),
                                    name: name.to_string(),
                                }),
                                path: String::new(),
                            };
                            if self.authorize(user, &a).is_none() {
                                let named = if name.is_empty() {
                                    String::new()
                                } else {
                                    format!(" ResourceNames:[\"{name}\"]")
                                };
                                missing.push(format!(
                                    "{{APIGroups:[\"{group}\"], Resources:[\"{resource}\"],{named} Verbs:[\"{verb}\"]}}"
                                ));
                            }
                        }
                    }
                }
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing)
        }
    }
}

/// Kubernetes' words for a refused request.
pub fn forbidden_message(user: &User, a: &Attributes) -> String {
    match &a.resource {
        None => format!(
            "forbidden: User \"{}\" cannot {} path \"{}\"",
            user.name, a.verb, a.path
        ),
        Some(r) => {
            let resource = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            let what = match (&r.name, r.group.as_str()) {
                (n, "") if n.is_empty() => r.resource.clone(),
                (n, g) if n.is_empty() => format!("{}.{g}", r.resource),
                (n, "") => format!("{} \"{n}\"", r.resource),
                (n, g) => format!("{}.{g} \"{n}\"", r.resource),
            };
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace \"{}\"", r.namespace)
            };
            format!(
                "{what} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
                user.name, a.verb, r.group
            )
        }
    }
}

#[cfg(test)]
mod tests;
