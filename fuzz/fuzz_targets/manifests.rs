#![no_main]
//! Decoding (JSON or YAML), strict field validation, defaulting, semantic
//! validation and writing in Go's field order of any input as any served
//! kind never panic (and the writing changes nothing but the order), nor do
//! a custom resource's structural schema steps and CEL rules.

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use shoal_machinery::{cel, schema};
use shoal_http::yaml_to_json;
use shoal_registry::{kinds, resources::RESOURCES, validation};
use shoal_wire::gotypes;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let decoded = if pick & 0x80 != 0 {
        yaml_to_json(rest).ok()
    } else {
        serde_json::from_slice::<serde_json::Value>(rest).ok()
    };
    let Some(mut obj) = decoded else { return };
    let r = &RESOURCES[usize::from(pick & 0x7f) % RESOURCES.len()];
    let _ = validation::decode(r, &obj, validation::FieldValidation::Strict);
    let mut custom = obj.clone();
    kinds::of(r).default(&mut obj);
    let _ = validation::validate(r, &obj);
    // Written in Go's field order, the object is the same object.
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(r.api_version()));
        m.insert("kind".into(), json!(r.kind));
    }
    let written = gotypes::json::to_vec(&obj);
    let read = serde_json::from_slice::<serde_json::Value>(&written).ok();
    assert_eq!(read.as_ref(), Some(&obj));

    let s = json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object",
        "properties": {"n": {"type": "integer", "minimum": 0, "default": 1}, "s": {"type": "string", "pattern": "^a+$", "maxLength": 4},
            "l": {"type": "array", "maxItems": 3, "items": {"x-kubernetes-int-or-string": true}},
            "m": {"type": "object", "additionalProperties": {"type": "string", "enum": ["x"]}},
            "p": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "nullable": true}},
        "x-kubernetes-validations": [
            {"rule": "!has(self.n) || self.n < 100"},
            {"rule": "!has(self.l) || self.l.all(x, string(x).size() < 8)"},
            {"rule": "self == oldSelf"}]}}});
    schema::prune(&s, &mut custom, &mut Vec::new());
    schema::default(&s, &mut custom);
    let _ = schema::validate(&s, &custom);
    let _ = cel::check(&s, &custom, None);
    let _ = cel::check(&s, &custom, Some(&obj));
});
