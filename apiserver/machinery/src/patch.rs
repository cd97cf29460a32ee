//! The three PATCH formats: JSON patch (RFC 6902), JSON merge patch (RFC 7386)
//! and Kubernetes strategic merge patch.

use serde_json::{Map, Value};

use crate::error::{ApiError, Result};
use crate::merge_keys::key_of;

/// Applies a strategic merge patch to `original`.
pub fn strategic_merge(original: &Value, patch: &Value) -> Result<Value> {
    match (original, patch) {
        (Value::Object(o), Value::Object(p)) => Ok(Value::Object(merge_map(o, p)?)),
        (_, Value::Object(p)) => Ok(Value::Object(merge_map(&Map::new(), p)?)),
        _ => Err(ApiError::bad_request(
            "a strategic merge patch must be a JSON object",
        )),
    }
}

fn merge_map(
    original: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Map<String, Value>> {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut out = patch.clone();
        out.remove("$patch");
        return Ok(out);
    }
    let mut out = original.clone();
    let retain: Option<Vec<String>> = patch.get("$retainKeys").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    });
    for (k, pv) in patch {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (out.get_mut(field), pv.as_array()) {
                list.retain(|v| !del.contains(v));
            }
            continue;
        }
        if pv.is_null() {
            out.remove(k);
            continue;
        }
        let merged = match (out.get(k), pv) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                if p.get("$patch").and_then(Value::as_str) == Some("delete") {
                    out.remove(k);
                    continue;
                }
                Value::Object(merge_map(o, p)?)
            }
            (_, Value::Object(p)) => {
                if p.get("$patch").and_then(Value::as_str) == Some("delete") {
                    out.remove(k);
                    continue;
                }
                Value::Object(merge_map(&Map::new(), p)?)
            }
            (Some(Value::Array(o)), Value::Array(p)) => Value::Array(merge_list(k, o, p)?),
            (None, Value::Array(p)) => Value::Array(merge_list(k, &[], p)?),
            (_, v) => v.clone(),
        };
        out.insert(k.clone(), merged);
    }
    if let Some(keep) = retain {
        out.retain(|k, _| keep.contains(k));
    }
    for (k, order) in patch {
        if let (Some(field), Some(order)) = (k.strip_prefix("$setElementOrder/"), order.as_array())
            && let Some(Value::Array(list)) = out.get_mut(field)
        {
            set_element_order(field, list, order);
        }
    }
    Ok(out)
}

/// Orders a merged list as `$setElementOrder` says: the elements it names
/// in its order, then the others (only in the live object) as they were.
fn set_element_order(field: &str, list: &mut [Value], order: &[Value]) {
    let key = key_of(field, list);
    let id = |v: &Value| match key {
        Some(k) => v.get(k).cloned(),
        None => Some(v.clone()),
    };
    let rank = |v: &Value| {
        let want = id(v);
        order
            .iter()
            .position(|o| want.is_some() && id(o) == want)
            .unwrap_or(usize::MAX)
    };
    // A stable sort keeps the unnamed elements in their order.
    list.sort_by_key(|v| rank(v));
}

fn merge_list(field: &str, original: &[Value], patch: &[Value]) -> Result<Vec<Value>> {
    if patch
        .iter()
        .any(|e| e.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|e| e.get("$patch").is_none())
            .cloned()
            .collect());
    }
    let sample: Vec<Value> = original.iter().chain(patch).cloned().collect();
    let Some(key) = key_of(field, &sample) else {
        return Ok(patch
            .iter()
            .map(|e| match e {
                Value::Object(m) => Value::Object(strip_directives(m)),
                v => v.clone(),
            })
            .collect());
    };
    let mut out: Vec<Value> = original.to_vec();
    for pe in patch {
        let Value::Object(pm) = pe else {
            return Err(ApiError::bad_request(format!(
                "list {field} with merge key {key} holds a non-object element"
            )));
        };
        let id = pm.get(key);
        let pos = id.and_then(|id| out.iter().position(|e| e.get(key) == Some(id)));
        let delete = pm.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                let merged = match &out[i] {
                    Value::Object(om) => merge_map(om, pm)?,
                    _ => strip_directives(pm),
                };
                out[i] = Value::Object(merged);
            }
            (None, false) => out.push(Value::Object(merge_map(&Map::new(), pm)?)),
        }
    }
    Ok(out)
}

