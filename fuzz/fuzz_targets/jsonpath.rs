#![no_main]
//! The JSONPath of printer columns and scale paths: any text is read or
//! refused, never a panic, and a path that is valid selects without one.

use libfuzzer_sys::fuzz_target;
use shoal_machinery::jsonpath;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let doc = serde_json::json!({"spec": {"é": [1, {"a": "b"}], "items": [{"type": "Ready"}]}});
    let selected = jsonpath::select(&doc, &text);
    let _ = jsonpath::keys(&text);
    if !jsonpath::valid(&text) {
        assert!(selected.is_empty());
    }
});
