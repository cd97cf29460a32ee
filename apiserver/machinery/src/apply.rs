//! Server-side apply: field sets, `managedFields` and conflicts.
//!
//! An applied configuration names the fields its manager wants to own. The
//! apiserver merges it into the live object (maps by key, lists by their
//! merge key, other lists whole), removes the fields the manager applied
//! before and no longer does (unless another manager owns them), and refuses
//! with 409 a change to a field another manager owns, unless `force` moves
//! the field to the applier. Ownership is kept in `metadata.managedFields` in
//! Kubernetes' FieldsV1 form (`f:name`, `k:{"name":"c"}`, `.`).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::error::{ApiError, Result};
use crate::patch;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// A field of an object.
    Field(String),
    /// A list element, by its merge key (`{"name":"c"}` as JSON).
    Key(String),
}

/// A set of leaf field paths.
pub type FieldSet = BTreeSet<Vec<Step>>;

/// The fields a configuration sets: every scalar, list without a merge key
/// and empty object, and every keyed list element itself.
pub fn fields_of(config: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Value::Object(m) = config {
        for (k, v) in m {
            if matches!(k.as_str(), "apiVersion" | "kind" | "status") {
                continue;
            }
            if k == "metadata" {
                if let Value::Object(meta) = v {
                    for (mk, mv) in meta {
                        if matches!(
                            mk.as_str(),
                            "labels" | "annotations" | "finalizers" | "ownerReferences"
                        ) {
                            walk(
                                mv,
                                vec![Step::Field(k.clone()), Step::Field(mk.clone())],
                                mk,
                                &mut out,
                            );
                        }
                    }
                }
                continue;
            }
            walk(v, vec![Step::Field(k.clone())], k, &mut out);
        }
    }
    out
}

fn walk(v: &Value, path: Vec<Step>, field: &str, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let mut p = path.clone();
                p.push(Step::Field(k.clone()));
                walk(child, p, k, out);
            }
        }
        Value::Array(items) if !items.is_empty() => match crate::merge_keys::key_of(field, items) {
            Some(key) => {
                for item in items {
                    let mut p = path.clone();
                    p.push(Step::Key(json!({key: item.get(key)}).to_string()));
                    out.insert(p.clone());
                    if let Value::Object(m) = item {
                        for (k, child) in m {
                            let mut q = p.clone();
                            q.push(Step::Field(k.clone()));
                            walk(child, q, k, out);
                        }
                    }
                }
            }
            None => {
                out.insert(path);
            }
        },
        _ => {
            out.insert(path);
        }
    }
}

/// The value at a path, if present.
pub fn value_at<'a>(obj: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut cur = obj;
    for step in path {
        cur = match step {
            Step::Field(f) => cur.get(f)?,
            Step::Key(k) => find_keyed(cur.as_array()?, k)?,
        };
    }
    Some(cur)
}

/// Whether `path` differs between `a` and `b` as field ownership sees it:
/// a leaf by its value; a keyed list element, or a map (owned as a path
/// when applied empty), by its presence only: their fields are paths of
/// their own, and the server may have defaulted some the configuration
/// leaves out.
fn differs(a: &Value, b: &Value, path: &[Step]) -> bool {
    let (x, y) = (value_at(a, path), value_at(b, path));
    match (path.last(), x, y) {
        (Some(Step::Key(_)), _, _) | (_, Some(Value::Object(_)), Some(Value::Object(_))) => {
            x.is_some() != y.is_some()
        }
        _ => x != y,
    }
}

fn key_of(k: &str) -> Option<(String, Value)> {
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(k) else {
        return None;
    };
    m.into_iter().next()
}

fn find_keyed<'a>(items: &'a [Value], k: &str) -> Option<&'a Value> {
    let (key, want) = key_of(k)?;
    items.iter().find(|i| i.get(&key) == Some(&want))
}

