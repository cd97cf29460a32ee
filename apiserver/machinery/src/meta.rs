//! Small helpers over object metadata.

use serde_json::{Map, Value};

/// Now as an RFC 3339 timestamp with second precision, as Kubernetes writes.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A timestamp `secs` seconds from now.
pub fn now_plus(secs: i64) -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses an RFC 3339 timestamp.
pub fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

/// A random suffix of `n` characters from Kubernetes' alphabet (no vowels).
pub fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `obj.metadata`, created if missing.
pub fn metadata(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(Map::new());
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// The value of `obj` at a JSON pointer, as [`Value::pointer`] finds it
/// but without copying the tokens that need no unescaping (objects'
/// fields are read on every pass of every controller).
pub fn at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a Value> {
    if pointer.is_empty() {
        return Some(obj);
    }
    let rest = pointer.strip_prefix('/')?;
    rest.split('/').try_fold(obj, |v, token| {
        if token.contains('~') {
            let token = token.replace("~1", "/").replace("~0", "~");
            step(v, &token)
        } else {
            step(v, token)
        }
    })
}

fn step<'a>(v: &'a Value, token: &str) -> Option<&'a Value> {
    match v {
        Value::Object(map) => map.get(token),
        Value::Array(items) => {
            // As JSON Pointer: decimal digits, no leading zero.
            if token.starts_with('+') || (token.len() > 1 && token.starts_with('0')) {
                return None;
            }
            items.get(token.parse::<usize>().ok()?)
        }
        _ => None,
    }
}

/// A string field of `obj` at a JSON pointer.
pub fn str_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    at(obj, pointer).and_then(Value::as_str)
}

/// A string field of `obj.metadata`.
fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `metadata.name`.
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name")
}

/// `metadata.namespace`.
pub fn namespace(obj: &Value) -> &str {
    meta_str(obj, "namespace")
}

/// `metadata.uid`.
pub fn uid(obj: &Value) -> &str {
    meta_str(obj, "uid")
}

/// Sets a key of a JSON object if it is absent or null.
pub fn default_key(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

/// Whether `status.conditions` holds a condition of type `ty` with status True.
pub fn condition_true(obj: &Value, ty: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(ty)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// The strings of the list at `key` of `v` (empty when absent).
pub fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// How deeply an object may nest: far beyond any real manifest, and well
/// inside what every reader of the stored object parses.
pub const MAX_DEPTH: usize = 100;

/// Whether `v` nests more than `limit` levels of arrays and objects.
pub fn deeper_than(v: &Value, limit: usize) -> bool {
    let children: Box<dyn Iterator<Item = &Value>> = match v {
        Value::Array(a) => Box::new(a.iter()),
        Value::Object(m) => Box::new(m.values()),
        _ => return false,
    };
    limit == 0 || children.into_iter().any(|c| deeper_than(c, limit - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_counts_arrays_and_objects() {
        let mut v = json!(1);
        for _ in 0..5 {
            v = json!({"a": [v]});
        }
        assert!(!deeper_than(&v, 10));
        assert!(deeper_than(&v, 9));
        assert!(!deeper_than(&json!("scalar"), 0));
    }

    #[test]
    fn pointers_find_what_serde_json_finds() {
        let v = json!({"metadata": {"labels": {"kubernetes.io/os": "linux", "a~b": "t"}},
            "items": [{"x": 1}, {"x": 2}], "": {"": 3}, "01": 4});
        for p in [
            "",
            "/metadata/labels/kubernetes.io~1os",
            "/metadata/labels/a~0b",
            "/items/1/x",
            "/items/01/x",
            "/items/-",
            "/items/2",
            "/items/",
            "/missing/x",
            "//",
            "/01",
            "metadata",
            "/items/1/x/y",
            "/items/+1/x",
        ] {
            assert_eq!(at(&v, p), v.pointer(p), "{p}");
        }
    }
}