fn strip_directives(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Applies an RFC 7386 JSON merge patch.
pub fn merge(original: &Value, patch: &Value) -> Value {
    let mut out = original.clone();
    json_patch::merge(&mut out, patch);
    out
}

/// Applies an RFC 6902 JSON patch.
pub fn json(original: &Value, patch: &Value) -> Result<Value> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    let mut out = original.clone();
    json_patch::patch(&mut out, &ops)
        .map_err(|e| ApiError::bad_request(format!("the JSON patch failed: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_containers_by_name_and_deletes() {
        let orig = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}], "replicas": 1}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"name": "a", "image": "z"}, {"name": "b", "$patch": "delete"}],
            "replicas": null
        }});
        let got = strategic_merge(&orig, &patch).unwrap();
        assert_eq!(
            got,
            json!({"spec": {"containers": [{"name": "a", "image": "z"}]}})
        );
    }

    #[test]
    fn lists_without_merge_key_are_replaced_and_directives_apply() {
        let orig = json!({"args": ["a", "b"], "finalizers": ["x", "y"], "m": {"a": 1, "b": 2}});
        let patch = json!({"args": ["c"], "$deleteFromPrimitiveList/finalizers": ["x"], "m": {"$patch": "replace", "c": 3}});
        assert_eq!(
            strategic_merge(&orig, &patch).unwrap(),
            json!({"args": ["c"], "finalizers": ["y"], "m": {"c": 3}})
        );
        let retain = json!({"m": {"$retainKeys": ["a"], "a": 5}});
        assert_eq!(
            strategic_merge(&orig, &retain).unwrap()["m"],
            json!({"a": 5})
        );
    }

    #[test]
    fn set_element_order_orders_merged_lists() {
        let orig = json!({"env": [{"name": "A", "value": "1"}, {"name": "X"}, {"name": "B", "value": "2"}], "finalizers": ["p", "q"]});
        let patch = json!({
            "$setElementOrder/env": [{"name": "C"}, {"name": "B"}, {"name": "A"}],
            "env": [{"name": "C", "value": "3"}],
            "$setElementOrder/finalizers": ["q", "p"],
        });
        let got = strategic_merge(&orig, &patch).unwrap();
        let names: Vec<&Value> = got["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["name"])
            .collect();
        assert_eq!(names, ["C", "B", "A", "X"]);
        assert_eq!(got["finalizers"], json!(["q", "p"]));
    }

    #[test]
    fn service_and_container_ports_use_their_keys() {
        let orig = json!({"ports": [{"port": 80, "name": "http"}]});
        let patch = json!({"ports": [{"port": 80, "targetPort": 8080}]});
        assert_eq!(
            strategic_merge(&orig, &patch).unwrap(),
            json!({"ports": [{"port": 80, "name": "http", "targetPort": 8080}]})
        );
    }

    #[test]
    fn json_and_merge_patches() {
        let orig = json!({"a": {"b": 1}});
        assert_eq!(
            merge(&orig, &json!({"a": {"b": null, "c": 2}})),
            json!({"a": {"c": 2}})
        );
        let p = json!([{"op": "replace", "path": "/a/b", "value": 3}]);
        assert_eq!(json(&orig, &p).unwrap(), json!({"a": {"b": 3}}));
        assert!(json(&orig, &json!([{"op": "remove", "path": "/nope"}])).is_err());
        assert!(json(&orig, &json!({"op": "x"})).is_err());
    }
}
