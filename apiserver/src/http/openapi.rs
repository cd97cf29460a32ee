//! `/openapi/v3`: one document per group/version with the kinds' schemas
//! and the operations kubectl inspects (it validates server-side when PATCH
//! operations accept `fieldValidation`).

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::resources::{RESOURCES, group_versions};
use crate::validation::definitions;

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
pub fn root() -> &'static Value {
    static ROOT: OnceLock<Value> = OnceLock::new();
    ROOT.get_or_init(|| {
        let mut paths = Map::new();
        for (g, v) in group_versions() {
            let p = gv_path(g, v);
            let hash = hash_of(g, v);
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
            );
        }
        json!({"paths": paths})
    })
}

/// The content hash of a group/version document (its `?hash=`).
pub fn hash_of(group: &str, version: &str) -> String {
    static HASHES: OnceLock<Vec<((&'static str, &'static str), String)>> = OnceLock::new();
    let hashes = HASHES.get_or_init(|| {
        group_versions()
            .into_iter()
            .map(|(g, v)| {
                (
                    (g, v),
                    format!(
                        "{:016X}",
                        fxhash(&serde_json::to_string(document(g, v)).unwrap_or_default())
                    ),
                )
            })
            .collect()
    });
    hashes
        .iter()
        .find(|((g, v), _)| *g == group && *v == version)
        .map(|(_, h)| h.clone())
        .unwrap_or_default()
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

fn param(name: &str, location: &str) -> Value {
    json!({"name": name, "in": location, "schema": {"type": "string", "uniqueItems": true}})
}

/// The document of `group`/`version`, if served.
pub fn document(group: &str, version: &str) -> &'static Value {
    static DOCS: OnceLock<Vec<((String, String), Value)>> = OnceLock::new();
    let docs = DOCS.get_or_init(|| {
        group_versions()
            .into_iter()
            .map(|(g, v)| ((g.to_string(), v.to_string()), build(g, v)))
            .collect()
    });
    static EMPTY: Value = Value::Null;
    docs.iter()
        .find(|((g, v), _)| g == group && v == version)
        .map(|(_, d)| d)
        .unwrap_or(&EMPTY)
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
            s.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([gvk.clone()]),
            );
        }
        let schema_ref = json!({"$ref": format!("#/components/schemas/{}", r.schema_name)});
        let body =
            json!({"content": {"application/json": {"schema": schema_ref}}, "required": true});
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
        patch["requestBody"] = json!({"content": {
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
            "application/strategic-merge-patch+json": {"schema": {"type": "object"}},
        }, "required": true});
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
        paths.insert(item_path, Value::Object(item));
        paths.insert(coll_path, Value::Object(coll));
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}
