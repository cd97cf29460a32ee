//! Structural schemas, as Kubernetes applies them to custom objects: fields
//! the schema does not declare are pruned, `default`s fill absent fields,
//! and the value constraints give `422 Invalid` causes.

use serde_json::{Map, Value};

use crate::error::Cause;

/// Keys of a custom object's root that the schema does not govern.
const ROOT_META: [&str; 3] = ["apiVersion", "kind", "metadata"];

fn flag(s: &Value, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The schema of an object's member `key`: a declared property, else
/// `additionalProperties` when it is a schema.
fn member<'a>(s: &'a Value, key: &str) -> Option<&'a Value> {
    s.get("properties")
        .and_then(|p| p.get(key))
        .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
}

/// Whether an object under `s` keeps members the schema does not name.
fn keeps_unknown(s: &Value) -> bool {
    flag(s, "x-kubernetes-preserve-unknown-fields")
        || s.get("additionalProperties") == Some(&Value::Bool(true))
}

/// Checks that a definition's schema is structural enough to prune and
/// validate with: every node says its type, unless it preserves unknown
/// fields or is an int-or-string.
pub fn check_structural(s: &Value, path: &str, root: bool, out: &mut Vec<Cause>) {
    let Some(map) = s.as_object() else {
        out.push(Cause {
            kind: "FieldValueInvalid",
            field: path.into(),
            message: "Invalid value: must be a schema object".into(),
        });
        return;
    };
    let ty = map.get("type").and_then(Value::as_str).unwrap_or_default();
    let untyped_ok =
        flag(s, "x-kubernetes-preserve-unknown-fields") || flag(s, "x-kubernetes-int-or-string");
    if root && ty != "object" {
        out.push(Cause {
            kind: if ty.is_empty() {
                "FieldValueRequired"
            } else {
                "FieldValueInvalid"
            },
            field: format!("{path}.type"),
            message: if ty.is_empty() {
                "Required value: must not be empty at the root".into()
            } else {
                format!("Invalid value: \"{ty}\": must be object at the root")
            },
        });
    } else if ty.is_empty() && !untyped_ok {
        out.push(Cause {
            kind: "FieldValueRequired",
            field: format!("{path}.type"),
            message: "Required value: must not be empty for specified object fields".into(),
        });
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            check_structural(p, &format!("{path}.properties[{k}]"), false, out);
        }
    }
    if let Some(items) = map.get("items") {
        check_structural(items, &format!("{path}.items"), false, out);
    } else if ty == "array" {
        out.push(Cause {
            kind: "FieldValueRequired",
            field: format!("{path}.items"),
            message: "Required value: must be specified".into(),
        });
    }
    if let Some(extra) = map.get("additionalProperties").filter(|a| a.is_object()) {
        check_structural(extra, &format!("{path}.additionalProperties"), false, out);
    }
}

/// Removes what `s` does not declare from `v`, recording the paths of the
/// unknown fields; nulls where the schema is not `nullable` go too, as
/// Kubernetes drops them.
pub fn prune(s: &Value, v: &mut Value, unknown: &mut Vec<String>) {
    prune_at(s, v, "", true, unknown);
}

fn prune_at(s: &Value, v: &mut Value, path: &str, root: bool, unknown: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let keep_unknown = keeps_unknown(s);
            let embedded = root || flag(s, "x-kubernetes-embedded-resource");
            m.retain(|k, child| {
                if embedded && ROOT_META.contains(&k.as_str()) {
                    return true;
                }
                match member(s, k) {
                    Some(cs) => {
                        if child.is_null() && !flag(cs, "nullable") {
                            return false;
                        }
                        prune_at(cs, child, &join(path, k), false, unknown);
                        true
                    }
                    None if keep_unknown => true,
                    None => {
                        unknown.push(join(path, k));
                        false
                    }
                }
            });
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_at(is, item, &format!("{path}[{i}]"), false, unknown);
                }
            }
        }
        _ => {}
    }
}

