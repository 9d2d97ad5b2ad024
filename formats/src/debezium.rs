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
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{Map, Value};
use sluice_event::{Cell, ChangeEvent, EventType, Position, Row, Source, EVENT_VERSION};
use std::collections::HashMap;

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

/// The declared MySQL type, from `column.propagate.source.type` / `datatype.propagate.source.type`.
struct Declared<'a> {
    column_type: Option<&'a str>,
    length: Option<u32>,
    scale: Option<u32>,
}

fn declared(field: &Map<String, Value>) -> Declared<'_> {
    let params = field.get("parameters").and_then(Value::as_object);
    let param = |p: &str| params.and_then(|ps| ps.get(p)).and_then(Value::as_str);
    let int = |p: &str| param(p).and_then(|s| s.trim().parse::<u32>().ok());
    Declared {
        column_type: param("__debezium.source.column.type"),
        length: int("__debezium.source.column.length"),
        scale: int("__debezium.source.column.scale").or_else(|| int("scale")),
    }
}

fn convert_value(value: &Value, field: Option<&Map<String, Value>>) -> Res<Value> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let Some(field) = field else {
        // Without a schema only BIT(1)'s boolean is known for what it is.
        return Ok(match value {
            Value::Bool(b) => Value::from(u8::from(*b)),
            v => v.clone(),
        });
    };
    let decl = declared(field);
    let ctype = decl.column_type.map(str::to_ascii_uppercase);
    let unsigned_bigint = ctype
        .as_deref()
        .is_some_and(|t| t.starts_with("BIGINT") && t.contains("UNSIGNED"));
    let is_decimal = ctype
        .as_deref()
        .is_some_and(|t| t.starts_with("DECIMAL") || t.starts_with("NUMERIC"));
    let fsp = decl.length.map(|l| l.min(6) as u8);
    let name = field.get("name").and_then(Value::as_str).unwrap_or("");
    match name {
        "org.apache.kafka.connect.data.Decimal" => {
            let digits = unscaled(&bytes_of(value)?);
            decimal_value(digits, decl.scale.unwrap_or(0), unsigned_bigint)
        }
        "io.debezium.data.VariableScaleDecimal" => {
            let scale = value
                .get("scale")
                .and_then(Value::as_u64)
                .ok_or("VariableScaleDecimal without an integer `scale`")?;
            let bytes = bytes_of(value.get("value").unwrap_or(&Value::Null))?;
            let scale = u32::try_from(scale).map_err(|_| "scale out of range".to_owned())?;
            decimal_value(unscaled(&bytes), scale, unsigned_bigint)
        }
        "io.debezium.time.Date" | "org.apache.kafka.connect.data.Date" => {
            let (year, month, day) = civil_from_days(int_of(value)?);
            Ok(Cell::Date {
                year: year_u16(year)?,
                month,
                day,
            }
            .to_json())
        }
        "io.debezium.time.Time" | "org.apache.kafka.connect.data.Time" => {
            time_value(i128::from(int_of(value)?) * 1_000, fsp, 3)
        }
        "io.debezium.time.MicroTime" => time_value(i128::from(int_of(value)?), fsp, 6),
        "io.debezium.time.NanoTime" => time_value(i128::from(int_of(value)?) / 1_000, fsp, 6),
        "io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp" => {
            datetime_value(i128::from(int_of(value)?) * 1_000, fsp, 3)
        }
        "io.debezium.time.MicroTimestamp" => datetime_value(i128::from(int_of(value)?), fsp, 6),
        "io.debezium.time.NanoTimestamp" => {
            datetime_value(i128::from(int_of(value)?).div_euclid(1_000), fsp, 6)
        }
        "io.debezium.time.ZonedTimestamp" => zoned_value(str_of(value)?, fsp),
        "io.debezium.data.Bits" => {
            // Debezium writes BIT(n) as java.util.BitSet's bytes: least significant byte first.
            let bytes = bytes_of(value)?;
            if bytes.len() > 8 {
                return Err(format!("{} bytes for a BIT, at most 8 fit", bytes.len()));
            }
            let n = bytes
                .iter()
                .rev()
                .fold(0u64, |n, b| (n << 8) | u64::from(*b));
            Ok(Value::from(n))
        }
        "io.debezium.data.EnumSet" => {
            let s = str_of(value)?;
            Ok(Value::Array(
                s.split(',')
                    .filter(|m| !m.is_empty())
                    .map(|m| Value::String(m.to_owned()))
                    .collect(),
            ))
        }
        "io.debezium.data.Json" => {
            let s = str_of(value)?;
            Ok(serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned())))
        }
        // The binlog keeps YEAR as an offset from 1900 with 0 for `0000`, and Debezium adds
        // 1900 to it: 1900, never a valid YEAR, is the zero year.
        "io.debezium.time.Year" => match int_of(value)? {
            1900 => Ok(Value::from(0)),
            y => Ok(Value::from(y)),
        },
        n if n.starts_with("io.debezium.data.geometry.") => {
            let wkb = value
                .get("wkb")
                .and_then(Value::as_str)
                .ok_or("a geometry without a base64 `wkb`")?;
            let srid = value.get("srid").and_then(Value::as_u64).unwrap_or(0);
            let mut geometry = Map::new();
            geometry.insert("srid".into(), Value::from(srid));
            geometry.insert("wkb".into(), Value::String(wkb.to_owned()));
            Ok(Value::Object(geometry))
        }
        _ => match value {
            Value::Bool(b) => Ok(Value::from(u8::from(*b))),
            // bigint.unsigned.handling.mode=long wraps values above 2^63 − 1.
            Value::Number(n) if unsigned_bigint && n.as_i64().is_some_and(|i| i < 0) => {
                Ok(Value::from(n.as_i64().unwrap_or(0) as u64))
            }
            // decimal.handling.mode=double: the declared scale restores the exact text's form.
            Value::Number(n) if is_decimal => match (n.as_f64(), decl.scale) {
                (Some(f), Some(scale)) => Ok(Value::String(format!("{f:.0$}", scale as usize))),
                _ => Ok(value.clone()),
            },
            // decimal.handling.mode=string: already the exact text, padded to the scale.
            Value::String(s) if is_decimal => Ok(Value::String(match decl.scale {
                Some(scale) => pad_scale(s, scale),
                None => s.clone(),
            })),
            v => Ok(v.clone()),
        },
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn int_of(v: &Value) -> Res<i64> {
    v.as_i64()
        .ok_or_else(|| format!("expected an integer, found {}", kind_of(v)))
}

