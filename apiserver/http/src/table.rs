//! `meta.k8s.io/v1` Table responses: the columns each kind's strategy
//! prints, or a custom resource's printer columns.

use serde_json::{Value, json};

use shoal_machinery::jsonpath;
use shoal_machinery::meta::{parse_time, str_at};
use shoal_registry::custom::Custom;
use shoal_registry::kinds::{
    self,
    print::{age, col, human_duration},
};
use shoal_registry::resources::Resource;

/// Whether the Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|a| a.contains("as=Table"))
}

/// The columns of a custom resource: its definition's printer columns
/// after the name, or the age when it declares none.
fn custom_columns(c: &Custom) -> Vec<Value> {
    let name = kinds::print::name_column();
    if c.columns.is_empty() {
        return vec![name, col("Age", "date", 0, "")];
    }
    let mut out = vec![name];
    out.extend(c.columns.iter().map(|k| {
        json!({"name": k.name, "type": k.kind, "format": k.format, "description": k.description, "priority": k.priority})
    }));
    out
}

fn custom_cells(c: &Custom, o: &Value) -> Vec<Value> {
    let name = json!(str_at(o, "/metadata/name").unwrap_or_default());
    if c.columns.is_empty() {
        return vec![name, json!(age(o, "/metadata/creationTimestamp"))];
    }
    let mut out = vec![name];
    out.extend(c.columns.iter().map(|k| {
        let found = jsonpath::select(o, &k.path);
        match (k.kind.as_str(), found.as_slice()) {
            (_, []) => Value::Null,
            ("date", [Value::String(t), ..]) => match parse_time(t) {
                Some(t) => json!(human_duration((jiff::Timestamp::now() - t).get_seconds())),
                None => json!(t),
            },
            (_, [one]) => (*one).clone(),
            (_, many) => json!(
                many.iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }));
    out
}

/// One Table row for `obj`; `full` embeds the whole object, otherwise its
/// metadata as PartialObjectMetadata.
fn row(r: &Resource, obj: &Value, full: bool) -> Value {
    let object = if full {
        obj.clone()
    } else {
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or_default()})
    };
    let cells = match r.custom {
        Some(c) => custom_cells(c, obj),
        None => (kinds::of(r).printer.cells)(obj),
    };
    json!({"cells": cells, "object": object})
}

/// A Table of `objs` of resource `r`.
pub fn table(
    r: &Resource,
    objs: &[&Value],
    resource_version: &str,
    cont: Option<&str>,
    full: bool,
    with_columns: bool,
) -> Value {
    let mut meta = json!({"resourceVersion": resource_version});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    let columns = match (with_columns, r.custom) {
        (false, _) => Vec::new(),
        (true, Some(c)) => custom_columns(c),
        (true, None) => (kinds::of(r).printer.columns)(),
    };
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
        "columnDefinitions": columns,
        "rows": objs.iter().map(|o| row(r, o, full)).collect::<Vec<_>>(),
    })
}