/// Fills absent fields that have a `default`, then descends.
pub fn default(s: &Value, v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    if !m.contains_key(k)
                        && let Some(d) = ps.get("default")
                    {
                        m.insert(k.clone(), d.clone());
                    }
                }
            }
            for (k, child) in m.iter_mut() {
                if let Some(cs) = member(s, k) {
                    default(cs, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                items.iter_mut().for_each(|i| default(is, i));
            }
        }
        _ => {}
    }
}

/// The value constraints of `s` that `v` breaks, as field causes.
pub fn validate(s: &Value, v: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    validate_at(s, v, "", true, &mut out);
    out
}

fn quote(v: &Value) -> String {
    match v {
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => true,
    }
}

fn validate_at(s: &Value, v: &Value, path: &str, root: bool, out: &mut Vec<Cause>) {
    let field = if path.is_empty() { "<root>" } else { path };
    let mut invalid = |why: String| {
        out.push(Cause {
            kind: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {}: {why}", quote(v)),
        });
    };
    if v.is_null() {
        if !flag(s, "nullable") {
            invalid(format!(
                "{field} in body must be of type {}: \"null\"",
                s.get("type").and_then(Value::as_str).unwrap_or("object")
            ));
        }
        return;
    }
    let ty = s.get("type").and_then(Value::as_str).unwrap_or_default();
    let int_or_string = flag(s, "x-kubernetes-int-or-string");
    if int_or_string {
        if !(v.is_string() || has_type("integer", v)) {
            invalid(format!(
                "{field} in body must be of type integer,string: \"{}\"",
                type_name(v)
            ));
            return;
        }
    } else if !ty.is_empty() && !has_type(ty, v) {
        invalid(format!(
            "{field} in body must be of type {ty}: \"{}\"",
            type_name(v)
        ));
        return;
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        let list: Vec<String> = options.iter().map(Value::to_string).collect();
        out.push(Cause {
            kind: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                quote(v),
                list.join(", ")
            ),
        });
        return;
    }
    let mut invalid = |why: String| {
        out.push(Cause {
            kind: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {}: {why}", quote(v)),
        });
    };
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    if let (Some(x), Some(m)) = (v.as_f64(), num("multipleOf").filter(|m| *m > 0.0))
        && (x / m).fract().abs() > 1e-9
    {
        invalid(format!("{field} in body should be a multiple of {m}"));
    }
    if let Some(format) = s.get("format").and_then(Value::as_str)
        && !has_format(format, v)
    {
        invalid(format!(
            "{field} in body must be of type {format}: {}",
            quote(v)
        ));
    }
    if let Some(x) = v.as_f64() {
        let exclusive = |k: &str| flag(s, k);
        if let Some(min) = num("minimum") {
            if exclusive("exclusiveMinimum") && x <= min {
                invalid(format!("{field} in body should be greater than {min}"));
            } else if x < min {
                invalid(format!(
                    "{field} in body should be greater than or equal to {min}"
                ));
            }
        }
        if let Some(max) = num("maximum") {
            if exclusive("exclusiveMaximum") && x >= max {
                invalid(format!("{field} in body should be less than {max}"));
            } else if x > max {
                invalid(format!(
                    "{field} in body should be less than or equal to {max}"
                ));
            }
        }
    }
    if let Some(text) = v.as_str() {
        let chars = text.chars().count() as f64;
        if let Some(min) = num("minLength").filter(|m| chars < *m) {
            invalid(format!(
                "{field} in body should be at least {min} chars long"
            ));
        }
        if let Some(max) = num("maxLength").filter(|m| chars > *m) {
            invalid(format!(
                "{field} in body should be at most {max} chars long"
            ));
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            match regex::Regex::new(p) {
                Ok(re) if !re.is_match(text) => {
                    invalid(format!("{field} in body should match '{p}'"));
                }
                _ => {}
            }
        }
    }
    match v {
        Value::Object(m) => validate_object(s, m, path, root, out),
        Value::Array(items) => {
            let n = items.len() as f64;
            let mut invalid = |why: String| {
                out.push(Cause {
                    kind: "FieldValueInvalid",
                    field: field.into(),
                    message: format!("Invalid value: {n}: {why}"),
                });
            };
            if let Some(min) = num("minItems").filter(|m| n < *m) {
                invalid(format!("{field} in body should have at least {min} items"));
            }
            if let Some(max) = num("maxItems").filter(|m| n > *m) {
                out.push(Cause {
                    kind: "FieldValueTooMany",
                    field: field.into(),
                    message: format!("Too many: {n}: must have at most {max} items"),
                });
            }
            if let Some(is) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_at(is, item, &format!("{path}[{i}]"), false, out);
                }
            }
            duplicates(s, items, path, out);
        }
        _ => {}
    }
}

