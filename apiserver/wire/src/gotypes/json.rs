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
    serde_json::to_vec(&Rooted(value)).unwrap_or_default()
}

/// What a value is expected to be, resolved from the schema once so that
/// encoding neither hashes nor allocates to find a field.
enum Shape {
    /// Nothing known: keys sorted.
    Any,
    /// A message, by its index in [`Graph::messages`].
    Message(usize),
    /// `[]T`.
    Repeated(Box<Shape>),
    /// `map[string]T`.
    Map(Box<Shape>),
    /// An embedded object (`runtime.RawExtension`): it names its own kind.
    Embedded,
    /// A schema, or an array of schemas, or a bool (`JSONSchemaPropsOr…`).
    SchemaOr(usize),
}

/// A message's fields by JSON name: the field's place in Go's order, its
/// shape. (A fast hash: names are short and many are looked up.)
type Fields = rustc_hash::FxHashMap<&'static str, (u32, Shape)>;

/// Every message of the schema, resolved.
struct Graph {
    messages: Vec<Fields>,
    /// Message name → index.
    index: HashMap<&'static str, usize>,
}

static GRAPH: LazyLock<Graph> = LazyLock::new(|| {
    let names: Vec<&'static str> = SCHEMA.messages.keys().copied().collect();
    let index: HashMap<&'static str, usize> =
        names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let messages = names
        .iter()
        .map(|name| {
            let mut fields = Fields::default();
            // `kind` and `apiVersion` (Go's embedded `TypeMeta`) take 0 and
            // 1 where a message has no fields of its own by those names.
            let mut next = 2;
            add_fields(name, &index, &mut fields, &mut next);
            fields
        })
        .collect();
    Graph { messages, index }
});

/// Where `kind` and `apiVersion` go in a message without fields by those
/// names: first, as Go's embedded `TypeMeta`.
const TYPE_META: [(&str, u32); 2] = [("kind", 0), ("apiVersion", 1)];

const RAW_EXTENSION: &str = "apimachinery.pkg.runtime.RawExtension";
const SCHEMA_OR: &str = "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOr";
const SCHEMA_PROPS: &str = "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaProps";

fn add_fields(name: &str, index: &HashMap<&'static str, usize>, out: &mut Fields, next: &mut u32) {
    let Some(Message::Fields { by_tag, order }) = SCHEMA.messages.get(name) else {
        return;
    };
    for field in order.iter().map(|t| &by_tag[t]) {
        match (field.json, &field.ty) {
            (Some(json), ty) => {
                out.entry(json).or_insert((*next, shape(ty, index)));
                *next += 1;
            }
            // An embedded struct: its fields are the parent's, in place.
            (None, Type::Message(inner)) => add_fields(inner, index, out, next),
            (None, _) => {}
        }
    }
}

fn shape(ty: &Type, index: &HashMap<&'static str, usize>) -> Shape {
    match ty {
        Type::Scalar(_) => Shape::Any,
        Type::Repeated(t) => Shape::Repeated(Box::new(shape(t, index))),
        Type::Map(t) => Shape::Map(Box::new(shape(t, index))),
        Type::Message(name) if *name == RAW_EXTENSION => Shape::Embedded,
        Type::Message(name) if name.starts_with(SCHEMA_OR) => index
            .get(SCHEMA_PROPS)
            .map_or(Shape::Any, |&i| Shape::SchemaOr(i)),
        Type::Message(name) => match SCHEMA.messages.get(name) {
            Some(Message::Alias(element)) => Shape::Repeated(Box::new(shape(element, index))),
            Some(Message::Fields { .. }) => Shape::Message(index[name]),
            None => Shape::Any,
        },
    }
}

/// A value and its shape, serialized in Go's order.
struct Ordered<'a> {
    value: &'a Value,
    shape: &'a Shape,
}

/// The shape of an object that names its kind, or of a list of such.
enum Root {
    Shape(Shape),
    /// A list of a kind: `metadata` then `items` of that kind's message.
    List(Shape),
}

fn kind_of(v: &Value) -> Option<(&str, &str)> {
    Some((v.get("apiVersion")?.as_str()?, v.get("kind")?.as_str()?))
}