fn str_of(v: &Value) -> Res<&str> {
    v.as_str()
        .ok_or_else(|| format!("expected a string, found {}", kind_of(v)))
}

fn bytes_of(v: &Value) -> Res<Vec<u8>> {
    BASE64
        .decode(str_of(v)?)
        .map_err(|e| format!("expected base64 bytes: {e}"))
}

/// `(negative, decimal digits)` of a big-endian two's-complement integer.
fn unscaled(bytes: &[u8]) -> (bool, String) {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut magnitude = bytes.to_vec();
    if negative {
        // Two's complement: invert and add one.
        for b in magnitude.iter_mut() {
            *b = !*b;
        }
        for b in magnitude.iter_mut().rev() {
            let (sum, carry) = b.overflowing_add(1);
            *b = sum;
            if !carry {
                break;
            }
        }
    }
    // Base 10^9 limbs, least significant first.
    let mut limbs: Vec<u64> = Vec::new();
    for b in magnitude {
        let mut carry = u64::from(b);
        for limb in limbs.iter_mut() {
            let t = *limb * 256 + carry;
            *limb = t % 1_000_000_000;
            carry = t / 1_000_000_000;
        }
        while carry > 0 {
            limbs.push(carry % 1_000_000_000);
            carry /= 1_000_000_000;
        }
    }
    let mut digits = match limbs.last() {
        Some(top) => top.to_string(),
        None => "0".to_owned(),
    };
    for limb in limbs.iter().rev().skip(1) {
        digits.push_str(&format!("{limb:09}"));
    }
    (negative && digits != "0", digits)
}

fn decimal_value((negative, digits): (bool, String), scale: u32, as_integer: bool) -> Res<Value> {
    if as_integer && scale == 0 && !negative {
        if let Ok(n) = digits.parse::<u64>() {
            return Ok(Value::from(n));
        }
    }
    let scale = scale as usize;
    if scale > 1_000 {
        return Err(format!("decimal scale {scale} is out of range"));
    }
    let digits = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = digits.split_at(digits.len() - scale);
    let sign = if negative { "-" } else { "" };
    Ok(Value::String(if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }))
}

fn pad_scale(s: &str, scale: u32) -> String {
    let scale = scale as usize;
    let have = s.split_once('.').map_or(0, |(_, f)| f.len());
    if have >= scale
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return s.to_owned();
    }
    let mut out = s.to_owned();
    if have == 0 {
        out.push('.');
    }
    out.extend(std::iter::repeat_n('0', scale - have));
    out
}