/// Duplicates in a list that is a set (`x-kubernetes-list-type: set` or
/// `uniqueItems`) or a map keyed by `x-kubernetes-list-map-keys`.
fn duplicates(s: &Value, items: &[Value], path: &str, out: &mut Vec<Cause>) {
    let list_type = s.get("x-kubernetes-list-type").and_then(Value::as_str);
    let keys: Vec<&str> = s
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let identity = |v: &Value| -> Value {
        match list_type {
            Some("map") => Value::Object(
                keys.iter()
                    .filter_map(|k| Some(((*k).to_string(), v.get(*k)?.clone())))
                    .collect(),
            ),
            _ => v.clone(),
        }
    };
    if !(matches!(list_type, Some("set" | "map")) || flag(s, "uniqueItems")) {
        return;
    }
    let mut seen: Vec<Value> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let id = identity(item);
        if seen.contains(&id) {
            out.push(Cause {
                kind: "FieldValueDuplicate",
                field: format!("{path}[{i}]"),
                message: format!("Duplicate value: {id}"),
            });
        } else {
            seen.push(id);
        }
    }
}

/// The OpenAPI formats Kubernetes checks; others pass.
fn has_format(format: &str, v: &Value) -> bool {
    let Some(text) = v.as_str() else {
        return match format {
            "int32" => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()) || !v.is_number(),
            _ => true,
        };
    };
    match format {
        "date-time" | "datetime" => text.parse::<jiff::Timestamp>().is_ok(),
        "date" => text.parse::<jiff::civil::Date>().is_ok() && text.len() == 10,
        "uuid" => uuid::Uuid::parse_str(text).is_ok() && text.len() == 36,
        "ipv4" => text.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => text.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => text.split_once('/').is_some_and(|(ip, bits)| {
            ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok()
        }),
        "byte" => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .is_ok()
        }
        _ => true,
    }
}

