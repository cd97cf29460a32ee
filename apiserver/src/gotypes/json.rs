//! JSON in the order Go's encoding writes Kubernetes objects.
//!
//! kube-apiserver serializes a built-in object through its Go struct, so
//! fields come in declaration order: `kind`, `apiVersion`, `metadata`,
//! `spec`, `status`, and inside each the struct's order (`name` before
//! `namespace` before `uid`, `containers` before `restartPolicy`). Maps
//! (labels, `data`) and objects of unknown kinds (custom resources, which
//! Kubernetes keeps as maps) have sorted keys. [`to_vec`] writes a value that
//! way: fields the table knows in its order, any others after them sorted.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

use super::{Message, SCHEMA, Type};

/// `value` as JSON, a built-in object's fields in Go's order.
pub fn to_vec(value: &Value) -> Vec<u8> {
    serde_json::to_vec(&Ordered::root(value)).unwrap_or_default()
}

/// A field's place among its message's fields, and its type.
type Ranks = HashMap<&'static str, (u32, &'static Type)>;

/// Every message's fields by JSON name, embedded structs' fields in place.
static RANKS: LazyLock<HashMap<&'static str, Ranks>> = LazyLock::new(|| {
    SCHEMA
        .messages
        .keys()
        .map(|name| {
            let mut ranks = Ranks::new();
            // `TypeMeta` comes first where a message does not name the two.
            let mut next = 2;
            add_fields(name, &mut ranks, &mut next);
            (*name, ranks)
        })
        .collect()
});

/// Where `kind` and `apiVersion` go when a message has no fields of its own
/// by those names: first, as Go's embedded `TypeMeta`.
const TYPE_META: [(&str, u32); 2] = [("kind", 0), ("apiVersion", 1)];

fn add_fields(name: &str, ranks: &mut Ranks, next: &mut u32) {
    let Some(Message::Fields { by_tag, order }) = SCHEMA.messages.get(name) else {
        return;
    };
    for field in order.iter().map(|t| &by_tag[t]) {
        match (field.json, &field.ty) {
            (Some(json), ty) => {
                ranks.entry(json).or_insert((*next, ty));
                *next += 1;
            }
            (None, Type::Message(inner)) => add_fields(inner, ranks, next),
            (None, _) => {}
        }
    }
}

/// Messages whose JSON is one of two things, mostly a schema.
const SCHEMA_OR: &str = "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOr";
const SCHEMA_PROPS: Type =
    Type::Message("apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaProps");
const RAW_EXTENSION: &str = "apimachinery.pkg.runtime.RawExtension";

/// What a value is expected to be.
#[derive(Clone, Copy)]
enum Shape {
    /// Nothing known: keys sorted.
    Any,
    /// A field's declared type.
    Typed(&'static Type),
    /// A list of a kind: `metadata` then `items` of that kind's message.
    List(&'static str),
}

/// A value and its shape, serialized in Go's order.
struct Ordered<'a> {
    value: &'a Value,
    shape: Shape,
}

fn kind_of(v: &Value) -> Option<(&str, &str)> {
    Some((v.get("apiVersion")?.as_str()?, v.get("kind")?.as_str()?))
}

impl<'a> Ordered<'a> {
    /// An object that names its kind, or a list of objects that do.
    fn root(value: &'a Value) -> Self {
        let shape = match kind_of(value) {
            Some((version, kind)) => match SCHEMA
                .message_of(version, kind)
                .and_then(|m| MESSAGE_TYPES.get(m))
            {
                Some(ty) => Shape::Typed(ty),
                None => kind
                    .strip_suffix("List")
                    .and_then(|item| SCHEMA.message_of(version, item))
                    .map_or(Shape::Any, Shape::List),
            },
            None => Shape::Any,
        };
        Self { value, shape }
    }

    fn with(value: &'a Value, ty: &'static Type) -> Self {
        Self {
            value,
            shape: Shape::Typed(ty),
        }
    }
}

/// A `Type::Message` for every message, so a kind's message can be a shape.
static MESSAGE_TYPES: LazyLock<HashMap<&'static str, Type>> = LazyLock::new(|| {
    SCHEMA
        .messages
        .keys()
        .map(|name| (*name, Type::Message(name)))
        .collect()
});

static LIST_META: Type = Type::Message("apimachinery.pkg.apis.meta.v1.ListMeta");

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ty = match self.shape {
            Shape::Any => return self.value.serialize(s),
            Shape::List(item) => return list(self.value, item, s),
            Shape::Typed(ty) => ty,
        };
        match (self.value, ty) {
            (Value::Object(fields), Type::Message(name)) => {
                if *name == RAW_EXTENSION {
                    // An embedded object (a table row's, a watch event's).
                    return Ordered::root(self.value).serialize(s);
                }
                if name.starts_with(SCHEMA_OR) {
                    return Ordered::with(self.value, &SCHEMA_PROPS).serialize(s);
                }
                let Some(ranks) = RANKS.get(name) else {
                    return self.value.serialize(s);
                };
                let mut entries: Vec<_> = fields
                    .iter()
                    .map(|(k, v)| {
                        let (rank, ty) = match ranks.get(k.as_str()) {
                            Some(&(rank, ty)) => (rank, Some(ty)),
                            None => TYPE_META
                                .iter()
                                .find(|(n, _)| n == k)
                                .map_or((u32::MAX, None), |&(_, r)| (r, None)),
                        };
                        (rank, k, v, ty)
                    })
                    .collect();
                // Stable: unknown fields keep their sorted order.
                entries.sort_by_key(|e| e.0);
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (_, k, v, ty) in entries {
                    match ty {
                        Some(ty) => map.serialize_entry(k, &Ordered::with(v, ty))?,
                        None => map.serialize_entry(k, v)?,
                    }
                }
                map.end()
            }
            (Value::Array(items), Type::Message(name)) => match SCHEMA.messages.get(name) {
                // A named slice, or a schema's `items` given as an array.
                Some(Message::Alias(element)) => seq(items, element, s),
                _ if name.starts_with(SCHEMA_OR) => seq(items, &SCHEMA_PROPS, s),
                _ => self.value.serialize(s),
            },
            (Value::Array(items), Type::Repeated(element)) => seq(items, element, s),
            (Value::Object(entries), Type::Map(element)) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, &Ordered::with(v, element))?;
                }
                map.end()
            }
            _ => self.value.serialize(s),
        }
    }
}