/// Fraction digits when the declared fsp is unknown: none for a whole second, else the
/// encoding's precision (3 for millisecond encodings, 6 for micro and nano ones).
fn fsp_or(fsp: Option<u8>, micros: u32, precision: u8) -> u8 {
    fsp.unwrap_or(if micros == 0 { 0 } else { precision })
}

fn time_value(micros: i128, fsp: Option<u8>, precision: u8) -> Res<Value> {
    let negative = micros < 0;
    let total = micros.unsigned_abs();
    let hours = u32::try_from(total / 3_600_000_000)
        .map_err(|_| format!("TIME of {micros} µs is out of range"))?;
    let frac = (total % 1_000_000) as u32;
    Ok(Cell::Time {
        negative,
        hours,
        minutes: (total / 60_000_000 % 60) as u8,
        seconds: (total / 1_000_000 % 60) as u8,
        micros: frac,
        fsp: fsp_or(fsp, frac, precision),
    }
    .to_json())
}

fn datetime_value(micros: i128, fsp: Option<u8>, precision: u8) -> Res<Value> {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000) as u32;
    let days = i64::try_from(secs.div_euclid(86_400))
        .map_err(|_| format!("DATETIME of {micros} µs is out of range"))?;
    let of_day = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    Ok(Cell::DateTime {
        year: year_u16(year)?,
        month,
        day,
        hour: (of_day / 3600) as u8,
        minute: (of_day / 60 % 60) as u8,
        second: (of_day % 60) as u8,
        micros: frac,
        fsp: fsp_or(fsp, frac, precision),
    }
    .to_json())
}

/// A ZonedTimestamp (`2026-11-21T09:15:02.123Z`, any offset) as TIMESTAMP in UTC. Debezium
/// writes MySQL's zero TIMESTAMP as the epoch, which no real TIMESTAMP can be, so it becomes
/// the zero TIMESTAMP again.
fn zoned_value(s: &str, fsp: Option<u8>) -> Res<Value> {
    let bad = || format!("{s:?} is not an ISO-8601 timestamp with an offset");
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Res<i64> {
        let part = s.get(from..from + len).ok_or_else(bad)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<i64>().map_err(|_| bad())
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut i = 19;
    let mut digits = 0usize;
    let mut micros = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if digits < 6 {
                micros = micros * 10 + u32::from(c - b'0');
            }
            digits += 1;
            i += 1;
        }
        if digits == 0 {
            return Err(bad());
        }
        for _ in digits.min(6)..6 {
            micros *= 10;
        }
    }
    let offset_secs = match &s[i..] {
        "Z" => 0,
        rest if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            if rest.as_bytes()[3] != b':' {
                return Err(bad());
            }
            let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return Err(bad()),
    };
    let secs = days_from_civil(year, month as u32, day as u32) * 86_400
        + hour * 3600
        + minute * 60
        + second
        - offset_secs;
    Ok(Cell::Timestamp {
        secs,
        micros,
        fsp: fsp.unwrap_or(digits.min(6) as u8),
    }
    .to_json())
}

