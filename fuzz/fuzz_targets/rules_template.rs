//! Rules' templates (`{column}` placeholders in ids and keys): parse any text; a parsed one
//! renders rows without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(template) = sluice_rules::Template::parse(text) else {
        return;
    };
    let serde_json::Value::Object(row) = serde_json::json!({
        "id": 7, "name": "Ada", "none": null, "f": 1.25, "list": [1, 2], "obj": {"a": 1},
        "unicode": "ß→水", "empty": ""
    }) else {
        return;
    };
    let _ = template.render(&row);
    let _ = template.try_render(&row);
});