fn seq<S: Serializer>(items: &[Value], element: &'static Type, s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(items.len()))?;
    for v in items {
        seq.serialize_element(&Ordered::with(v, element))?;
    }
    seq.end()
}

/// `{"kind", "apiVersion", "metadata", "items"}`, the items as `item`s.
fn list<S: Serializer>(value: &Value, item: &'static str, s: S) -> Result<S::Ok, S::Error> {
    let Value::Object(fields) = value else {
        return value.serialize(s);
    };
    let item = &MESSAGE_TYPES[item];
    let rank = |k: &str| match k {
        "kind" => 0,
        "apiVersion" => 1,
        "metadata" => 2,
        "items" => 3,
        _ => 4,
    };
    let mut entries: Vec<_> = fields.iter().collect();
    entries.sort_by_key(|(k, _)| rank(k));
    let mut map = s.serialize_map(Some(entries.len()))?;
    for (k, v) in entries {
        match (k.as_str(), v) {
            ("metadata", _) => map.serialize_entry(k, &Ordered::with(v, &LIST_META))?,
            ("items", Value::Array(items)) => map.serialize_entry(k, &Items(items, item))?,
            _ => map.serialize_entry(k, v)?,
        }
    }
    map.end()
}

struct Items<'a>(&'a [Value], &'static Type);

impl Serialize for Items<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        seq(self.0, self.1, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_reads_in_go_order() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"uid": "u", "namespace": "default", "name": "p",
                         "labels": {"b": "2", "a": "1"}, "resourceVersion": "7",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Pending"},
            "spec": {"restartPolicy": "Always", "containers": [
                {"resources": {}, "name": "c", "image": "i", "ports": [{"protocol": "TCP", "containerPort": 80}]}
            ], "volumes": []},
            "zzz": 1, "extra": true
        });
        let text = String::from_utf8(to_vec(&pod)).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"default","#,
                r#""uid":"u","resourceVersion":"7","creationTimestamp":"2026-01-01T00:00:00Z","#,
                r#""labels":{"a":"1","b":"2"}},"spec":{"volumes":[],"containers":[{"name":"c","#,
                r#""image":"i","ports":[{"containerPort":80,"protocol":"TCP"}],"resources":{}}],"#,
                r#""restartPolicy":"Always"},"status":{"phase":"Pending"},"extra":true,"zzz":1}"#
            )
        );
        // Nothing is lost or changed, only moved.
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), pod);
    }

    #[test]
    fn lists_tables_and_unknown_kinds() {
        let list = json!({"kind": "ConfigMapList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "3", "continue": "x"},
            "items": [{"metadata": {"namespace": "n", "name": "a"}, "data": {"k": "v"}, "immutable": false}]});
        let text = String::from_utf8(to_vec(&list)).unwrap();
        assert!(text.starts_with(r#"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"3","continue":"x"},"items":[{"metadata":{"name":"a","namespace":"n"},"immutable":false,"data":{"k":"v"}}]}"#), "{text}");

        let table = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "1"},
            "rows": [{"object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"uid": "u", "name": "n"}}, "cells": ["n", 1]}],
            "columnDefinitions": [{"type": "string", "priority": 0, "name": "Name", "format": "name", "description": "d"}]});
        let text = String::from_utf8(to_vec(&table)).unwrap();
        assert!(text.starts_with(r#"{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"1"},"columnDefinitions":[{"name":"Name","type":"string","format":"name","description":"d","priority":0}],"rows":[{"cells":["n",1],"object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"name":"n","uid":"u"}}}]}"#), "{text}");

        let widget =
            json!({"kind": "Widget", "apiVersion": "example.com/v1", "spec": {"b": 1, "a": 2}});
        assert_eq!(to_vec(&widget), serde_json::to_vec(&widget).unwrap());
    }

    #[test]
    fn crd_schemas_keep_their_order_at_every_depth() {
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "spec": {"versions": [{"schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"x-kubernetes-preserve-unknown-fields": true, "type": "object",
                         "items": {"type": "string", "description": "d"},
                         "additionalProperties": {"type": "integer", "format": "int32"}}}}},
                "name": "v1", "served": true}], "group": "example.com"}});
        let text = String::from_utf8(to_vec(&crd)).unwrap();
        assert!(
            text.contains(
                r#""spec":{"group":"example.com","versions":[{"name":"v1","served":true,"schema""#
            ),
            "{text}"
        );
        assert!(text.contains(r#"{"type":"object","items":{"description":"d","type":"string"},"additionalProperties":{"type":"integer","format":"int32"},"x-kubernetes-preserve-unknown-fields":true}"#), "{text}");
    }
}