fn root(value: &Value) -> Root {
    let message = |version: &str, kind: &str| {
        SCHEMA
            .message_of(version, kind)
            .and_then(|m| GRAPH.index.get(m))
            .map(|&i| Shape::Message(i))
    };
    let Some((version, kind)) = kind_of(value) else {
        return Root::Shape(Shape::Any);
    };
    if let Some(shape) = message(version, kind) {
        return Root::Shape(shape);
    }
    match kind
        .strip_suffix("List")
        .and_then(|item| message(version, item))
    {
        Some(item) => Root::List(item),
        None => Root::Shape(Shape::Any),
    }
}

static LIST_META: LazyLock<Shape> = LazyLock::new(|| {
    GRAPH
        .index
        .get("apimachinery.pkg.apis.meta.v1.ListMeta")
        .map_or(Shape::Any, |&i| Shape::Message(i))
});

/// `value` serialized as the object it names.
fn serialize_root<S: Serializer>(value: &Value, s: S) -> Result<S::Ok, S::Error> {
    match root(value) {
        Root::Shape(shape) => Ordered {
            value,
            shape: &shape,
        }
        .serialize(s),
        Root::List(item) => list(value, &item, s),
    }
}

/// A value that names its own kind.
struct Rooted<'a>(&'a Value);

impl Serialize for Rooted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_root(self.0, s)
    }
}

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.value, self.shape) {
            (Value::Object(fields), Shape::Message(i)) => message(fields, &GRAPH.messages[*i], s),
            (Value::Object(fields), Shape::SchemaOr(i)) => message(fields, &GRAPH.messages[*i], s),
            (Value::Array(items), Shape::SchemaOr(i)) => seq(items, &Shape::Message(*i), s),
            (Value::Array(items), Shape::Repeated(element)) => seq(items, element, s),
            (Value::Object(entries), Shape::Map(element)) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(
                        k,
                        &Ordered {
                            value: v,
                            shape: element,
                        },
                    )?;
                }
                map.end()
            }
            (Value::Object(_), Shape::Embedded) => serialize_root(self.value, s),
            _ => self.value.serialize(s),
        }
    }
}

static ANY: Shape = Shape::Any;

/// An object of a message: the fields it knows in Go's order, then the
/// others in their sorted order.
fn message<S: Serializer>(
    fields: &serde_json::Map<String, Value>,
    known: &Fields,
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut entries: Vec<(u32, &String, &Value, &Shape)> = fields
        .iter()
        .map(|(k, v)| match known.get(k.as_str()) {
            Some((rank, shape)) => (*rank, k, v, shape),
            None => {
                let rank = TYPE_META
                    .iter()
                    .find(|(n, _)| n == k)
                    .map_or(u32::MAX, |&(_, r)| r);
                (rank, k, v, &ANY)
            }
        })
        .collect();
    // Stable: unknown fields keep their sorted order.
    entries.sort_by_key(|e| e.0);
    let mut map = s.serialize_map(Some(entries.len()))?;
    for (_, k, value, shape) in entries {
        map.serialize_entry(k, &Ordered { value, shape })?;
    }
    map.end()
}

fn seq<S: Serializer>(items: &[Value], element: &Shape, s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(items.len()))?;
    for value in items {
        seq.serialize_element(&Ordered {
            value,
            shape: element,
        })?;
    }
    seq.end()
}

/// `{"kind", "apiVersion", "metadata", "items"}`, the items as `item`s.
fn list<S: Serializer>(value: &Value, item: &Shape, s: S) -> Result<S::Ok, S::Error> {
    let Value::Object(fields) = value else {
        return value.serialize(s);
    };
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
            ("metadata", _) => map.serialize_entry(
                k,
                &Ordered {
                    value: v,
                    shape: &LIST_META,
                },
            )?,
            ("items", Value::Array(items)) => map.serialize_entry(k, &Items(items, item))?,
            _ => map.serialize_entry(k, v)?,
        }
    }
    map.end()
}

struct Items<'a>(&'a [Value], &'a Shape);

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
    fn numbers_read_back_as_written() {
        // What the store writes must read back the same after a restart,
        // to the last bit of a float.
        let cm = json!({"kind": "Widget", "apiVersion": "example.com/v1",
            "spec": {"f": 1.1111111111111111e24, "g": 0.1, "h": -2.5e-300, "i": 9007199254740993_u64}});
        let back: Value = serde_json::from_slice(&to_vec(&cm)).unwrap();
        assert_eq!(back, cm);
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
