#![no_main]
//! The three patch appliers never panic: any (object, patch) pair gives a
//! result or an error.

use libfuzzer_sys::fuzz_target;
use shoal_machinery::patch;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\n').unwrap_or((&text, "{}"));
    let (Ok(original), Ok(p)) = (serde_json::from_str(a), serde_json::from_str(b)) else {
        return;
    };
    let _ = patch::strategic_merge(&original, &p);
    let _ = patch::merge(&original, &p);
    let _ = patch::json(&original, &p);
});
