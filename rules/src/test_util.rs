//! Builders shared by the unit tests.

use serde_json::Value;
use sluice_event::{ChangeEvent, EventType, Position, Row, Source};

/// A row from a JSON object literal.
pub(crate) fn row(v: Value) -> Row {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// An event of `shop.orders` on instance `main`, `seq` 42.
pub(crate) fn event(kind: EventType, pk: &[&str], data: Value, old: Option<Value>) -> ChangeEvent {
    ChangeEvent {
        v: 1,
        seq: 42,
        source: Source::Binlog,
        instance: "main".into(),
        database: "shop".into(),
        table: "orders".into(),
        kind,
        ts_ms: 0,
        capture_ms: 0,
        pos: Position {
            file: "binlog.000001".into(),
            offset: 4,
            row: 0,
            gtid: None,
        },
        xid: None,
        txn_last: true,
        pk: pk.iter().map(|s| s.to_string()).collect(),
        data: row(data),
        old: old.map(row),
        sql: None,
    }
}
