//! `/openapi/v3`: one document per group/version with the kinds' schemas
//! and the operations kubectl inspects (it validates server-side when PATCH
//! operations accept `fieldValidation`).

use std::sync::OnceLock;

use bytes::Bytes;

use serde_json::{Map, Value, json};

use shoal_registry::resources::{RESOURCES, Registry, Resource, group_versions};
use shoal_registry::validation::definitions;

/// The Kubernetes version shoal serves.
pub const KUBE_VERSION: &str = "v1.32.0";

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3`.
pub fn root(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for (g, v) in registry.group_versions() {
        let p = gv_path(g, v);
        let hash = hash_of(registry, g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

/// The content hash of a group/version document (its `?hash=`).
pub fn hash_of(registry: &Registry, group: &str, version: &str) -> String {
    static HASHES: OnceLock<Vec<((&'static str, &'static str), String)>> = OnceLock::new();
    let hashes = HASHES.get_or_init(|| {
        group_versions()
            .into_iter()
            .filter_map(|(g, v)| Some(((g, v), hash(built_in(g, v)?))))
            .collect()
    });
    match hashes
        .iter()
        .find(|((g, v), _)| *g == group && *v == version)
    {
        Some((_, h)) => h.clone(),
        None => document(registry, group, version)
            .map(|d| hash(&d))
            .unwrap_or_default(),
    }
}

fn hash(doc: &[u8]) -> String {
    format!("{:016X}", fxhash(doc))
}

fn fxhash(s: &[u8]) -> u64 {
    s.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

fn param(name: &str, location: &str) -> Value {
    json!({"name": name, "in": location, "schema": {"type": "string", "uniqueItems": true}})
}

/// The document of `group`/`version` as JSON, if served.
pub fn document(registry: &Registry, group: &str, version: &str) -> Option<Bytes> {
    if let Some(doc) = built_in(group, version) {
        return Some(doc.clone());
    }
    let custom: Vec<&Resource> = registry
        .custom()
        .iter()
        .copied()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if custom.is_empty() {
        return None;
    }
    serde_json::to_vec(&custom_document(&custom))
        .ok()
        .map(Bytes::from)
}

/// A built-in group/version's document, built on first use and kept as
/// JSON (a third of the memory it takes as a tree of values).
fn built_in(group: &str, version: &str) -> Option<&'static Bytes> {
    static DOCS: OnceLock<Vec<((String, String), Bytes)>> = OnceLock::new();
    let docs = DOCS.get_or_init(|| {
        group_versions()
            .into_iter()
            .map(|(g, v)| {
                let json = serde_json::to_vec(&build(g, v)).unwrap_or_default();
                ((g.to_string(), v.to_string()), Bytes::from(json))
            })
            .collect()
    });
    docs.iter()
        .find(|((g, v), _)| g == group && v == version)
        .map(|(_, d)| d)
}

/// The definition name Kubernetes gives a custom kind:
/// `com.example.stable.v1.CronTab`.
fn custom_schema_name(r: &Resource) -> String {
    let reversed: Vec<&str> = r.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), r.version, r.kind)
}

/// The definitions `name` refers to, itself included.
fn with_references(name: &str, out: &mut Map<String, Value>) {
    if out.contains_key(name) {
        return;
    }
    let Some(def) = definitions().get(name) else {
        return;
    };
    out.insert(name.to_string(), def.clone());
    let mut refs = Vec::new();
    collect_refs(def, &mut refs);
    for r in refs {
        with_references(&r, out);
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                out.push(r.rsplit('/').next().unwrap_or(r).to_string());
            }
            m.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

fn custom_document(rs: &[&Resource]) -> Value {
    const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
    let mut schemas = Map::new();
    with_references(META, &mut schemas);
    let mut paths = Map::new();
    for r in rs {
        let Some(custom) = r.custom else { continue };
        let name = custom_schema_name(r);
        let mut schema = custom.schema.clone();
        if let Some(m) = schema.as_object_mut() {
            let props = m
                .entry("properties")
                .or_insert_with(|| json!({}))
                .as_object_mut();
            if let Some(props) = props {
                props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values."}));
                props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase."}));
                props.insert("metadata".into(), json!({"allOf": [{"$ref": format!("#/components/schemas/{META}")}], "description": "Standard object's metadata."}));
            }
            m.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": r.group, "version": r.version, "kind": r.kind}]),
            );
        }
        schemas.insert(name.clone(), schema);
        add_paths(&mut paths, r, &name);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

fn build(group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let mut schemas: Map<String, Value> = definitions()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        if let Some(Value::Object(s)) = schemas.get_mut(r.schema_name) {
            s.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
        }
        add_paths(&mut paths, r, r.schema_name);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// The operations on `r`'s collection and items, whose bodies are the
/// schema `schema_name`.
fn add_paths(paths: &mut Map<String, Value>, r: &Resource, schema_name: &str) {
    let (group, version) = (r.group, r.version);
    let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let schema_ref = json!({"$ref": format!("#/components/schemas/{schema_name}")});
    let body = json!({"content": {"application/json": {"schema": schema_ref}}, "required": true});
    let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref}}}});
    let op = |action: &str, extra: &[&str]| {
        let mut params: Vec<Value> = extra.iter().map(|p| param(p, "query")).collect();
        params.push(param("pretty", "query"));
        json!({
            "operationId": format!("{action}{}", r.kind), "tags": [gv_path(group, version)],
            "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
            "parameters": params, "responses": ok,
        })
    };
    let mut item = Map::new();
    item.insert("get".into(), op("get", &[]));
    let mut put = op("put", &["dryRun", "fieldManager", "fieldValidation"]);
    put["requestBody"] = body.clone();
    item.insert("put".into(), put);
    let mut patch = op(
        "patch",
        &["dryRun", "fieldManager", "fieldValidation", "force"],
    );
    // kubectl's client-side apply sends a strategic merge patch only where
    // the operation lists it, which custom resources do not.
    let mut patch_types = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ];
    if r.custom.is_none() {
        patch_types.push("application/strategic-merge-patch+json");
    }
    let content: Map<String, Value> = patch_types
        .into_iter()
        .map(|t| (t.to_string(), json!({"schema": {"type": "object"}})))
        .collect();
    patch["requestBody"] = json!({"content": content, "required": true});
    item.insert("patch".into(), patch);
    item.insert(
        "delete".into(),
        op(
            "delete",
            &["dryRun", "gracePeriodSeconds", "propagationPolicy"],
        ),
    );
    let mut coll = Map::new();
    coll.insert(
        "get".into(),
        op(
            "list",
            &[
                "labelSelector",
                "fieldSelector",
                "limit",
                "continue",
                "watch",
                "resourceVersion",
            ],
        ),
    );
    let mut post = op("post", &["dryRun", "fieldManager", "fieldValidation"]);
    post["requestBody"] = body;
    coll.insert("post".into(), post);
    fn verb(method: &str, item: bool) -> &str {
        match method {
            "get" if item => "get",
            "get" => "list",
            "put" => "update",
            "post" => "create",
            other => other,
        }
    }
    item.retain(|m, _| r.verbs().contains(&verb(m, true)));
    coll.retain(|m, _| r.verbs().contains(&verb(m, false)));
    let base = format!("/{}", gv_path(group, version));
    let (item_path, coll_path) = if r.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural),
            format!("{base}/namespaces/{{namespace}}/{}", r.plural),
        )
    } else {
        (
            format!("{base}/{}/{{name}}", r.plural),
            format!("{base}/{}", r.plural),
        )
    };
    if !item.is_empty() {
        paths.insert(item_path, Value::Object(item));
    }
    paths.insert(coll_path, Value::Object(coll));
}
