//! CustomResourceDefinitions: the resources a definition serves, the checks
//! and defaults of definitions, and (in `schema`) the structural schemas
//! custom objects are pruned, defaulted and validated with.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use schemars::schema::Schema;
use serde_json::{Value, json};

pub use crate::resources::custom::{Column, Custom, ScalePaths, version_priority};
use crate::resources::{Resource, Sub};
use shoal_machinery::error::Cause;
use shoal_machinery::names::is_dns_label;

/// The finalizer that holds a definition until its objects are deleted.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn leak_strs(v: &Value) -> &'static [&'static str] {
    let strs: Vec<&'static str> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(leak)
        .collect();
    Box::leak(strs.into_boxed_slice())
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The resource a definition serves for one of its versions. Each distinct
/// served shape is built once and kept for the life of the process (the
/// request paths hold `&'static Resource`), so memory grows only with the
/// number of different definitions ever served, not with writes.
fn intern(crd: &Value, version: &Value) -> &'static Resource {
    static INTERNED: OnceLock<Mutex<HashMap<String, &'static Resource>>> = OnceLock::new();
    let terminating = crd.pointer("/metadata/deletionTimestamp").is_some();
    let key = json!([
        crd["metadata"]["name"],
        crd["spec"],
        version["name"],
        terminating
    ])
    .to_string();
    let mut interned = INTERNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    interned
        .entry(key)
        .or_insert_with(|| Box::leak(Box::new(build(crd, version, terminating))))
}

fn build(crd: &Value, version: &Value, terminating: bool) -> Resource {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let kind = str_at(names, "/kind");
    let singular = match str_at(names, "/singular") {
        "" => kind.to_lowercase(),
        s => s.to_string(),
    };
    let subs = &version["subresources"];
    let mut subresources = Vec::new();
    if subs.get("status").is_some_and(Value::is_object) {
        subresources.push(Sub::Status);
    }
    let scale = subs
        .get("scale")
        .filter(|s| s.is_object())
        .map(|s| ScalePaths {
            spec_replicas: str_at(s, "/specReplicasPath").to_string(),
            status_replicas: str_at(s, "/statusReplicasPath").to_string(),
            label_selector: s
                .get("labelSelectorPath")
                .and_then(Value::as_str)
                .map(String::from),
        });
    if scale.is_some() {
        subresources.push(Sub::Scale);
    }
    let columns = version["additionalPrinterColumns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| Column {
            name: str_at(c, "/name").to_string(),
            kind: str_at(c, "/type").to_string(),
            format: str_at(c, "/format").to_string(),
            description: str_at(c, "/description").to_string(),
            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
            path: str_at(c, "/jsonPath").to_string(),
        })
        .collect();
    let custom = Custom {
        definition: shoal_machinery::meta::name(crd).to_string(),
        schema: version
            .pointer("/schema/openAPIV3Schema")
            .cloned()
            .unwrap_or_else(
                || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            ),
        columns,
        scale,
        terminating,
        versions: spec["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["served"] != json!(false))
            .filter_map(|v| v["name"].as_str().map(String::from))
            .collect(),
    };
    Resource {
        group: leak(str_at(spec, "/group")),
        version: leak(str_at(version, "/name")),
        kind: leak(kind),
        plural: leak(str_at(names, "/plural")),
        singular: leak(&singular),
        namespaced: str_at(spec, "/scope") != "Cluster",
        short_names: leak_strs(&names["shortNames"]),
        categories: leak_strs(&names["categories"]),
        subresources: Box::leak(subresources.into_boxed_slice()),
        schema: |_| Schema::Bool(true),
        schema_name: "",
        decode: |_| Ok(()),
        custom: Some(Box::leak(Box::new(custom))),
        view: None,
        verbs: crate::resources::ALL_VERBS,
        stored: true,
    }
}

/// The resources `crds` serve: each served version of each definition
/// whose names are accepted.
pub fn served(crds: &[&Value]) -> Vec<&'static Resource> {
    let mut out = Vec::new();
    for crd in crds {
        let accepted = crd
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_none_or(|cs| {
                !cs.iter()
                    .any(|c| c["type"] == "NamesAccepted" && c["status"] == "False")
            });
        if !accepted {
            continue;
        }
        for v in crd["spec"]["versions"].as_array().into_iter().flatten() {
            if v["served"] != json!(false) {
                out.push(intern(crd, v));
            }
        }
    }
    out
}

