//! The JSONPath subset of printer columns and scale paths: `.a.b`,
//! `['a.b']`, `[0]`, `[*]` and `[?(@.type=="Ready")]`.

use serde_json::Value;

#[derive(Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
    All,
    /// `[?(@.path=="value")]`.
    Filter(Vec<String>, Value),
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(p);
    let p = p.strip_prefix('$').unwrap_or(p);
    let mut steps = Vec::new();
    let mut rest = p;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Key(r[..end].to_string()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = bracket_end(r)?;
            let inner = r[..end].trim();
            steps.push(if inner == "*" {
                Step::All
            } else if let Some(f) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
                let (lhs, rhs) = f.split_once("==")?;
                let keys = lhs
                    .trim()
                    .strip_prefix('@')?
                    .split('.')
                    .filter(|k| !k.is_empty())
                    .map(String::from)
                    .collect();
                let rhs = rhs.trim();
                let value = match rhs.starts_with(['"', '\'']) {
                    true => Value::String(quoted(rhs)?.to_string()),
                    false => serde_json::from_str(rhs).ok()?,
                };
                Step::Filter(keys, value)
            } else if inner.starts_with(['\'', '"']) {
                Step::Key(quoted(inner)?.to_string())
            } else {
                Step::Index(inner.parse().ok()?)
            });
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

/// The text between the quotes of `s` (`'a'` or `"a"`), if it is quoted.
fn quoted(s: &str) -> Option<&str> {
    let q = s.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    s[q.len_utf8()..].strip_suffix(q)
}

/// Whether `path` is one this subset reads (a definition's printer
/// columns are checked with it when written).
pub fn valid(path: &str) -> bool {
    parse(path).is_some()
}

/// Where the `]` closing a bracket is, quotes respected.
fn bracket_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ']') => return Some(i),
            _ => {}
        }
    }
    None
}

/// The values `path` selects in `v`.
pub fn select<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    let Some(steps) = parse(path) else {
        return Vec::new();
    };
    let mut current = vec![v];
    for step in &steps {
        let mut next = Vec::new();
        for c in current {
            match step {
                Step::Key(k) => next.extend(c.get(k.as_str())),
                Step::Index(i) => next.extend(c.get(*i)),
                Step::All => match c {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter(keys, want) => {
                    for item in c.as_array().into_iter().flatten() {
                        let got = keys.iter().try_fold(item, |x, k| x.get(k.as_str()));
                        if got == Some(want) {
                            next.push(item);
                        }
                    }
                }
            }
        }
        current = next;
    }
    current
}

/// The keys of a plain dotted path (`.spec.replicas`), for writing.
pub fn keys(path: &str) -> Option<Vec<String>> {
    parse(path)?
        .into_iter()
        .map(|s| match s {
            Step::Key(k) => Some(k),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_select_like_kubectl() {
        let v = json!({"spec": {"replicas": 3, "a.b": "dotted"}, "status": {"conditions": [
            {"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(select(&v, ".spec.replicas"), [&json!(3)]);
        assert_eq!(select(&v, "{.spec['a.b']}"), [&json!("dotted")]);
        assert_eq!(select(&v, ".status.conditions[1].type"), [&json!("Ready")]);
        assert_eq!(
            select(&v, ".status.conditions[?(@.type==\"Ready\")].status"),
            [&json!("True")]
        );
        assert_eq!(select(&v, ".status.conditions[*].type").len(), 2);
        assert!(select(&v, ".spec.missing").is_empty());
        assert!(select(&v, "spec[").is_empty());
        assert_eq!(
            keys(".spec.replicas"),
            Some(vec!["spec".into(), "replicas".into()])
        );
        assert_eq!(keys(".spec.items[0]"), None);
    }

    #[test]
    fn any_text_is_read_or_refused_without_a_panic() {
        for path in [
            ".spec['é",
            "[?(@.a==\"é)]",
            "[?(@.a=='é')]",
            "['é']",
            "[\"]",
            "['']",
            ".é.ü",
            "[?(@.a==é)]",
            "['a'é]",
            "[?(@.a=='x'é)]",
        ] {
            let _ = select(&json!({"é": 1}), path);
            let _ = keys(path);
        }
        assert!(!valid("[\"]"));
        assert!(!valid(".spec['é"));
        assert!(valid("['é']"));
        assert_eq!(select(&json!({"é": 1}), "['é']"), [&json!(1)]);
        assert_eq!(select(&json!({"é": 1}), ".é"), [&json!(1)]);
        assert_eq!(
            select(&json!([{"a": "é"}]), "[?(@.a=='é')].a"),
            [&json!("é")]
        );
    }
}
