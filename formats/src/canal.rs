//! Canal's flat messages as Sluice change events (docs/formats.md).
//!
//! A flat message carries the rows of one binlog rows event as strings, with each column's
//! declared MySQL type in `mysqlType`; the values are converted to the Sluice representation
//! (docs/event-format.md) by that declared type.

use crate::{Format, FormatError};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_event::{ChangeEvent, EventType, Position, Row, Source, EVENT_VERSION};

/// The `instance` of every event read from Canal: a flat message does not name its source.
pub const CANAL_INSTANCE: &str = "canal";

/// The change events of one message.
pub fn decode(payload: &[u8]) -> Result<Vec<ChangeEvent>, FormatError> {
    let msg: FlatMessage = serde_json::from_slice(payload)
        .map_err(|e| err(format!("not a Canal flat message: {e}")))?;
    let es = msg
        .es
        .ok_or_else(|| err("no `es` (binlog execute time); Sluice needs it for ts_ms and seq"))?;
    if es < 0 {
        return Err(err(format!("`es` is {es}, not a time in milliseconds")));
    }
    let ts = msg.ts.unwrap_or(es);
    let head = Head {
        database: msg.database.clone().unwrap_or_default(),
        table: msg.table.clone().unwrap_or_default(),
        es,
        ts,
    };
    let kind = msg.kind.as_deref().unwrap_or("").to_ascii_uppercase();
    if msg.is_ddl == Some(true) || DDL_TYPES.contains(&kind.as_str()) {
        let mut ev = head.event(EventType::Ddl, 0, 0);
        ev.sql = Some(msg.sql.unwrap_or_default());
        return Ok(vec![ev]);
    }
    let kind = match kind.as_str() {
        "INSERT" => EventType::Insert,
        "UPDATE" => EventType::Update,
        "DELETE" => EventType::Delete,
        k if IGNORED_TYPES.contains(&k) => return Ok(Vec::new()),
        "" => {
            return Err(err(
                "no `type`; expected INSERT, UPDATE, DELETE or a DDL type",
            ))
        }
        k => {
            return Err(err(format!(
                "type {k} is neither a row change (INSERT, UPDATE, DELETE) nor DDL"
            )))
        }
    };
    let pk = msg.pk_names.clone().unwrap_or_default();
    if pk.is_empty() {
        return Err(err(format!(
            "no primary key for {}.{} (`pkNames` is empty); the sink writes rows by key, so give the table a primary key",
            head.database, head.table
        )));
    }
    let types = msg.mysql_type.unwrap_or_default();
    let rows = msg.data.unwrap_or_default();
    let olds = msg.old.unwrap_or_default();
    let mut out = Vec::with_capacity(rows.len());
    for (i, raw) in rows.iter().enumerate() {
        let row_no = u32::try_from(i).unwrap_or(u32::MAX);
        let data = convert_row(raw, &types, i)?;
        if let Some(col) = pk.iter().find(|c| !data.contains_key(c.as_str())) {
            return Err(err(format!(
                "row {i} of {}.{} has no value for key column `{col}`",
                head.database, head.table
            )));
        }
        match kind {
            EventType::Update => {
                let old = match olds.get(i) {
                    Some(Some(raw_old)) => convert_row(raw_old, &types, i)?,
                    _ => Row::new(),
                };
                for (kind, data, old) in split_update(&pk, data, old) {
                    let mut ev = head.event(kind, out.len(), row_no);
                    ev.pk = pk.clone();
                    ev.data = data;
                    ev.old = old;
                    out.push(ev);
                }
            }
            _ => {
                let mut ev = head.event(kind, out.len(), row_no);
                ev.pk = pk.clone();
                ev.data = data;
                out.push(ev);
            }
        }
    }
    Ok(out)
}

/// The `seq` of the `n`-th event of a message: `(clamp(ts, es, es's second + 999 ms) << 20) + n`.
///
/// `es` is the binlog event time (whole seconds in milliseconds) and `ts` the millisecond at
/// which Canal built the message; both are in the message, so re-reading it gives the same
/// `seq`. Messages of different seconds are ordered by `es`; within one second, by the
/// millisecond Canal built them in while it stays less than a second behind the source; `n`
/// orders the events of one message. It never exceeds the next second's values, and is at or
/// just above what sluice-capture assigns to the same second.
pub(crate) fn seq(es: i64, ts: i64, n: usize) -> i64 {
    let es = es.max(0);
    let second_end = (es - es % 1000).saturating_add(999);
    let ms = ts.clamp(es, second_end);
    let n = i64::try_from(n).unwrap_or(i64::MAX).min(ROW_SLOTS - 1);
    ms.saturating_mul(ROW_SLOTS).saturating_add(n)
}

