//! `x-kubernetes-validations`: the CEL rules of a structural schema, each
//! evaluated with `self` bound to the value at its node (and `oldSelf` to
//! the stored value, for transition rules on updates).
//!
//! Rules are read with the cel-interpreter crate, which has CEL's standard
//! functions but not Kubernetes' extension libraries (quantities, URLs,
//! `isSorted`, …). A rule it cannot compile, or whose evaluation fails,
//! is skipped rather than held against the object: only a rule that
//! evaluates to `false` refuses it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cel_interpreter::{Context, Program};
use serde_json::Value;

use crate::error::Cause;

/// A compiled rule and whether it reads `oldSelf`; `None` if it does not
/// compile.
type Compiled = Option<(Arc<Program>, bool)>;

fn compile(rule: &str) -> Compiled {
    static CACHE: OnceLock<Mutex<HashMap<String, Compiled>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if cache.len() > 4096 {
        cache.clear();
    }
    cache
        .entry(rule.to_string())
        .or_insert_with(|| match Program::compile(rule) {
            Ok(p) => {
                let transition = p.references().has_variable("oldSelf");
                Some((Arc::new(p), transition))
            }
            Err(e) => {
                tracing::debug!("CEL rule {rule:?} is not evaluated: {e}");
                None
            }
        })
        .clone()
}

/// JSON as CEL sees it: integers are `int`, as Kubernetes reads them.
fn to_cel(v: &Value) -> cel_interpreter::Value {
    use cel_interpreter::Value as C;
    match v {
        Value::Null => C::Null,
        Value::Bool(b) => C::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => C::Int(i),
            None => C::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => C::String(Arc::new(s.clone())),
        Value::Array(a) => C::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(m) => C::from(
            m.iter()
                .map(|(k, v)| (k.clone(), to_cel(v)))
                .collect::<HashMap<String, C>>(),
        ),
    }
}

/// The causes of the rules `v` breaks under schema `s`. Without `old`
/// (a create, or the plain rules of an update) rules that read `oldSelf`
/// are left out; with it, only those are evaluated, against `old`.
pub fn check(s: &Value, v: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut out = Vec::new();
    walk(s, v, old.map(Some), "", &mut out);
    out
}

/// `old` is `None` for plain rules and `Some(previous)` for transition
/// rules, where `previous` is the stored value at this node, if any.
fn walk(s: &Value, v: &Value, old: Option<Option<&Value>>, path: &str, out: &mut Vec<Cause>) {
    if v.is_null() {
        return;
    }
    for rule in s["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        evaluate(s, rule, v, old, path, out);
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let cs = s
                    .get("properties")
                    .and_then(|p| p.get(k))
                    .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()));
                if let Some(cs) = cs {
                    let previous = old.map(|o| o.and_then(|o| o.get(k)));
                    walk(cs, child, previous, &join(k), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    // Items are not matched to their old selves.
                    let previous = old.map(|_| None);
                    walk(is, item, previous, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn evaluate(
    s: &Value,
    rule: &Value,
    v: &Value,
    old: Option<Option<&Value>>,
    path: &str,
    out: &mut Vec<Cause>,
) {
    let Some(text) = rule.get("rule").and_then(Value::as_str) else {
        return;
    };
    let Some((program, transition)) = compile(text) else {
        return;
    };
    let previous = match (old, transition) {
        (None, false) => None,
        (Some(Some(previous)), true) => Some(previous),
        // A transition rule on a create or a new value; a plain rule when
        // only transition rules are asked for.
        _ => return,
    };
    let mut context = Context::default();
    context.add_variable_from_value("self", to_cel(v));
    if let Some(previous) = previous {
        context.add_variable_from_value("oldSelf", to_cel(previous));
    }
    match program.execute(&context) {
        Ok(cel_interpreter::Value::Bool(false)) => {}
        Ok(_) => return,
        Err(e) => {
            tracing::debug!("CEL rule {text:?} could not be evaluated: {e}");
            return;
        }
    }
    let mut field = path.to_string();
    if let Some(extra) = rule.get("fieldPath").and_then(Value::as_str) {
        field.push_str(extra);
        field = field.trim_start_matches('.').to_string();
    }
    if field.is_empty() {
        field = "<root>".into();
    }
    let message = rule
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map_or_else(|| format!("failed rule: {text}"), String::from);
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("object");
    out.push(Cause {
        kind: match rule.get("reason").and_then(Value::as_str) {
            Some("FieldValueForbidden") => "FieldValueForbidden",
            Some("FieldValueRequired") => "FieldValueRequired",
            Some("FieldValueDuplicate") => "FieldValueDuplicate",
            _ => "FieldValueInvalid",
        },
        field,
        message: format!("Invalid value: \"{ty}\": {message}"),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.minReplicas <= self.maxReplicas", "message": "minReplicas must not exceed maxReplicas"},
                {"rule": "!has(self.mode) || self.mode.startsWith('fast')", "fieldPath": ".mode"},
                {"rule": "self.name == oldSelf.name", "message": "name is immutable"},
                {"rule": "isSorted(self.list)"},
            ],
            "properties": {
                "minReplicas": {"type": "integer"}, "maxReplicas": {"type": "integer"},
                "mode": {"type": "string"}, "name": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() <= 3"}]}},
            },
        }}})
    }

    #[test]
    fn rules_refuse_what_they_say() {
        let ok = json!({"spec": {"minReplicas": 1, "maxReplicas": 3, "mode": "fastest", "name": "a", "tags": ["abc"]}});
        assert!(check(&schema(), &ok, None).is_empty());
        let bad = json!({"spec": {"minReplicas": 5, "maxReplicas": 3, "mode": "slow", "name": "b", "tags": ["ok", "toolong"]}});
        let got: Vec<(String, String)> = check(&schema(), &bad, None)
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect();
        assert_eq!(
            got,
            [
                ("spec".into(), "Invalid value: \"object\": minReplicas must not exceed maxReplicas".into()),
                ("spec.mode".into(), "Invalid value: \"object\": failed rule: !has(self.mode) || self.mode.startsWith('fast')".into()),
                ("spec.tags[1]".into(), "Invalid value: \"string\": failed rule: self.size() <= 3".into()),
            ]
        );
        // Transition rules run on updates only, against the stored value.
        let old = json!({"spec": {"name": "a"}});
        let moved = json!({"spec": {"minReplicas": 1, "maxReplicas": 3, "name": "b"}});
        let got: Vec<String> = check(&schema(), &moved, Some(&old))
            .into_iter()
            .map(|c| c.message)
            .collect();
        assert_eq!(got, ["Invalid value: \"object\": name is immutable"]);
        assert!(check(&schema(), &ok, Some(&json!({"spec": {"name": "a"}}))).is_empty());
    }
}