/// Removes the value at a path (a field, or a keyed list element).
fn remove_at(obj: &mut Value, path: &[Step]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for step in parent {
        let next = match step {
            Step::Field(f) => cur.get_mut(f),
            Step::Key(k) => {
                let Some((key, want)) = key_of(k) else { return };
                cur.as_array_mut()
                    .and_then(|items| items.iter_mut().find(|i| i.get(&key) == Some(&want)))
            }
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        Step::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        Step::Key(k) => {
            if let (Some((key, want)), Some(items)) = (key_of(k), cur.as_array_mut()) {
                items.retain(|i| i.get(&key) != Some(&want));
            }
        }
    }
}

/// A field set in Kubernetes' FieldsV1 form.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for step in path {
            let name = match step {
                Step::Field(f) => format!("f:{f}"),
                Step::Key(k) => format!("k:{k}"),
            };
            cur = cur
                .entry(name)
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("inserted as an object");
        }
        if matches!(path.last(), Some(Step::Key(_))) {
            cur.insert(".".into(), json!({}));
        }
    }
    Value::Object(root)
}

/// A FieldsV1 value read back into a field set.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn go(m: &Map<String, Value>, path: &mut Vec<Step>, out: &mut FieldSet) {
        if m.is_empty() && !path.is_empty() {
            out.insert(path.clone());
        }
        for (k, child) in m {
            let step = if k == "." {
                out.insert(path.clone());
                continue;
            } else if let Some(f) = k.strip_prefix("f:") {
                Step::Field(f.to_string())
            } else if let Some(key) = k.strip_prefix("k:") {
                Step::Key(key.to_string())
            } else {
                continue;
            };
            path.push(step);
            if let Value::Object(cm) = child {
                go(cm, path, out);
            }
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    if let Value::Object(m) = v {
        go(m, &mut Vec::new(), &mut out);
    }
    out
}

/// A path as Kubernetes prints it in a conflict: `.spec.replicas`,
/// `.spec.containers[name="c"].image`.
pub fn path_string(path: &[Step]) -> String {
    path.iter()
        .map(|s| match s {
            Step::Field(f) => format!(".{f}"),
            Step::Key(k) => match key_of(k) {
                Some((key, v)) => format!("[{key}={v}]"),
                None => format!("[{k}]"),
            },
        })
        .collect()
}