/// Events per millisecond of `seq`, as in sluice-capture's `ts_ms << 20`.
const ROW_SLOTS: i64 = 1 << 20;

/// Canal's types of statements that change a schema.
const DDL_TYPES: &[&str] = &[
    "CREATE", "ALTER", "ERASE", "TRUNCATE", "RENAME", "CINDEX", "DINDEX",
];
/// Canal's types that carry nothing to apply.
const IGNORED_TYPES: &[&str] = &[
    "QUERY",
    "GTID",
    "BEGIN",
    "COMMIT",
    "XACOMMIT",
    "XAROLLBACK",
    "MHEARTBEAT",
];

#[derive(Deserialize)]
struct FlatMessage {
    database: Option<String>,
    table: Option<String>,
    #[serde(rename = "pkNames")]
    pk_names: Option<Vec<String>>,
    #[serde(rename = "isDdl")]
    is_ddl: Option<bool>,
    #[serde(rename = "type")]
    kind: Option<String>,
    es: Option<i64>,
    ts: Option<i64>,
    sql: Option<String>,
    #[serde(rename = "mysqlType")]
    mysql_type: Option<Map<String, Value>>,
    data: Option<Vec<Map<String, Value>>>,
    old: Option<Vec<Option<Map<String, Value>>>>,
}

/// What every event of one message shares.
struct Head {
    database: String,
    table: String,
    es: i64,
    ts: i64,
}

impl Head {
    fn event(&self, kind: EventType, n: usize, row: u32) -> ChangeEvent {
        ChangeEvent {
            v: EVENT_VERSION,
            seq: seq(self.es, self.ts, n),
            source: Source::Binlog,
            instance: CANAL_INSTANCE.to_owned(),
            database: self.database.clone(),
            table: self.table.clone(),
            kind,
            ts_ms: self.es,
            capture_ms: self.ts,
            pos: Position {
                file: String::new(),
                offset: 0,
                row,
                gtid: None,
            },
            xid: None,
            txn_last: false,
            pk: Vec::new(),
            data: Row::new(),
            old: None,
            sql: None,
        }
    }
}

/// An UPDATE as Sluice's capture publishes it: `old` keeps only the columns whose value
/// changed, and a change of the primary key becomes a DELETE of the old key (its full
/// before-image) then an INSERT of the new one.
pub(crate) fn split_update(
    pk: &[String],
    data: Row,
    mut old: Row,
) -> Vec<(EventType, Row, Option<Row>)> {
    old.retain(|col, prev| data.get(col) != Some(prev));
    if !pk.iter().any(|c| old.contains_key(c.as_str())) {
        return vec![(EventType::Update, data, Some(old))];
    }
    let mut before = data.clone();
    for (col, prev) in old {
        before.insert(col, prev);
    }
    vec![
        (EventType::Delete, before, None),
        (EventType::Insert, data, None),
    ]
}

fn err(reason: impl Into<String>) -> FormatError {
    FormatError::new(Format::Canal, reason)
}

/// One row's string values converted by the columns' declared types.
fn convert_row(
    raw: &Map<String, Value>,
    types: &Map<String, Value>,
    i: usize,
) -> Result<Row, FormatError> {
    let mut row = Row::new();
    for (col, value) in raw {
        let text = match value {
            Value::Null => {
                row.insert(col.clone(), Value::Null);
                continue;
            }
            Value::String(s) => s,
            _ => {
                return Err(err(format!(
                    "row {i}, column `{col}`: Canal writes every value as a string or null, found {value}"
                )))
            }
        };
        let decl = types.get(col).and_then(Value::as_str).ok_or_else(|| {
            err(format!(
                "row {i}, column `{col}` has no declared type in `mysqlType`; Sluice converts values by it"
            ))
        })?;
        let v = convert(ColType::parse(decl), text)
            .map_err(|why| err(format!("row {i}, column `{col}` ({decl}): {why}")))?;
        row.insert(col.clone(), v);
    }
    Ok(row)
}

/// A column's declared MySQL type, as far as the conversion needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColType {
    Int,
    Decimal { scale: usize },
    Float,
    Double,
    DateTime { fsp: usize },
    Timestamp { fsp: usize },
    Time { fsp: usize },
    Year,
    Text,
    Binary,
    Set,
    Bit,
    Json,
    Geometry,
}

