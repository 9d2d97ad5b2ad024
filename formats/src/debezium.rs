//! Debezium's JSON envelope (MySQL and MariaDB connectors) as Sluice change events
//! (docs/formats.md, section Debezium).
//!
//! A message is the envelope `{"before","after","source","op","ts_ms"}`, alone (the JSON
//! converter with `schemas.enable=false`) or as the `payload` of `{"schema","payload"}`. With the
//! schema, each column's Connect type and logical name say how Debezium encoded the value, and the
//! value is turned back into the form sluice-capture writes for that MySQL type
//! (docs/event-format.md); without it, values stay as Debezium wrote them, except BIT(1)'s
//! booleans.

use crate::{Format, FormatError};
use serde_json::{Map, Value};
use sluice_event::{ChangeEvent, EventType, Position, Row, Source, EVENT_VERSION};
use std::collections::HashMap;
use values::{convert_value, kind_of};

mod values;

/// The change events of one message value, without its key: `pk` stays empty (see
/// [`decode_with_key`]).
pub fn decode(payload: &[u8]) -> Result<Vec<ChangeEvent>, FormatError> {
    decode_with_key(None, payload)
}

/// The change events of one message, with the primary-key column names read from its Kafka key
/// (`{"id":7}`, or `{"schema":…,"payload":{"id":7}}`), in the key's order. A missing or `null`
/// key leaves `pk` empty; a key that is not such an object is an error.
pub fn decode_with_key(
    key: Option<&[u8]>,
    payload: &[u8],
) -> Result<Vec<ChangeEvent>, FormatError> {
    let pk = match key {
        Some(key) => key_columns(key).map_err(err)?,
        None => Vec::new(),
    };
    decode_value(payload, pk).map_err(err)
}

/// `seq` for a change at binlog `file`, event offset `pos`, row `row` of that event:
/// `(file number << 32) | (pos + row)`.
///
/// A rows event at `pos` is longer than its row count, so `pos + row` is below the next event's
/// offset: unique and increasing within a file, and offsets are 32-bit in binlog v4. File numbers
/// up to 2^28 − 1 keep `seq` below 2^60, under the time-based `seq` of sluice-capture
/// (`ts_ms << 20` ≥ 2^60 since 2006), so a move to sluice-capture keeps versions increasing.
pub fn binlog_seq(file: &str, pos: u64, row: u64) -> Result<i64, String> {
    const MAX_FILE_NUMBER: u64 = (1 << 28) - 1;
    let number = file
        .rsplit_once('.')
        .map(|(_, n)| n)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| {
            format!(
                "source.file {file:?} does not end in a binlog file number (like mysql-bin.000003); \
                 seq is derived from it"
            )
        })?;
    if number > MAX_FILE_NUMBER {
        return Err(format!(
            "binlog file number {number} of {file:?} is above {MAX_FILE_NUMBER}, the largest seq \
             can carry below sluice-capture's time-based seq"
        ));
    }
    let offset = pos
        .checked_add(row)
        .filter(|o| *o <= u64::from(u32::MAX))
        .ok_or_else(|| {
            format!(
                "source.pos {pos} + source.row {row} is beyond a 32-bit binlog offset; \
                 seq is derived from them"
            )
        })?;
    // number < 2^28 and offset < 2^32: at most 2^60 − 1, no overflow.
    Ok(((number << 32) | offset) as i64)
}

fn err(reason: String) -> FormatError {
    FormatError::new(Format::Debezium, reason)
}

type Res<T> = Result<T, String>;

/// Column name to its Connect schema (`type`, `name`, `parameters`).
type Columns<'a> = HashMap<&'a str, &'a Map<String, Value>>;

fn key_columns(key: &[u8]) -> Res<Vec<String>> {
    if key.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_slice(key)
        .map_err(|e| format!("the Kafka key is not JSON ({e}); expected Debezium's key object"))?;
    let (schema, payload) = split_envelope(&value);
    if let Some(fields) = schema
        .and_then(|s| s.get("fields"))
        .and_then(Value::as_array)
    {
        return fields
            .iter()
            .map(|f| {
                f.get("field")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| "the Kafka key's schema has a field without a name".to_owned())
            })
            .collect();
    }
    match payload {
        Value::Null => Ok(Vec::new()),
        Value::Object(o) => Ok(o.keys().cloned().collect()),
        other => Err(format!(
            "the Kafka key is {}, not an object of primary-key columns; expected Debezium's key \
             (the JSON converter's `{{\"id\":7}}` or `{{\"schema\":…,\"payload\":{{\"id\":7}}}}`)",
            kind_of(other)
        )),
    }
}

/// `(schema, payload)` of a `{"schema","payload"}` envelope, or `(None, value)`.
fn split_envelope(value: &Value) -> (Option<&Map<String, Value>>, &Value) {
    if let Some(o) = value.as_object() {
        if o.len() == 2 {
            if let (Some(Value::Object(schema)), Some(payload)) =
                (o.get("schema"), o.get("payload"))
            {
                if schema.contains_key("type") {
                    return (Some(schema), payload);
                }
            }
        }
    }
    (None, value)
}