/// The defaults Kubernetes gives a definition.
pub fn default_definition(crd: &mut Value) {
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if names
            .get("singular")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            names.insert("singular".into(), json!(kind.to_lowercase()));
        }
        if names
            .get("listKind")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            names.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    spec.entry("conversion")
        .or_insert_with(|| json!({"strategy": "None"}));
    if let Some(versions) = spec.get_mut("versions").and_then(Value::as_array_mut) {
        for c in versions
            .iter_mut()
            .filter_map(|v| v.get_mut("additionalPrinterColumns"))
            .filter_map(Value::as_array_mut)
            .flatten()
        {
            if let Some(c) = c.as_object_mut() {
                c.entry("priority").or_insert(json!(0));
            }
        }
    }
}

fn invalid(out: &mut Vec<Cause>, field: &str, value: &Value, why: &str) {
    out.push(Cause {
        kind: "FieldValueInvalid",
        field: field.into(),
        message: format!("Invalid value: {value}: {why}"),
    });
}

fn required(out: &mut Vec<Cause>, field: &str, why: &str) {
    out.push(Cause {
        kind: "FieldValueRequired",
        field: field.into(),
        message: if why.is_empty() {
            "Required value".into()
        } else {
            format!("Required value: {why}")
        },
    });
}

/// The semantic checks of a definition.
pub fn validate_definition(crd: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let spec = &crd["spec"];
    let group = str_at(spec, "/group");
    let plural = str_at(spec, "/names/plural");
    if group.is_empty() {
        required(&mut out, "spec.group", "");
    } else if !group.contains('.') || !group.split('.').all(is_dns_label) {
        invalid(
            &mut out,
            "spec.group",
            &json!(group),
            "should be a domain with at least one dot",
        );
    } else if crate::resources::RESOURCES.iter().any(|r| r.group == group) {
        invalid(
            &mut out,
            "spec.group",
            &json!(group),
            "the group is served by the API server itself",
        );
    }
    let name = shoal_machinery::meta::name(crd);
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        invalid(
            &mut out,
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        );
    }
    match str_at(spec, "/scope") {
        "Namespaced" | "Cluster" => {}
        "" => required(&mut out, "spec.scope", ""),
        other => out.push(Cause {
            kind: "FieldValueNotSupported",
            field: "spec.scope".into(),
            message: format!(
                "Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
            ),
        }),
    }
    for (field, value) in [
        ("plural", plural),
        ("singular", str_at(spec, "/names/singular")),
    ] {
        if value.is_empty() && field == "plural" {
            required(&mut out, "spec.names.plural", "");
        } else if !value.is_empty() && !is_dns_label(value) {
            invalid(
                &mut out,
                &format!("spec.names.{field}"),
                &json!(value),
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
            );
        }
    }
    if str_at(spec, "/names/kind").is_empty() {
        required(&mut out, "spec.names.kind", "");
    }
    let versions = spec["versions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if versions.is_empty() {
        required(
            &mut out,
            "spec.versions",
            "must have exactly one version marked as storage version",
        );
    } else if versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .count()
        != 1
    {
        invalid(
            &mut out,
            "spec.versions",
            &json!(versions.len()),
            "must have exactly one version marked as storage version",
        );
    }
    for (i, v) in versions.iter().enumerate() {
        let at = format!("spec.versions[{i}]");
        let vname = str_at(v, "/name");
        if !is_dns_label(vname) {
            invalid(
                &mut out,
                &format!("{at}.name"),
                &json!(vname),
                "must be a DNS-1035 label",
            );
        }
        match v.pointer("/schema/openAPIV3Schema") {
            None => required(
                &mut out,
                &format!("{at}.schema.openAPIV3Schema"),
                "schemas are required",
            ),
            Some(s) => shoal_machinery::schema::check_structural(
                s,
                &format!("{at}.schema.openAPIV3Schema"),
                true,
                &mut out,
            ),
        }
        let columns = v.get("additionalPrinterColumns").and_then(Value::as_array);
        for (j, c) in columns.into_iter().flatten().enumerate() {
            let path = str_at(c, "/jsonPath");
            let field = format!("{at}.additionalPrinterColumns[{j}].jsonPath");
            if path.is_empty() {
                required(&mut out, &field, "");
            } else if !shoal_machinery::jsonpath::valid(path) {
                invalid(&mut out, &field, &json!(path), "must be a simple json path");
            }
        }
        if let Some(scale) = v.pointer("/subresources/scale") {
            for p in ["specReplicasPath", "statusReplicasPath"] {
                if !str_at(scale, &format!("/{p}")).starts_with('.') {
                    invalid(
                        &mut out,
                        &format!("{at}.subresources.scale.{p}"),
                        &scale[p],
                        "should be a JSON path under .spec or .status",
                    );
                }
            }
        }
    }
    out
}

