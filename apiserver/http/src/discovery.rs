//! API discovery: legacy (`APIVersions`, `APIGroupList`, `APIResourceList`)
//! and aggregated (`apidiscovery.k8s.io/v2`).

use serde_json::{Value, json};

use shoal_registry::resources::{Registry, Resource, Sub};

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
        Sub::Eviction => json!({"group": "policy", "version": "v1", "kind": "Eviction"}),
        Sub::Log | Sub::EphemeralContainers => json!({"group": "", "version": "v1", "kind": "Pod"}),
        Sub::Exec => json!({"group": "", "version": "v1", "kind": "PodExecOptions"}),
        Sub::Attach => json!({"group": "", "version": "v1", "kind": "PodAttachOptions"}),
        Sub::PortForward => {
            json!({"group": "", "version": "v1", "kind": "PodPortForwardOptions"})
        }
        Sub::Token => {
            json!({"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"})
        }
        Sub::Proxy => {
            json!({"group": "", "version": "v1", "kind": format!("{}ProxyOptions", r.kind)})
        }
        Sub::Status | Sub::Approval => {
            json!({"group": r.group, "version": r.version, "kind": r.kind})
        }
    }
}

fn sub_verbs(s: Sub) -> Vec<&'static str> {
    match s {
        Sub::Log => vec!["get"],
        Sub::Binding | Sub::Token | Sub::Eviction => vec!["create"],
        Sub::Exec | Sub::Attach | Sub::PortForward => vec!["create", "get"],
        Sub::Proxy => vec!["create", "delete", "get", "patch", "update"],
        Sub::EphemeralContainers => vec!["get", "patch", "update"],
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

/// Groups other servers serve through APIServices, each with its
/// versions, preferred first.
pub type RemoteGroups = [(String, Vec<String>)];

/// `GET /apis` (legacy): the groups served here, then those of
/// aggregated API servers.
pub fn group_list(registry: &Registry, remote: &RemoteGroups) -> Value {
    // A group served here that an APIService backs (the resource
    // metrics) is listed once, as the APIService's.
    let mut groups: Vec<Value> = groups(registry)
        .into_iter()
        .filter(|(g, _)| !g.is_empty() && !remote.iter().any(|(r, _)| r == g))
        .map(|(g, vs)| api_group(g, &vs))
        .collect();
    groups.extend(remote.iter().map(|(g, vs)| {
        let vs: Vec<&str> = vs.iter().map(String::as_str).collect();
        api_group(g, &vs)
    }));
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}` (legacy).
pub fn group(registry: &Registry, remote: &RemoteGroups, group: &str) -> Option<Value> {
    let local = groups(registry)
        .into_iter()
        .find(|(g, _)| *g == group && !remote.iter().any(|(r, _)| r == g));
    let mut v = match local {
        Some((g, vs)) => api_group(g, &vs),
        None => {
            let (g, vs) = remote.iter().find(|(g, _)| g == group)?;
            api_group(g, &vs.iter().map(String::as_str).collect::<Vec<_>>())
        }
    };
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

/// An aggregated API server's group in aggregated discovery, from the
/// `APIResourceList` each of its versions answered with.
fn remote_group(group: &str, versions: &[(&str, &Value)]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|(v, list)| {
            let entries = list["resources"].as_array().cloned().unwrap_or_default();
            let resources: Vec<Value> = entries
                .iter()
                .filter_map(|r| {
                    let name = r["name"].as_str()?;
                    if name.contains('/') {
                        return None;
                    }
                    let prefix = format!("{name}/");
                    let subs: Vec<Value> = entries
                        .iter()
                        .filter_map(|s| {
                            let sub = s["name"].as_str()?.strip_prefix(&prefix)?;
                            Some(json!({"subresource": sub, "verbs": s["verbs"],
                                "responseKind": {"group": s.get("group").unwrap_or(&json!(group)),
                                    "version": s.get("version").unwrap_or(&json!(v)), "kind": s["kind"]}}))
                        })
                        .collect();
                    let namespaced = r["namespaced"].as_bool().unwrap_or(false);
                    Some(json!({
                        "resource": name,
                        "responseKind": {"group": group, "version": v, "kind": r["kind"]},
                        "scope": if namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r["singularName"], "verbs": r["verbs"],
                        "shortNames": r.get("shortNames"), "categories": r.get("categories"),
                        "subresources": subs,
                    }))
                })
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group}, "versions": versions})
}

/// `GET /api` or `/apis` (aggregated), with the groups of aggregated API
/// servers as they last answered discovery.
pub fn aggregated(
    registry: &Registry,
    core: bool,
    remote: &std::collections::BTreeMap<(String, String), Value>,
) -> Value {
    let mut items: Vec<Value> = groups(registry)
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core && !remote.keys().any(|(r, _)| r == g))
        .map(|(g, _)| aggregated_group(registry, g))
        .collect();
    let mut by_group: Vec<(&str, Vec<(&str, &Value)>)> = Vec::new();
    for ((g, v), list) in remote {
        match by_group.iter_mut().find(|(name, _)| name == g) {
            Some((_, vs)) => vs.push((v, list)),
            None => by_group.push((g, vec![(v, list)])),
        }
    }
    items.extend(by_group.iter().map(|(g, vs)| remote_group(g, vs)));
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}