fn decode_value(bytes: &[u8], pk: Vec<String>) -> Res<Vec<ChangeEvent>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new()); // a tombstone
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        format!("not JSON ({e}); expected Debezium's envelope written by the JsonConverter")
    })?;
    let (schema, payload) = split_envelope(&value);
    let envelope = match payload {
        Value::Null => return Ok(Vec::new()), // a tombstone
        Value::Object(o) => o,
        other => {
            return Err(format!(
                "the message is {}, not Debezium's envelope object",
                kind_of(other)
            ))
        }
    };
    let Some(op) = envelope.get("op") else {
        // Heartbeats ({"ts_ms":…}) and schema-change messages carry no row to apply.
        if envelope.contains_key("ddl") || envelope.keys().all(|k| k == "ts_ms") {
            return Ok(Vec::new());
        }
        return Err(
            "no `op` field: not a Debezium change event (a message flattened by \
             ExtractNewRecordState is not supported; read the topic without that transform)"
                .to_owned(),
        );
    };
    let kind = match op.as_str() {
        Some("c") | Some("r") => EventType::Insert,
        Some("u") => EventType::Update,
        Some("d") => EventType::Delete,
        Some("t") => {
            return Err(format!(
                "a TRUNCATE of {} (op \"t\"): Sluice events carry rows and cannot empty a target; \
                 truncate the targets by hand, or leave `skipped.operations` at its default \"t\"",
                table_name(envelope)
            ))
        }
        _ => {
            return Err(format!(
                "unknown op {op}; expected \"c\", \"u\", \"d\", \"r\" or \"t\""
            ))
        }
    };
    let columns = schema.map(row_schema).unwrap_or_default();
    let columns = (!columns.is_empty()).then_some(&columns);

    let source = envelope
        .get("source")
        .and_then(Value::as_object)
        .ok_or("no `source` object")?;
    let text = |field: &str| -> Res<String> {
        source
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("source.{field} is missing or not a string"))
    };
    let number = |field: &str| -> Res<u64> {
        source
            .get(field)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("source.{field} is missing or not a non-negative integer"))
    };
    let file = text("file")?;
    let offset = number("pos")?;
    let row = match source.get("row") {
        None | Some(Value::Null) => 0,
        Some(_) => number("row")?,
    };
    let seq = binlog_seq(&file, offset, row)?;
    let ts_ms = source
        .get("ts_ms")
        .and_then(Value::as_i64)
        .ok_or("source.ts_ms is missing or not an integer")?;
    let snapshot = op == "r"
        || match source.get("snapshot") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s != "false",
            _ => false,
        };
    let head = ChangeEvent {
        v: EVENT_VERSION,
        seq,
        source: if snapshot {
            Source::Snapshot
        } else {
            Source::Binlog
        },
        instance: text("name")?,
        database: text("db")?,
        table: text("table")?,
        kind,
        ts_ms,
        capture_ms: envelope
            .get("ts_ms")
            .and_then(Value::as_i64)
            .unwrap_or(ts_ms),
        pos: Position {
            file,
            offset,
            row: u32::try_from(row).map_err(|_| format!("source.row {row} is too large"))?,
            gtid: source
                .get("gtid")
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        xid: None,
        txn_last: false,
        pk,
        data: Row::new(),
        old: None,
        sql: None,
    };

    let image = |field: &str| -> Res<Option<Row>> {
        match envelope.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => convert_row(v, columns)
                .map(Some)
                .map_err(|e| format!("{field}: {e}")),
        }
    };
    let before = image("before")?;
    let after = image("after")?;
    let missing = |field: &str| format!("op {op} without `{field}`");
    match kind {
        EventType::Insert => Ok(vec![ChangeEvent {
            data: after.ok_or_else(|| missing("after"))?,
            ..head
        }]),
        EventType::Delete => Ok(vec![ChangeEvent {
            data: before.ok_or_else(|| missing("before"))?,
            ..head
        }]),
        _ => {
            let after = after.ok_or_else(|| missing("after"))?;
            let Some(before) = before else {
                return Ok(vec![ChangeEvent {
                    data: after,
                    ..head
                }]);
            };
            let key_changed = head.pk.iter().any(|c| before.get(c) != after.get(c));
            if key_changed {
                // As sluice-capture publishes it: each key's history stays under its own key.
                let delete = ChangeEvent {
                    kind: EventType::Delete,
                    data: before,
                    ..head.clone()
                };
                let insert = ChangeEvent {
                    kind: EventType::Insert,
                    data: after,
                    ..head
                };
                return Ok(vec![delete, insert]);
            }
            let old: Row = before
                .into_iter()
                .filter(|(c, v)| after.get(c).is_some_and(|a| a != v))
                .collect();
            Ok(vec![ChangeEvent {
                data: after,
                old: Some(old),
                ..head
            }])
        }
    }
}

fn table_name(envelope: &Map<String, Value>) -> String {
    let part = |f: &str| {
        envelope
            .get("source")
            .and_then(|s| s.get(f))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    format!("{}.{}", part("db"), part("table"))
}

/// The row's columns from the envelope schema's `after` (or `before`) field.
fn row_schema(schema: &Map<String, Value>) -> Columns<'_> {
    let mut columns = HashMap::new();
    let Some(fields) = schema.get("fields").and_then(Value::as_array) else {
        return columns;
    };
    let row = fields.iter().find(|f| {
        matches!(
            f.get("field").and_then(Value::as_str),
            Some("after" | "before")
        ) && f.get("fields").is_some()
    });
    for col in row
        .and_then(|r| r.get("fields"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
    {
        if let Some(name) = col.get("field").and_then(Value::as_str) {
            columns.insert(name, col);
        }
    }
    columns
}

fn convert_row(row: &Value, columns: Option<&Columns<'_>>) -> Res<Row> {
    let Value::Object(row) = row else {
        return Err(format!("the row is {}, not an object", kind_of(row)));
    };
    let mut out = Row::new();
    for (name, value) in row {
        let field = columns.and_then(|c| c.get(name.as_str()).copied());
        let value = convert_value(value, field).map_err(|e| format!("column `{name}`: {e}"))?;
        out.insert(name.clone(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
