#![no_main]
//! Label and field selector parsing never panics.

use libfuzzer_sys::fuzz_target;
use shoal_machinery::selectors::{FieldSelector, LabelSelector};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(s) = LabelSelector::parse(&text) {
        let _ = s.matches(Some(&serde_json::json!({"a": "b"})));
    }
    if let Ok(s) = FieldSelector::parse(&text) {
        let _ = s.matches(&serde_json::json!({"metadata": {"name": "x"}}));
    }
});
