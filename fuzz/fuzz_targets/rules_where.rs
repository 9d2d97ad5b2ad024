//! Rules' `where` expressions: parse any text; a parsed one evaluates against events without
//! panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_event::{ChangeEvent, EventType};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(filter) = sluice_rules::Filter::parse(text) else {
        return;
    };
    for event in events() {
        let _ = filter.eval(&event);
    }
});

fn events() -> Vec<ChangeEvent> {
    let base: ChangeEvent = serde_json::from_value(serde_json::json!({
        "v": 1, "seq": 7, "source": "binlog", "instance": "i", "database": "shop",
        "table": "orders", "type": "UPDATE", "ts_ms": 1, "capture_ms": 2,
        "pos": {"file": "binlog.000001", "offset": 4, "row": 0},
        "pk": ["id"],
        "data": {"id": 7, "status": "paid", "total": "12.50", "note": null, "tags": ["a"],
                 "big": 18446744073709551615u64, "neg": -3, "f": 1.5, "obj": {"k": [1, {"x": true}]}},
        "old": {"id": 7, "status": "new", "total": "12.00"}
    }))
    .expect("a sample event");
    let mut insert = base.clone();
    insert.kind = EventType::Insert;
    insert.old = None;
    vec![base, insert]
}
