//! Request validation: decoding against the kind's schema (type errors,
//! unknown fields for `fieldValidation`) and the semantic checks that give
//! `422 Invalid`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use schemars::r#gen::{SchemaGenerator, SchemaSettings};
use serde_json::Value;

use crate::kinds;
use crate::resources::{RESOURCES, Resource};
use shoal_machinery::error::{ApiError, Causes, Result};
use shoal_machinery::names::{is_label_key, is_label_value};

/// The OpenAPI definitions of every served kind, keyed by definition name.
pub fn definitions() -> &'static BTreeMap<String, Value> {
    static DEFS: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    DEFS.get_or_init(|| {
        let mut g = SchemaGenerator::new(SchemaSettings::openapi3());
        for r in RESOURCES {
            (r.schema)(&mut g);
        }
        let mut defs: BTreeMap<String, Value> = g
            .take_definitions()
            .into_iter()
            .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or(Value::Null)))
            .collect();
        add_patch_extensions(&mut defs);
        defs
    })
}

fn add_patch_extensions(defs: &mut BTreeMap<String, Value>) {
    for (def, prop, key) in shoal_machinery::merge_keys::LISTS {
        if let Some(p) = defs
            .get_mut(*def)
            .and_then(|d| d.pointer_mut(&format!("/properties/{prop}")))
            .and_then(Value::as_object_mut)
        {
            p.insert(
                "x-kubernetes-patch-merge-key".into(),
                Value::String((*key).into()),
            );
            p.insert(
                "x-kubernetes-patch-strategy".into(),
                Value::String("merge".into()),
            );
            p.insert("x-kubernetes-list-type".into(), Value::String("map".into()));
            p.insert(
                "x-kubernetes-list-map-keys".into(),
                serde_json::json!([key]),
            );
        }
    }
    if let Some(p) = defs
        .get_mut("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        .and_then(|d| d.pointer_mut("/properties/finalizers"))
        .and_then(Value::as_object_mut)
    {
        p.insert(
            "x-kubernetes-patch-strategy".into(),
            Value::String("merge".into()),
        );
        p.insert("x-kubernetes-list-type".into(), Value::String("set".into()));
    }
}

fn resolve(schema: &Value) -> &Value {
    let mut s = schema;
    for _ in 0..8 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => match definitions().get(r.rsplit('/').next().unwrap_or(r)) {
                Some(d) => s = d,
                None => return s,
            },
            None => {
                if let Some(inner) = s
                    .get("allOf")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                {
                    s = inner;
                } else {
                    return s;
                }
            }
        }
    }
    s
}

fn unknown_fields(value: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    let schema = resolve(schema);
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in map {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match props.get(k) {
                        Some(sub) => unknown_fields(v, sub, &p, out),
                        None => out.push(p),
                    }
                }
            } else if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for (k, v) in map {
                    unknown_fields(v, extra, &format!("{path}.{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    unknown_fields(v, item_schema, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// How to treat fields the schema does not know (`?fieldValidation=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them with a `Warning` header.
    Warn,
    /// Reject the request.
    Strict,
}

impl FieldValidation {
    /// Parses the query value; kubectl's default is Strict, the server's Warn.
    pub fn parse(s: Option<&str>) -> Result<Self> {
        match s {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some("Strict") => Ok(Self::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation {other} is invalid: valid values are \"Ignore\", \"Warn\" and \"Strict\""
            ))),
        }
    }
}

/// Decodes `obj` as the resource's kind. Returns the warnings for unknown
/// fields (empty under Strict, which fails instead).
pub fn decode(r: &Resource, obj: &Value, mode: FieldValidation) -> Result<Vec<String>> {
    let cannot = |detail: String| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {detail}",
            r.kind, r.version, r.kind
        ))
    };
    if !obj.is_object() {
        return Err(cannot("the object is not a JSON object".into()));
    }
    (r.decode)(obj).map_err(cannot)?;
    if mode == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    let mut unknown = Vec::new();
    if let Some(custom) = r.custom {
        shoal_machinery::schema::prune(&custom.schema, &mut obj.clone(), &mut unknown);
    } else if let Some(schema) = definitions().get(r.schema_name) {
        unknown_fields(obj, schema, "", &mut unknown);
    }
    unknown.retain(|f| f != "status" && !f.starts_with("metadata.managedFields"));
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match mode {
        FieldValidation::Strict => Err(cannot(format!(
            "strict decoding error: {}",
            list.join(", ")
        ))),
        _ => Ok(list),
    }
}

