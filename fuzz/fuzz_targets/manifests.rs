#![no_main]
//! Decoding, strict field validation, defaulting and semantic validation of
//! any JSON as any served kind never panic.

use libfuzzer_sys::fuzz_target;
use shoal_apiserver::{defaults, resources::RESOURCES, validation};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(mut obj) = serde_json::from_slice::<serde_json::Value>(rest) else { return };
    let r = &RESOURCES[usize::from(pick) % RESOURCES.len()];
    let _ = validation::decode(r, &obj, validation::FieldValidation::Strict);
    defaults::apply(r.kind, &mut obj);
    let _ = validation::validate(r, &obj);
});