fn year_u16(year: i64) -> Res<u16> {
    u16::try_from(year).map_err(|_| format!("year {year} is outside MySQL's range"))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day number since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    // Clamped far outside MySQL's years, so the arithmetic cannot overflow on any input.
    let z = days.clamp(-1_000_000_000, 1_000_000_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zero_year_is_restored_from_debeziums_1900() {
        let field: Map<String, Value> = serde_json::from_str(
            r#"{"type":"int32","optional":true,"name":"io.debezium.time.Year","field":"yr"}"#,
        )
        .unwrap();
        assert_eq!(
            convert_value(&Value::from(1900), Some(&field)),
            Ok(Value::from(0))
        );
        assert_eq!(
            convert_value(&Value::from(2155), Some(&field)),
            Ok(Value::from(2155))
        );
        assert_eq!(
            convert_value(&Value::from(1901), Some(&field)),
            Ok(Value::from(1901))
        );
    }

    #[test]
    fn seq_orders_files_offsets_and_rows() {
        let a = binlog_seq("mysql-bin.000003", 4711, 0).unwrap();
        let b = binlog_seq("mysql-bin.000003", 4711, 1).unwrap();
        let c = binlog_seq("mysql-bin.000003", 4800, 0).unwrap();
        let d = binlog_seq("mysql-bin.000004", 4, 0).unwrap();
        assert!(a < b && b < c && c < d);
        assert_eq!(a, (3 << 32) | 4711);
        // Same message, same seq.
        assert_eq!(a, binlog_seq("mysql-bin.000003", 4711, 0).unwrap());
    }

    #[test]
    fn seq_stays_below_the_time_based_seq() {
        let max = binlog_seq("b.268435455", u64::from(u32::MAX), 0).unwrap();
        assert!(max < 1 << 60);
        // 2006-01-01 in ms, shifted as SeqGenerator does.
        assert!(max < 1_136_073_600_000_i64 << 20);
    }

    #[test]
    fn seq_refuses_what_it_cannot_carry() {
        assert!(binlog_seq("b.268435456", 4, 0).is_err());
        assert!(binlog_seq("b.000001", u64::from(u32::MAX), 1).is_err());
        assert!(binlog_seq("b.000001", u64::MAX, u64::MAX).is_err());
        assert!(binlog_seq("binlog", 4, 0).is_err());
        assert!(binlog_seq("binlog.", 4, 0).is_err());
        assert!(binlog_seq("binlog.00x1", 4, 0).is_err());
        assert!(binlog_seq("binlog.99999999999999999999999", 4, 0).is_err());
    }

    #[test]
    fn calendar_round_trips() {
        for days in [-719_528, -1, 0, 1, 20_413, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, u32::from(m), u32::from(d)), days);
        }
        assert_eq!(civil_from_days(20_413), (2025, 11, 21));
    }

    #[test]
    fn decimals_from_unscaled_bytes() {
        let s = |bytes: &[u8], scale| decimal_value(unscaled(bytes), scale, false).unwrap();
        assert_eq!(s(&[0x04, 0xce], 2), "12.30");
        assert_eq!(s(&[0xce], 2), "-0.50");
        assert_eq!(s(&[0x01], 2), "0.01");
        assert_eq!(s(&[0x00], 0), "0");
        assert_eq!(s(&[], 3), "0.000");
        assert_eq!(s(&[0x80], 0), "-128");
        assert_eq!(s(&[0xff; 9], 0), "-1");
        // 10^30, beyond i128's 38 digits only at 65, but across several limbs.
        let big = [
            0x0c, 0x9f, 0x2c, 0x9c, 0xd0, 0x46, 0x74, 0xed, 0xea, 0x40, 0x00, 0x00, 0x00,
        ];
        assert_eq!(s(&big, 0), format!("1{}", "0".repeat(30)));
    }
    fn fixture(name: &str) -> (Vec<u8>, Vec<u8>) {
        let path = format!(
            "{}/tests/fixtures/debezium/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let bytes = |x: &Value| serde_json::to_vec(x).unwrap();
        (bytes(&v["key"]), bytes(&v["value"]))
    }

    #[test]
    fn key_names_the_pk_and_a_key_change_is_delete_then_insert() {
        let (key, value) = fixture("hand-keychange-noschema.json");
        let events = decode_with_key(Some(&key), &value).unwrap();
        let kinds: Vec<EventType> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventType::Delete, EventType::Insert]);
        assert_eq!(events[0].data["id"], 7);
        assert_eq!(events[1].data["id"], 8);
        assert!(events.iter().all(|e| e.pk == ["id"] && e.old.is_none()));

        let (key, value) = fixture("hand-update-schema.json");
        let [event] = &decode_with_key(Some(&key), &value).unwrap()[..] else {
            panic!("one event expected")
        };
        assert_eq!(event.kind, EventType::Update);
        assert_eq!(event.pk, ["id"]);
    }

    #[test]
    fn keys_in_every_form() {
        assert_eq!(key_columns(br#"{"b":1,"a":2}"#).unwrap(), ["b", "a"]);
        assert_eq!(key_columns(b"null").unwrap(), Vec::<String>::new());
        assert_eq!(key_columns(b"").unwrap(), Vec::<String>::new());
        let with_schema = br#"{"schema":{"type":"struct","fields":[{"type":"int32","field":"x"},{"type":"string","field":"y"}]},"payload":{"x":1,"y":"a"}}"#;
        assert_eq!(key_columns(with_schema).unwrap(), ["x", "y"]);
        for bad in [&b"{"[..], b"[1,2]", b"7", br#""id""#] {
            let e = decode_with_key(Some(bad), b"null").unwrap_err();
            assert!(e.reason.contains("Kafka key"), "{e}");
        }
    }
}
