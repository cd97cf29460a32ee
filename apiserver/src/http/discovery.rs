//! API discovery: legacy (`APIVersions`, `APIGroupList`, `APIResourceList`)
//! and aggregated (`apidiscovery.k8s.io/v2`).

use serde_json::{Value, json};

use crate::resources::{Registry, Resource, Sub};

/// Content type of aggregated discovery responses.
pub const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the Accept header asks for aggregated discovery v2.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|a| {
        a.contains("as=APIGroupDiscoveryList") && a.contains("v=v2") && !a.contains("v=v2beta1")
    })
}

fn sub_kind(r: &Resource, s: Sub) -> Value {
    match s {
        Sub::Scale => json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
        Sub::Binding => json!({"group": "", "version": "v1", "kind": "Binding"}),
        Sub::Log => json!({"group": "", "version": "v1", "kind": "Pod"}),
        Sub::Status => json!({"group": r.group, "version": r.version, "kind": r.kind}),
    }
}

fn sub_verbs(s: Sub) -> Vec<&'static str> {
    match s {
        Sub::Log => vec!["get"],
        Sub::Binding => vec!["create"],
        _ => vec!["get", "patch", "update"],
    }
}

/// `GET /api` (legacy).
pub fn api_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]})
}

/// The named groups served, each with its versions, preferred first.
fn groups(registry: &Registry) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    for (g, v) in registry.group_versions() {
        match out.iter_mut().find(|(name, _)| *name == g) {
            Some((_, vs)) => vs.push(v),
            None => out.push((g, vec![v])),
        }
    }
    out
}

fn api_group(group: &str, versions: &[&str]) -> Value {
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": gvs, "preferredVersion": gvs.first()})
}

/// `GET /apis` (legacy).
pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = groups(registry)
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| api_group(g, &vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}` (legacy).
pub fn group(registry: &Registry, group: &str) -> Option<Value> {
    let (g, vs) = groups(registry).into_iter().find(|(g, _)| *g == group)?;
    let mut v = api_group(g, &vs);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Some(v)
}

/// `GET /api/v1` or `/apis/{g}/{v}` (legacy).
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let rs: Vec<&Resource> = registry
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rs.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for r in rs {
        out.push(json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
            "verbs": r.verbs(), "shortNames": r.short_names, "categories": r.categories,
        }));
        for s in r.subresources {
            let k = sub_kind(r, *s);
            out.push(json!({
                "name": format!("{}/{}", r.plural, s.name()), "singularName": "", "namespaced": r.namespaced,
                "group": k["group"], "version": k["version"], "kind": k["kind"], "verbs": sub_verbs(*s),
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
    )
}

fn aggregated_group(registry: &Registry, group: &str) -> Value {
    let all = registry.all();
    let versions: Vec<Value> = registry
        .group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| {
            let resources: Vec<Value> = all
                .iter()
                .filter(|r| r.group == g && r.version == v)
                .map(|r| {
                    let subs: Vec<Value> = r
                        .subresources
                        .iter()
                        .map(|s| json!({"subresource": s.name(), "responseKind": sub_kind(r, *s), "verbs": sub_verbs(*s)}))
                        .collect();
                    json!({
                        "resource": r.plural,
                        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular,
                        "verbs": r.verbs(), "shortNames": r.short_names, "categories": r.categories,
                        "subresources": subs,
                    })
                })
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group}, "versions": versions})
}

/// `GET /api` or `/apis` (aggregated).
pub fn aggregated(registry: &Registry, core: bool) -> Value {
    let items: Vec<Value> = groups(registry)
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, _)| aggregated_group(registry, g))
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}