fn validate_object(
    s: &Value,
    m: &Map<String, Value>,
    path: &str,
    root: bool,
    out: &mut Vec<Cause>,
) {
    for r in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(k) = r.as_str()
            && !m.contains_key(k)
        {
            out.push(Cause {
                kind: "FieldValueRequired",
                field: join(path, k),
                message: "Required value".into(),
            });
        }
    }
    let n = m.len() as f64;
    if let Some(max) = s
        .get("maxProperties")
        .and_then(Value::as_f64)
        .filter(|x| n > *x)
    {
        out.push(Cause {
            kind: "FieldValueTooMany",
            field: if path.is_empty() {
                "<root>".into()
            } else {
                path.to_string()
            },
            message: format!("Too many: {n}: must have at most {max} items"),
        });
    }
    for (k, child) in m {
        if root && ROOT_META.contains(&k.as_str()) {
            continue;
        }
        if let Some(cs) = member(s, k) {
            validate_at(cs, child, &join(path, k), false, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["spec"],
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                        "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
                        "port": {"x-kubernetes-int-or-string": true},
                        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                },
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
            },
        })
    }

    #[test]
    fn unknown_fields_are_pruned_and_reported() {
        let mut v = json!({
            "apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"image": "nginx", "extra": 1, "free": {"any": {"thing": true}}, "labels": {"a": "b"}, "tags": null},
            "other": true,
        });
        let mut unknown = Vec::new();
        prune(&schema(), &mut v, &mut unknown);
        assert_eq!(unknown, ["other", "spec.extra"]);
        assert_eq!(
            v["spec"],
            json!({"image": "nginx", "free": {"any": {"thing": true}}, "labels": {"a": "b"}})
        );
        assert_eq!(v["metadata"]["name"], "a");
    }

    #[test]
    fn defaults_fill_absent_fields() {
        let mut v = json!({"spec": {"image": "x", "mode": "slow"}});
        default(&schema(), &mut v);
        assert_eq!(
            v["spec"],
            json!({"image": "x", "mode": "slow", "replicas": 1})
        );
        let mut bare = json!({});
        default(&schema(), &mut bare);
        assert_eq!(bare, json!({}));
    }

    #[test]
    fn constraints_give_field_causes() {
        let v = json!({"spec": {"image": "NotLower9", "replicas": 0, "mode": "warp", "port": 1.5, "tags": ["a", "b", "c"]}});
        let causes = validate(&schema(), &v);
        let mut got: Vec<(String, String)> =
            causes.into_iter().map(|c| (c.field, c.message)).collect();
        got.sort();
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.image",
                "spec.image",
                "spec.mode",
                "spec.port",
                "spec.replicas",
                "spec.tags"
            ],
            "{got:?}"
        );
        assert_eq!(
            got[2].1,
            "Unsupported value: \"warp\": supported values: \"fast\", \"slow\""
        );
        assert_eq!(
            got[4].1,
            "Invalid value: 0: spec.replicas in body should be greater than or equal to 1"
        );
        let missing = validate(&schema(), &json!({"spec": {"replicas": "two"}}));
        let got: Vec<(String, String)> =
            missing.into_iter().map(|c| (c.field, c.message)).collect();
        assert_eq!(got, [
            ("spec.image".to_string(), "Required value".to_string()),
            ("spec.replicas".to_string(), "Invalid value: \"two\": spec.replicas in body must be of type integer: \"string\"".to_string()),
        ]);
        assert_eq!(validate(&schema(), &json!({}))[0].field, "spec");
        assert!(
            validate(
                &schema(),
                &json!({"spec": {"image": "ok", "port": "http", "free": {"x": 1}}})
            )
            .is_empty()
        );
    }

    #[test]
    fn sets_maps_formats_and_multiples() {
        let s = json!({"type": "object", "properties": {
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer", "format": "int32", "multipleOf": 10}}}},
            "at": {"type": "string", "format": "date-time"},
            "id": {"type": "string", "format": "uuid"},
        }});
        let v = json!({"tags": ["a", "b", "a"], "ports": [{"name": "x", "port": 80}, {"name": "x", "port": 85}],
            "at": "yesterday", "id": "0f8fad5b-d9cb-469f-a165-70867728950e"});
        let mut got: Vec<(String, String)> = validate(&s, &v)
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect();
        got.sort();
        assert_eq!(got, [
            ("at".to_string(), "Invalid value: \"yesterday\": at in body must be of type date-time: \"yesterday\"".to_string()),
            ("ports[1]".to_string(), "Duplicate value: {\"name\":\"x\"}".to_string()),
            ("ports[1].port".to_string(), "Invalid value: 85: ports[1].port in body should be a multiple of 10".to_string()),
            ("tags[2]".to_string(), "Duplicate value: \"a\"".to_string()),
        ]);
        assert!(
            validate(
                &s,
                &json!({"at": "2026-01-01T00:00:00Z", "ports": [{"name": "x", "port": 80}]})
            )
            .is_empty()
        );
    }

    #[test]
    fn schemas_must_say_their_types() {
        let mut out = Vec::new();
        check_structural(
            &json!({"type": "object", "properties": {"a": {"properties": {}}, "b": {"type": "array"}}}),
            "s",
            true,
            &mut out,
        );
        let fields: Vec<&str> = out.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["s.properties[a].type", "s.properties[b].items"]);
        out.clear();
        check_structural(&schema(), "s", true, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