impl ColType {
    /// Reads `mysqlType` text such as `decimal(10,2)`, `datetime(3)`, `int(10) unsigned`.
    fn parse(decl: &str) -> ColType {
        let decl = decl.trim().to_ascii_lowercase();
        let name_end = decl.find(['(', ' ']).unwrap_or(decl.len());
        let name = &decl[..name_end];
        let args: Vec<usize> = decl[name_end..]
            .strip_prefix('(')
            .and_then(|rest| rest.split(')').next())
            .map(|inner| {
                inner
                    .split(',')
                    .filter_map(|a| a.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let fsp = args.first().copied().unwrap_or(0).min(6);
        match name {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => ColType::Int,
            "decimal" | "numeric" | "dec" | "fixed" => ColType::Decimal {
                scale: args.get(1).copied().unwrap_or(0).min(65),
            },
            "float" => ColType::Float,
            "double" | "real" => ColType::Double,
            "datetime" => ColType::DateTime { fsp },
            "timestamp" => ColType::Timestamp { fsp },
            "time" => ColType::Time { fsp },
            "year" => ColType::Year,
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                ColType::Binary
            }
            "set" => ColType::Set,
            "bit" => ColType::Bit,
            "json" => ColType::Json,
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => ColType::Geometry,
            // DATE, CHAR, VARCHAR, TEXT, ENUM and anything unknown stay as Canal wrote them.
            _ => ColType::Text,
        }
    }
}

/// One non-null value as Sluice writes it.
fn convert(t: ColType, s: &str) -> Result<Value, String> {
    Ok(match t {
        ColType::Int | ColType::Year | ColType::Bit => integer(s)?,
        ColType::Decimal { scale } => Value::String(decimal(s, scale)?),
        ColType::Float => {
            let f: f32 = s.trim().parse().map_err(|_| "not a number".to_owned())?;
            // The shortest text of the f32, so FLOAT 3.14 stays 3.14 (as the capture writes it).
            number(f.to_string().parse::<f64>().unwrap_or(f64::from(f)))
        }
        ColType::Double => number(s.trim().parse().map_err(|_| "not a number".to_owned())?),
        ColType::DateTime { fsp } => Value::String(datetime(s, fsp)?),
        ColType::Timestamp { fsp } => Value::String(format!("{}Z", datetime(s, fsp)?)),
        ColType::Time { fsp } => Value::String(with_fraction(s, fsp)?),
        ColType::Text => Value::String(s.to_owned()),
        ColType::Binary => Value::String(base64_latin1(s)?),
        ColType::Set => Value::Array(if s.is_empty() {
            Vec::new()
        } else {
            s.split(',').map(|m| Value::String(m.to_owned())).collect()
        }),
        ColType::Json => match serde_json::from_str::<Value>(s) {
            Ok(v) => v,
            // Text that is not JSON (a MariaDB column without its json_valid check) stays text.
            Err(_) => Value::String(s.to_owned()),
        },
        ColType::Geometry => {
            let bytes = latin1_bytes(s)?;
            if bytes.len() < 4 {
                return Err("a geometry needs 4 bytes of SRID before its WKB".to_owned());
            }
            let srid = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let mut o = Map::new();
            o.insert("srid".to_owned(), Value::from(srid));
            o.insert(
                "wkb".to_owned(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(&bytes[4..])),
            );
            Value::Object(o)
        }
    })
}

fn integer(s: &str) -> Result<Value, String> {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        Ok(Value::from(i))
    } else if let Ok(u) = s.parse::<u64>() {
        Ok(Value::from(u))
    } else {
        Err(format!("`{s}` is not an integer"))
    }
}

fn number(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// `-12.3` with scale 2 → `-12.30`; extra fraction digits must be zeros.
fn decimal(s: &str, scale: usize) -> Result<String, String> {
    let s = s.trim();
    let (sign, digits) = match s.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return Err(format!("`{s}` is not a decimal number"));
    }
    let int = match int.trim_start_matches('0') {
        "" => "0",
        i => i,
    };
    let frac = fit_fraction(frac, scale)
        .ok_or_else(|| format!("`{s}` has more fraction digits than the declared scale {scale}"))?;
    Ok(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// `2026-11-21 09:15:02.1` with fsp 3 → `2026-11-21T09:15:02.100`.
fn datetime(s: &str, fsp: usize) -> Result<String, String> {
    let (date, time) = s
        .split_once([' ', 'T'])
        .ok_or_else(|| format!("`{s}` is not a date and time"))?;
    Ok(format!("{date}T{}", with_fraction(time, fsp)?))
}

/// A time of day (or TIME value) with exactly `fsp` fraction digits.
fn with_fraction(s: &str, fsp: usize) -> Result<String, String> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{s}` has a malformed fraction"));
    }
    let frac = fit_fraction(frac, fsp)
        .ok_or_else(|| format!("`{s}` has more fraction digits than the declared {fsp}"))?;
    Ok(if fsp == 0 {
        whole.to_owned()
    } else {
        format!("{whole}.{frac}")
    })
}

/// `frac` padded or cut to `n` digits; `None` when cutting would drop a non-zero digit.
fn fit_fraction(frac: &str, n: usize) -> Option<String> {
    if frac.len() <= n {
        Some(format!("{frac:0<n$}"))
    } else if frac[n..].bytes().all(|b| b == b'0') {
        Some(frac[..n].to_owned())
    } else {
        None
    }
}

/// Canal carries binary values as ISO-8859-1 text: one character per byte.
fn latin1_bytes(s: &str) -> Result<Vec<u8>, String> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| format!("binary value has character {c:?} above U+00FF; Canal writes bytes as ISO-8859-1")))
        .collect()
}

fn base64_latin1(s: &str) -> Result<String, String> {
    Ok(base64::engine::general_purpose::STANDARD.encode(latin1_bytes(s)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ES: i64 = 1_763_716_502_000;

    #[test]
    fn seq_orders_by_second_then_canal_millisecond_then_event() {
        assert_eq!(seq(ES, ES + 13, 0), (ES + 13) << 20);
        assert_eq!(seq(ES, ES + 13, 2), ((ES + 13) << 20) + 2);
        assert!(seq(ES, ES + 13, 0) < seq(ES, ES + 14, 0));
        // Canal a second or more behind: every message of that second shares the last ms.
        assert_eq!(seq(ES, ES + 5_000, 0), (ES + 999) << 20);
        assert!(seq(ES, ES + 5_000, ROW_SLOTS as usize * 4) < seq(ES + 1000, ES + 1000, 0));
        // Canal's clock behind the source's: the start of the second.
        assert_eq!(seq(ES, ES - 3_000, 1), (ES << 20) + 1);
        // Never above sluice-capture's seq a second later, never negative.
        assert!(seq(ES, i64::MAX, 0) < (ES + 1000) << 20);
        assert_eq!(seq(-5, -5, 0), 0);
        assert_eq!(seq(i64::MAX, i64::MAX, 7), i64::MAX);
    }

    #[test]
    fn types_parse_from_canal_declarations() {
        assert_eq!(
            ColType::parse("decimal(10,2)"),
            ColType::Decimal { scale: 2 }
        );
        assert_eq!(ColType::parse("datetime(3)"), ColType::DateTime { fsp: 3 });
        assert_eq!(ColType::parse("timestamp"), ColType::Timestamp { fsp: 0 });
        assert_eq!(ColType::parse("tinyint(1) unsigned"), ColType::Int);
        assert_eq!(ColType::parse("set('a','b')"), ColType::Set);
        assert_eq!(ColType::parse("VARBINARY(16)"), ColType::Binary);
        assert_eq!(ColType::parse("enum('x')"), ColType::Text);
        assert_eq!(ColType::parse(""), ColType::Text);
    }

    #[test]
    fn decimals_take_their_declared_scale() {
        assert_eq!(decimal("12.3", 2).as_deref(), Ok("12.30"));
        assert_eq!(decimal("-0.5", 2).as_deref(), Ok("-0.50"));
        assert_eq!(decimal("007.000", 0).as_deref(), Ok("7"));
        assert!(decimal("1.234", 2).is_err());
        assert!(decimal("1e3", 0).is_err());
        assert!(decimal("-", 0).is_err());
    }

    #[test]
    fn temporal_values_get_exactly_fsp_digits() {
        assert_eq!(
            datetime("2026-11-21 09:15:02.1", 3).as_deref(),
            Ok("2026-11-21T09:15:02.100")
        );
        assert_eq!(
            datetime("2026-11-21 09:15:02", 0).as_deref(),
            Ok("2026-11-21T09:15:02")
        );
        assert_eq!(
            with_fraction("-838:59:59", 6).as_deref(),
            Ok("-838:59:59.000000")
        );
        assert!(datetime("2026-11-21", 0).is_err());
    }
}