/// Semantic checks of an object about to be stored.
pub fn validate(r: &Resource, obj: &Value) -> Result<()> {
    let mut c = Causes::default();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let strategy = kinds::of(r);
    if name.is_empty() {
        c.required("metadata.name", "name or generateName is required");
    } else if let Some(why) = strategy.name_rule.refuse(name) {
        c.invalid("metadata.name", &Value::String(name.into()), why);
    }
    for field in ["labels", "annotations"] {
        if let Some(map) = obj
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
        {
            for (k, v) in map {
                if !is_label_key(k) {
                    c.invalid(
                        format!("metadata.{field}"),
                        &Value::String(k.clone()),
                        "name part must consist of alphanumeric characters, '-', '_' or '.'",
                    );
                }
                if field == "labels" && !v.as_str().is_some_and(is_label_value) {
                    c.invalid("metadata.labels".to_string(), v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character");
                }
            }
        }
    }
    if let Some(custom) = r.custom {
        let causes = shoal_machinery::schema::validate(&custom.schema, obj);
        // Rules read values of the schema's types: only a well-typed
        // object is checked against them.
        if causes.is_empty() {
            c.0.extend(shoal_machinery::cel::check(&custom.schema, obj, None));
        }
        c.0.extend(causes);
    }
    (strategy.validate)(obj, &mut c);
    finish(c, r, obj)
}

/// `Ok` without causes, otherwise 422 `Invalid` naming `obj`.
fn finish(c: Causes, r: &Resource, obj: &Value) -> Result<()> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    c.into_result(r.group, r.kind, name)
}

/// Fields an update may not change: 422 with `field is immutable`.
pub fn immutable(r: &Resource, old: &Value, new: &Value) -> Result<()> {
    if let Some(custom) = r.custom {
        // Transition rules (`oldSelf`) of the definition's schema.
        let causes = shoal_machinery::cel::check(&custom.schema, new, Some(old));
        return finish(Causes(causes), r, new);
    }
    let fields = kinds::of(r).immutable;
    if fields.is_empty() {
        return Ok(());
    }
    let mut c = Causes::default();
    for f in fields {
        if old.pointer(f) != new.pointer(f) {
            let path = f.trim_start_matches('/').replace('/', ".");
            c.invalid(
                path,
                new.pointer(f).unwrap_or(&Value::Null),
                "field is immutable",
            );
        }
    }
    finish(c, r, new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;
    use serde_json::json;

    #[test]
    fn unknown_fields_per_mode() {
        let d = by_kind("apps", "Deployment").unwrap();
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"},
            "spec": {"replica": 2, "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i", "bogus": 1}]}}}});
        let err = decode(d, &obj, FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains("unknown field \"spec.replica\""),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains("spec.template.spec.containers[0].bogus"),
            "{}",
            err.message
        );
        assert_eq!(decode(d, &obj, FieldValidation::Warn).unwrap().len(), 2);
        assert!(decode(d, &obj, FieldValidation::Ignore).unwrap().is_empty());
    }

    #[test]
    fn type_errors_are_bad_requests() {
        let d = by_kind("apps", "Deployment").unwrap();
        let obj = json!({"metadata": {"name": "a"}, "spec": {"replicas": "two"}});
        assert_eq!(
            decode(d, &obj, FieldValidation::Ignore).unwrap_err().code,
            400
        );
    }

    #[test]
    fn semantic_checks() {
        let d = by_kind("apps", "Deployment").unwrap();
        let bad = json!({"metadata": {"name": "Bad_Name"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"containers": [{"name": "c"}]}}}});
        let err = validate(d, &bad).unwrap_err();
        assert_eq!(err.code, 422);
        let causes = err.details.unwrap()["causes"].as_array().unwrap().len();
        assert_eq!(causes, 3, "{}", err.message);
        let pod = by_kind("", "Pod").unwrap();
        assert!(validate(pod, &json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})).is_ok());
    }
}