/// The status a definition has once its resources are served.
pub fn established_status(crd: &Value, now: &str) -> Value {
    let spec = &crd["spec"];
    let mut names = spec["names"].clone();
    if let Some(n) = names.as_object_mut() {
        n.retain(|k, _| {
            [
                "plural",
                "singular",
                "kind",
                "listKind",
                "shortNames",
                "categories",
            ]
            .contains(&k.as_str())
        });
    }
    let storage: Vec<Value> = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == json!(true))
        .map(|v| v["name"].clone())
        .collect();
    let mut stored: Vec<Value> = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for v in storage {
        if !stored.contains(&v) {
            stored.push(v);
        }
    }
    let keep_time = |ty: &str| {
        crd.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == ty && c["status"] == "True"))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now))
    };
    let mut conditions = vec![
        json!({"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": keep_time("NamesAccepted")}),
        json!({"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": keep_time("Established")}),
    ];
    if crd.pointer("/metadata/deletionTimestamp").is_some() {
        conditions.push(json!({"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress", "lastTransitionTime": keep_time("Terminating")}));
    }
    json!({"acceptedNames": names, "conditions": conditions, "storedVersions": stored})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crontab() -> Value {
        json!({
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}},
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}}},
                    {"name": "v1beta1", "served": false, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}},
                ],
            },
        })
    }

    #[test]
    fn a_definition_serves_its_served_versions() {
        let mut crd = crontab();
        default_definition(&mut crd);
        assert_eq!(crd["spec"]["names"]["singular"], "crontab");
        assert_eq!(crd["spec"]["names"]["listKind"], "CronTabList");
        assert!(
            validate_definition(&crd).is_empty(),
            "{:?}",
            validate_definition(&crd)
        );
        let rs = served(&[&crd]);
        assert_eq!(rs.len(), 1);
        let r = rs[0];
        assert_eq!(
            (r.group, r.version, r.plural, r.kind),
            ("stable.example.com", "v1", "crontabs", "CronTab")
        );
        assert_eq!(r.short_names, ["ct"]);
        assert!(r.namespaced && r.has(Sub::Status) && r.has(Sub::Scale));
        assert_eq!(r.builtin_kind(), "");
        // The same definition is the same resource.
        assert!(std::ptr::eq(r, served(&[&crd])[0]));
    }

    #[test]
    fn bad_definitions_are_refused_with_causes() {
        let mut crd = crontab();
        crd["metadata"]["name"] = json!("wrong");
        crd["spec"]["group"] = json!("apps");
        crd["spec"]["versions"][1]["storage"] = json!(true);
        let fields: Vec<String> = validate_definition(&crd)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["spec.group", "metadata.name", "spec.versions"]);
        let mut crd = crontab();
        crd["spec"]["versions"][0]["additionalPrinterColumns"] = json!([
            {"name": "Ok", "type": "string", "jsonPath": ".spec['é']"},
            {"name": "Bad", "type": "string", "jsonPath": ".spec['a'é]"},
            {"name": "None", "type": "string"}]);
        let fields: Vec<String> = validate_definition(&crd)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.versions[0].additionalPrinterColumns[1].jsonPath",
                "spec.versions[0].additionalPrinterColumns[2].jsonPath"
            ]
        );
    }

    #[test]
    fn versions_sort_as_kubernetes_sorts_them() {
        let mut vs = vec![
            "v1alpha1", "v1", "foo", "v2beta1", "v2", "v1beta2", "v1beta1",
        ];
        vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(
            vs,
            [
                "v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "foo"
            ]
        );
    }
}
