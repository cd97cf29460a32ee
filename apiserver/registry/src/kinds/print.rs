//! What printers share: column definitions, the name and age cells, and
//! the ways kubectl writes durations, selectors and lists.

use serde_json::{Value, json};

use shoal_machinery::meta::{parse_time, str_at};

/// The Name column.
pub fn name_column() -> Value {
    col(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    )
}

/// The Age column.
pub fn age_column() -> Value {
    col(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    )
}

/// An object's name cell.
pub fn name_cell(o: &Value) -> Value {
    json!(str_at(o, "/metadata/name").unwrap_or_default())
}

/// An object's age cell.
pub fn age_cell(o: &Value) -> Value {
    json!(age(o, "/metadata/creationTimestamp"))
}

/// A text cell.
pub fn text(v: String) -> Value {
    Value::String(v)
}

/// Kubernetes' short human duration (`5s`, `3m20s`, `2d4h`).
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        return if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        return if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    let d = h / 24;
    if h < 24 * 8 {
        return if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        };
    }
    if d < 365 * 2 {
        return format!("{d}d");
    }
    format!("{}y", d / 365)
}

/// How long ago the time at `pointer` was, as kubectl writes it.
pub fn age(obj: &Value, pointer: &str) -> String {
    match str_at(obj, pointer).and_then(parse_time) {
        Some(t) => human_duration((jiff::Timestamp::now() - t).get_seconds()),
        None => "<unknown>".into(),
    }
}

/// A column definition; priority 1 columns show with `-o wide`.
pub fn col(name: &str, ty: &str, priority: i32, description: &str) -> Value {
    json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" }, "description": description, "priority": priority})
}

/// The items joined by commas, or `<none>`.
pub fn join_or_none(items: Vec<String>) -> String {
    if items.is_empty() {
        "<none>".into()
    } else {
        items.join(",")
    }
}

/// The names and the images of the containers at `pointer`.
pub fn containers(obj: &Value, pointer: &str) -> (String, String) {
    let cs = obj
        .pointer(pointer)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names = cs
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(String::from))
        .collect();
    let images = cs
        .iter()
        .filter_map(|c| c.get("image").and_then(Value::as_str).map(String::from))
        .collect();
    (join_or_none(names), join_or_none(images))
}

/// A label selector as `k=v,…`, or `<none>`.
pub fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return "<none>".into();
    };
    let mut parts: Vec<String> = Vec::new();
    let labels = sel
        .get("matchLabels")
        .or(Some(sel))
        .and_then(Value::as_object);
    if let Some(m) = labels {
        for (k, v) in m {
            if let Some(v) = v.as_str() {
                parts.push(format!("{k}={v}"));
            }
        }
    }
    join_or_none(parts)
}

/// An object's name.
pub fn meta_name(o: &Value) -> String {
    str_at(o, "/metadata/name").unwrap_or_default().to_string()
}

/// The integer at `pointer`, 0 when absent.
pub fn int(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// `kind/name` of a reference such as a RoleBinding's `roleRef`.
pub fn reference(o: &Value, pointer: &str) -> String {
    format!(
        "{}/{}",
        str_at(o, &format!("{pointer}/kind")).unwrap_or_default(),
        str_at(o, &format!("{pointer}/name")).unwrap_or_default()
    )
}

/// A quantity that may be an integer or a string (`intOrString`).
pub fn int_or_string(o: &Value, pointer: &str) -> String {
    match o.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".into(),
    }
}

/// [`age`], for cells where `age` names the row's age cell.
pub fn age_of(o: &Value, p: &str) -> String {
    age(o, p)
}

/// The columns `kubectl get` shows for kinds listed by name and creation time.
pub fn created_at_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Created At", "date", 0, "Time when the object was created."),
    ]
}

/// A row of [`created_at_columns`] for `o`.
pub fn created_at_cells(o: &Value) -> Vec<Value> {
    vec![
        name_cell(o),
        json!(str_at(o, "/metadata/creationTimestamp").unwrap_or_default()),
    ]
}

/// The columns of a kind with nothing else to show.
pub fn name_age_columns() -> Vec<Value> {
    vec![name_column(), age_column()]
}

/// A row of [`name_age_columns`].
pub fn name_age_cells(o: &Value) -> Vec<Value> {
    vec![name_cell(o), age_cell(o)]
}

/// The `-o wide` columns of controllers with a pod template.
pub fn template_columns() -> [Value; 3] {
    [
        col(
            "Containers",
            "string",
            1,
            "Names of each container in the template.",
        ),
        col(
            "Images",
            "string",
            1,
            "Images referenced by each container in the template.",
        ),
        col("Selector", "string", 1, "Label selector for pods."),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_match_kubernetes() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(15 * 60), "15m");
        assert_eq!(human_duration(5 * 3600 + 60), "5h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400), "3d");
    }
}
