//! One policy rule and whether it covers a request, with Kubernetes'
//! wildcards: `*` verbs, groups and resources, `*/sub` and `res/*`
//! resources, resource names, and `/path/*` non-resource URLs.

use serde_json::{Value, json};

use shoal_machinery::meta::strings;

use shoal_machinery::user::{Attributes, ResourceAttributes};

/// A rule of a Role or ClusterRole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    /// Verbs, or `*`.
    pub verbs: Vec<String>,
    /// API groups (`""` for core), or `*`.
    pub api_groups: Vec<String>,
    /// Resources, `res/sub`, `*/sub` or `*`.
    pub resources: Vec<String>,
    /// Object names the rule is limited to; empty for all.
    pub resource_names: Vec<String>,
    /// Non-resource paths, exact or a prefix ending in `*`.
    pub non_resource_urls: Vec<String>,
}

impl Rule {
    /// A rule from its JSON (`rules[]` of a role).
    pub fn from_json(v: &Value) -> Self {
        Self {
            verbs: strings(v, "verbs"),
            api_groups: strings(v, "apiGroups"),
            resources: strings(v, "resources"),
            resource_names: strings(v, "resourceNames"),
            non_resource_urls: strings(v, "nonResourceURLs"),
        }
    }

    /// The rule as a role's `rules[]` entry (empty lists left out).
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (k, v) in [
            ("verbs", &self.verbs),
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ] {
            if !v.is_empty() || k == "verbs" {
                m.insert(k.into(), json!(v));
            }
        }
        Value::Object(m)
    }

    /// Whether the rule allows the request.
    pub fn allows(&self, a: &Attributes) -> bool {
        if !any_or(&self.verbs, &a.verb) {
            return false;
        }
        match &a.resource {
            Some(r) => self.allows_resource(r),
            None => self
                .non_resource_urls
                .iter()
                .any(|u| url_matches(u, &a.path)),
        }
    }

    fn allows_resource(&self, r: &ResourceAttributes) -> bool {
        any_or(&self.api_groups, &r.group)
            && self.resources.iter().any(|res| resource_matches(res, r))
            && (self.resource_names.is_empty()
                || (!r.name.is_empty() && self.resource_names.contains(&r.name)))
    }
}

/// Whether `list` holds `value` or `*`.
fn any_or(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

/// A rule's resource against the requested resource and subresource.
fn resource_matches(rule: &str, r: &ResourceAttributes) -> bool {
    if rule == "*" {
        return true;
    }
    if r.subresource.is_empty() {
        return rule == r.resource;
    }
    match rule.split_once('/') {
        Some((res, sub)) => {
            (res == r.resource || res == "*") && (sub == r.subresource || sub == "*")
        }
        None => false,
    }
}

/// A non-resource URL rule: exact, `*`, or a prefix ending in `*`.
fn url_matches(rule: &str, path: &str) -> bool {
    rule == "*"
        || rule == path
        || rule
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(v: Value) -> Rule {
        Rule::from_json(&v)
    }

    fn res(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource: Some(ResourceAttributes {
                group: group.into(),
                version: "v1".into(),
                resource: resource.into(),
                subresource: sub.into(),
                namespace: "ns".into(),
                name: name.into(),
            }),
            path: String::new(),
        }
    }

    #[test]
    fn verbs_groups_resources_and_names() {
        let r = rule(
            json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]}),
        );
        assert!(r.allows(&res("get", "", "pods", "", "a")));
        assert!(r.allows(&res("get", "", "pods", "log", "a")));
        assert!(!r.allows(&res("get", "", "pods", "exec", "a")));
        assert!(!r.allows(&res("delete", "", "pods", "", "a")));
        assert!(!r.allows(&res("get", "apps", "pods", "", "a")));
        let all = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
        assert!(all.allows(&res("patch", "apps", "deployments", "scale", "d")));
        let scale =
            rule(json!({"verbs": ["update"], "apiGroups": ["apps"], "resources": ["*/scale"]}));
        assert!(scale.allows(&res("update", "apps", "deployments", "scale", "d")));
        assert!(!scale.allows(&res("update", "apps", "deployments", "", "d")));
        let named = rule(
            json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["one"]}),
        );
        assert!(named.allows(&res("get", "", "configmaps", "", "one")));
        assert!(!named.allows(&res("get", "", "configmaps", "", "two")));
        assert!(!named.allows(&res("list", "", "configmaps", "", "")));
    }

    #[test]
    fn non_resource_urls() {
        let r = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]}));
        let get = |p: &str| Attributes {
            verb: "get".into(),
            resource: None,
            path: p.into(),
        };
        assert!(r.allows(&get("/healthz")));
        assert!(r.allows(&get("/apis/apps/v1")));
        assert!(!r.allows(&get("/metrics")));
        assert!(!r.allows(&res("get", "", "healthz", "", "")));
    }
}