/// Applies `config` for `manager` onto `live` (None to create). Returns the
/// object to store, its `managedFields` included.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value> {
    let api_version = config.get("apiVersion").cloned().unwrap_or(Value::Null);
    let applied = fields_of(config);
    let entry = |fields: &FieldSet, operation: &str, who: &str, version: &Value| {
        json!({"manager": who, "operation": operation, "apiVersion": version, "time": now,
            "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(fields)})
    };
    let Some(live) = live else {
        let mut obj = config.clone();
        obj["metadata"]["managedFields"] = json!([entry(&applied, "Apply", manager, &api_version)]);
        return Ok(obj);
    };
    let mut entries: Vec<Value> = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let is_mine = |e: &Value| e["manager"] == manager && e["operation"] == "Apply";
    let previous = entries
        .iter()
        .find(|e| is_mine(e))
        .map(|e| from_fields_v1(&e["fieldsV1"]))
        .unwrap_or_default();

    // Conflicts: fields another manager owns that this apply would change.
    let mut conflicts = Vec::new();
    for e in entries.iter().filter(|e| !is_mine(e)) {
        let owned = from_fields_v1(&e["fieldsV1"]);
        for path in owned.intersection(&applied) {
            if differs(live, config, path) {
                conflicts.push((
                    e["manager"].as_str().unwrap_or_default().to_string(),
                    path.clone(),
                ));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(&conflicts, &api_version));
    }

    let mut merged = patch::strategic_merge(live, config)?;
    // Fields this manager applied before and dropped now go, unless another
    // manager still owns them.
    let others: FieldSet = entries
        .iter()
        .filter(|e| !is_mine(e))
        .flat_map(|e| from_fields_v1(&e["fieldsV1"]))
        .collect();
    for path in previous.difference(&applied) {
        if !others.contains(path) && !applied.iter().any(|a| a.starts_with(path)) {
            remove_at(&mut merged, path);
        }
    }
    // Ownership: the applier owns what it applied; forced fields leave
    // their previous owners, and empty entries go.
    let mut kept = Vec::new();
    for e in entries.drain(..) {
        if is_mine(&e) {
            continue;
        }
        let mut owned = from_fields_v1(&e["fieldsV1"]);
        if force {
            for (_, path) in &conflicts {
                owned.remove(path);
            }
        }
        if owned.is_empty() {
            continue;
        }
        let mut e = e;
        e["fieldsV1"] = to_fields_v1(&owned);
        kept.push(e);
    }
    kept.push(entry(&applied, "Apply", manager, &api_version));
    merged["metadata"]["managedFields"] = Value::Array(kept);
    Ok(merged)
}

/// The fields of an object's `status`.
fn status_fields(obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Some(s) = obj.get("status") {
        walk(s, vec![Step::Field("status".into())], "status", &mut out);
    }
    out
}

/// Records a write that is not an apply by `manager` in `new`'s
/// `managedFields`: the manager's `Update` entry gains the fields the write
/// set or changed, and other managers lose the fields it changed. A write
/// to the `status` subresource (`subresource = Some("status")`) has its own
/// entry, as in Kubernetes.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) {
    let of = |v: &Value| match subresource {
        Some(_) => status_fields(v),
        None => fields_of(v),
    };
    let new_fields = of(new);
    let changed: FieldSet = match old {
        None => new_fields.clone(),
        Some(old) => new_fields
            .union(&of(old))
            .filter(|p| differs(old, new, p))
            .cloned()
            .collect(),
    };
    let mut entries: Vec<Value> = match (old, new.pointer("/metadata/managedFields")) {
        (None, _) => Vec::new(),
        (_, Some(Value::Array(e))) => e.clone(),
        (Some(old), _) => old
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    };
    if changed.is_empty() && old.is_some() {
        return;
    }
    let api_version = new.get("apiVersion").cloned().unwrap_or(Value::Null);
    let mine = |e: &Value| {
        e["manager"] == manager
            && e["operation"] == "Update"
            && e.get("subresource").and_then(Value::as_str) == subresource
    };
    if !entries.iter().any(&mine) {
        let mut entry = json!({"manager": manager, "operation": "Update", "apiVersion": api_version,
            "fieldsType": "FieldsV1", "fieldsV1": {}});
        if let Some(s) = subresource {
            entry["subresource"] = json!(s);
        }
        entries.push(entry);
    }
    let mut kept = Vec::new();
    for mut e in entries {
        let mut owned = from_fields_v1(&e["fieldsV1"]);
        if mine(&e) {
            owned.extend(changed.iter().filter(|p| new_fields.contains(*p)).cloned());
            e["time"] = json!(now);
        } else {
            owned.retain(|p| !changed.contains(p));
        }
        if !owned.is_empty() {
            e["fieldsV1"] = to_fields_v1(&owned);
            kept.push(e);
        }
    }
    new["metadata"]["managedFields"] = Value::Array(kept);
}

fn conflict_error(conflicts: &[(String, Vec<Step>)], api_version: &Value) -> ApiError {
    let version = api_version.as_str().unwrap_or_default();
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, p)| json!({"type": "FieldManagerConflict", "message": format!("conflict with \"{m}\" using {version}"), "field": path_string(p)}))
        .collect();
    let lines: Vec<String> = conflicts
        .iter()
        .map(|(m, p)| {
            format!(
                "- conflict with \"{m}\" using {version}: {}",
                path_string(p)
            )
        })
        .collect();
    let n = conflicts.len();
    let mut e = ApiError::new(
        409,
        "Conflict",
        format!(
            "Apply failed with {n} conflict{}: {}",
            if n == 1 { "" } else { "s" },
            lines.join("\n")
        ),
    );
    e.details = Some(json!({"causes": causes}));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    #[test]
    fn updates_take_the_fields_they_change() {
        let created = apply(None, &deploy(2, "a:v1"), "alice", false, "t0").unwrap();
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(5);
        record_update(Some(&created), &mut scaled, "kubectl-scale", None, "t1");
        let entries = scaled["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[1]["fieldsV1"],
            json!({"f:spec": {"f:replicas": {}}})
        );
        // alice's next apply of replicas 2 now conflicts with the scaler.
        let err = apply(Some(&scaled), &deploy(2, "a:v1"), "alice", false, "t2").unwrap_err();
        assert!(
            err.message.contains("conflict with \"kubectl-scale\""),
            "{}",
            err.message
        );
        // An update that changes nothing records nothing.
        let mut same = scaled.clone();
        record_update(Some(&scaled), &mut same, "other", None, "t3");
        assert_eq!(same, scaled);
    }

    #[test]
    fn equal_values_are_shared_after_a_create_or_an_update() {
        // `kubectl create`: the body's fields are the creator's; the server
        // then defaults fields inside the container and its port.
        let body = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "nginx", "image": "nginx:1", "ports": [{"containerPort": 80}]}]}}}});
        let mut live = body.clone();
        record_update(None, &mut live, "kubectl-create", None, "t0");
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        live["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = json!("TCP");
        // The same configuration applied: no conflict, both own the fields.
        let applied = apply(Some(&live), &body, "kubectl", false, "t1").unwrap();
        let entries = applied["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 2, "{entries:?}");
        let image = vec![
            Step::Field("spec".into()),
            Step::Field("template".into()),
            Step::Field("spec".into()),
            Step::Field("containers".into()),
            Step::Key("{\"name\":\"nginx\"}".into()),
            Step::Field("image".into()),
        ];
        for e in entries {
            assert!(from_fields_v1(&e["fieldsV1"]).contains(&image), "{e}");
        }
        assert_eq!(
            applied["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        // A different value conflicts with the co-owner.
        let mut changed = body.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        let err = apply(Some(&applied), &changed, "kubectl", false, "t2").unwrap_err();
        assert!(
            err.message.contains("conflict with \"kubectl-create\"")
                && err.message.contains(".image"),
            "{}",
            err.message
        );
        // An update of the image takes it, and the element stays shared.
        let mut updated = applied.clone();
        updated["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:3");
        record_update(Some(&applied), &mut updated, "kubectl-edit", None, "t3");
        let again = apply(Some(&updated), &body, "kubectl", false, "t4").unwrap_err();
        assert!(again.message.contains("kubectl-edit"), "{}", again.message);
        let agreeing = apply(Some(&updated), &changed, "bob", false, "t4").unwrap_err();
        assert!(!agreeing.message.contains("k:{"), "{}", agreeing.message);
    }

    #[test]
    fn two_appliers_agreeing_share_then_one_changing_conflicts() {
        // A map entry, a keyed list element with an atomic list inside, a
        // scalar: alice applies them, bob applies the same values.
        let config = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"team": "a"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "c", "image": "i:1", "command": ["serve", "--port=80"]}]}}}});
        let alice = apply(None, &config, "alice", false, "t0").unwrap();
        let both = apply(Some(&alice), &config, "bob", false, "t1").unwrap();
        let entries = both["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert_eq!(entries[0]["fieldsV1"], entries[1]["fieldsV1"]);
        // Each change of a shared value conflicts with the other owner.
        let changes: [(&str, Value); 4] = [
            ("/metadata/labels/team", json!("b")),
            ("/spec/replicas", json!(3)),
            ("/spec/template/spec/containers/0/command", json!(["serve"])),
            ("/spec/template/spec/containers/0/image", json!("i:2")),
        ];
        for (path, value) in changes {
            let mut changed = config.clone();
            *changed.pointer_mut(path).unwrap() = value;
            let err = apply(Some(&both), &changed, "alice", false, "t2").unwrap_err();
            assert!(
                err.message.contains("conflict with \"bob\""),
                "{path}: {}",
                err.message
            );
            // Forced, alice takes the field and bob loses it.
            let forced = apply(Some(&both), &changed, "alice", true, "t2").unwrap();
            assert_eq!(forced.pointer(path), changed.pointer(path));
        }
        // A field alice stops applying stays while bob applies it.
        let mut fewer = config.clone();
        fewer["metadata"]["labels"] = json!({});
        let kept = apply(Some(&both), &fewer, "alice", false, "t3").unwrap();
        assert_eq!(kept["metadata"]["labels"]["team"], "a");
        // Once bob drops it too, it goes.
        let gone = apply(Some(&kept), &fewer, "bob", false, "t4").unwrap();
        assert!(gone["metadata"]["labels"].get("team").is_none(), "{gone}");
    }

    #[test]
    fn status_writes_have_their_own_entries() {
        let created = apply(None, &deploy(1, "a:v1"), "alice", false, "t0").unwrap();
        let mut reported = created.clone();
        reported["status"] =
            json!({"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]});
        record_update(Some(&created), &mut reported, "alice", Some("status"), "t1");
        let entries = reported["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert_eq!(entries[1]["subresource"], "status");
        assert_eq!(entries[1]["operation"], "Update");
        assert_eq!(
            entries[1]["fieldsV1"],
            json!({"f:status": {"f:replicas": {}, "f:conditions": {"k:{\"type\":\"Available\"}": {".": {}, "f:type": {}, "f:status": {}}}}})
        );
        // alice's apply entry is untouched.
        assert_eq!(entries[0], created["metadata"]["managedFields"][0]);
    }

    #[test]
    fn field_sets_round_trip_through_fields_v1() {
        let set = fields_of(&deploy(2, "a:v1"));
        let v1 = to_fields_v1(&set);
        assert_eq!(
            v1,
            json!({"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:replicas": {},
                "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}})
        );
        assert_eq!(from_fields_v1(&v1), set);
    }

    #[test]
    fn apply_merges_removes_dropped_fields_and_detects_conflicts() {
        let created = apply(None, &deploy(2, "a:v1"), "alice", false, "t0").unwrap();
        assert_eq!(created["metadata"]["managedFields"][0]["manager"], "alice");

        // Another manager's apply of a different value for replicas conflicts.
        let err = apply(Some(&created), &deploy(3, "a:v1"), "bob", false, "t1").unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message
                .contains("conflict with \"alice\" using apps/v1: .spec.replicas"),
            "{}",
            err.message
        );
        // The same value is shared ownership, not a conflict.
        let shared = apply(Some(&created), &deploy(2, "a:v1"), "bob", false, "t1").unwrap();
        assert_eq!(
            shared["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        // force takes the field over.
        let forced = apply(Some(&created), &deploy(3, "a:v1"), "bob", true, "t1").unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        let alice = from_fields_v1(&forced["metadata"]["managedFields"][0]["fieldsV1"]);
        assert!(!alice.contains(&vec![
            Step::Field("spec".into()),
            Step::Field("replicas".into())
        ]));

        // alice drops the label: it goes, as nobody else owns it.
        let mut without = deploy(2, "a:v2");
        without["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("labels");
        let next = apply(Some(&created), &without, "alice", false, "t2").unwrap();
        assert!(
            next["metadata"]
                .get("labels")
                .is_none_or(|l| l.get("app").is_none()),
            "{next}"
        );
        assert_eq!(
            next["spec"]["template"]["spec"]["containers"][0]["image"],
            "a:v2"
        );
    }
}
