#![no_main]
//! Kubernetes protobuf request bodies of any shape decode to JSON or to an
//! error, never a panic or a stack overflow; what decodes goes on through
//! the kind's decoding and validation as a JSON body would.

use libfuzzer_sys::fuzz_target;
use shoal_registry::{resources::RESOURCES, validation};
use shoal_wire::protobuf;

fuzz_target!(|data: &[u8]| {
    let Ok(obj) = protobuf::decode(data) else {
        return;
    };
    let kind = obj["kind"].as_str().unwrap_or_default();
    if let Some(r) = RESOURCES.iter().find(|r| r.kind == kind) {
        let _ = validation::decode(r, &obj, validation::FieldValidation::Strict);
        let _ = validation::validate(r, &obj);
    }
});
