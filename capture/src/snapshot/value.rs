//! SELECTed values to the same JSON the binlog decoder writes: each value becomes the
//! [`Cell`] the binlog would have carried, so a row reads the same whether it came from a
//! snapshot or from the binlog (and the window compares keys byte for byte).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use mysql_async::Value;
use serde::{Deserialize, Serialize};
use sluice_event::Cell;

/// How a column's SELECTed value is read, from information_schema.COLUMNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Decimal,
    Float,
    Double,
    Date,
    DateTime { fsp: u8 },
    Timestamp { fsp: u8 },
    Time { fsp: u8 },
    Year,
    Text,
    Bytes,
    Enum,
    Set,
    Bit,
    Json,
    Geometry,
}

impl Kind {
    /// From `DATA_TYPE`, `CHARACTER_SET_NAME`, `DATETIME_PRECISION`, and whether MariaDB's
    /// `json_valid()` check marks the LONGTEXT as JSON.
    pub fn of(data_type: &str, charset: Option<&str>, fsp: Option<u64>, json_text: bool) -> Kind {
        let fsp = fsp.unwrap_or(0).min(6) as u8;
        match data_type.to_ascii_lowercase().as_str() {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => Kind::Int,
            "decimal" | "numeric" => Kind::Decimal,
            "float" => Kind::Float,
            "double" | "real" => Kind::Double,
            "date" => Kind::Date,
            "datetime" => Kind::DateTime { fsp },
            "timestamp" => Kind::Timestamp { fsp },
            "time" => Kind::Time { fsp },
            "year" => Kind::Year,
            "enum" => Kind::Enum,
            "set" => Kind::Set,
            "bit" => Kind::Bit,
            "json" => Kind::Json,
            // MariaDB's UUID, INET4 and INET6: SELECT gives the text the binlog decoder prints.
            "uuid" | "inet4" | "inet6" => Kind::Text,
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Kind::Bytes,
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => Kind::Geometry,
            _ if json_text => Kind::Json,
            _ if charset.is_some_and(|c| c.eq_ignore_ascii_case("binary")) => Kind::Bytes,
            _ => Kind::Text,
        }
    }
}

/// The cell the binlog would carry for `value` of a column of `kind` (session time zone UTC).
pub fn cell(kind: Kind, value: Value) -> Cell {
    match (kind, value) {
        (_, Value::NULL) => Cell::Null,
        (Kind::Year, Value::Int(v)) => Cell::Year(v.clamp(0, i64::from(u16::MAX)) as u16),
        (Kind::Year, Value::UInt(v)) => Cell::Year(v.min(u64::from(u16::MAX)) as u16),
        (_, Value::Int(v)) => Cell::Int(v),
        (_, Value::UInt(v)) => Cell::UInt(v),
        (Kind::Float, Value::Float(v)) => Cell::Float(v),
        (Kind::Float, Value::Double(v)) => Cell::Float(v as f32),
        (_, Value::Float(v)) => Cell::Double(f64::from(v)),
        (_, Value::Double(v)) => Cell::Double(v),
        (Kind::Date, Value::Date(year, month, day, ..)) => Cell::Date { year, month, day },
        (Kind::Timestamp { fsp }, Value::Date(y, mo, d, h, mi, s, us)) => Cell::Timestamp {
            secs: if y == 0 {
                0
            } else {
                epoch_seconds(y, mo, d, h, mi, s)
            },
            micros: us,
            fsp,
        },
        (kind, Value::Date(year, month, day, hour, minute, second, micros)) => Cell::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
            fsp: match kind {
                Kind::DateTime { fsp } => fsp,
                _ => 0,
            },
        },
        (kind, Value::Time(negative, days, h, minutes, seconds, micros)) => Cell::Time {
            negative,
            hours: days * 24 + u32::from(h),
            minutes,
            seconds,
            micros,
            fsp: match kind {
                Kind::Time { fsp } => fsp,
                _ => 0,
            },
        },
        (kind, Value::Bytes(b)) => bytes_cell(kind, b),
    }
}

fn bytes_cell(kind: Kind, b: Vec<u8>) -> Cell {
    match kind {
        Kind::Bytes => Cell::Bytes(b),
        Kind::Decimal => Cell::Decimal(text(b)),
        Kind::Enum => Cell::Enum(text(b)),
        Kind::Set => {
            let s = text(b);
            Cell::Set(if s.is_empty() {
                Vec::new()
            } else {
                s.split(',').map(str::to_owned).collect()
            })
        }
        Kind::Bit => Cell::Bit(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))),
        // Kept as compact text, as the binlog decoder keeps MariaDB's JSON, so a snapshot row
        // and the same row from the binlog have the same bytes; parsed only where that fails.
        Kind::Json => sluice_event::json_column(&b).unwrap_or_else(|| Cell::Text(text(b))),
        Kind::Geometry if b.len() >= 4 => Cell::Geometry {
            srid: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            wkb: b[4..].to_vec(),
        },
        // Numbers the text protocol (or a cast) delivers as text.
        Kind::Int => match std::str::from_utf8(&b).ok() {
            Some(s) => match (s.parse::<i64>(), s.parse::<u64>()) {
                (Ok(v), _) => Cell::Int(v),
                (_, Ok(v)) => Cell::UInt(v),
                _ => Cell::Text(s.to_owned()),
            },
            None => Cell::Bytes(b),
        },
        _ => Cell::Text(text(b)),
    }
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Seconds since the epoch of a UTC civil time (days-from-civil, proleptic Gregorian).
fn epoch_seconds(y: u16, m: u8, d: u8, h: u8, mi: u8, s: u8) -> i64 {
    let (y, m, d) = (i64::from(y), i64::from(m), i64::from(d));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s)
}

/// A primary-key value as stored with the snapshot progress, so a restarted capture binds
/// exactly the value it stopped after (binary keys, dates and all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v", rename_all = "lowercase")]
pub enum KeyValue {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Base64 of the bytes.
    Bytes(String),
    Date(u16, u8, u8, u8, u8, u8, u32),
    Time(bool, u32, u8, u8, u8, u32),
}

impl From<&Value> for KeyValue {
    fn from(v: &Value) -> KeyValue {
        match v {
            Value::NULL => KeyValue::Null,
            Value::Int(x) => KeyValue::Int(*x),
            Value::UInt(x) => KeyValue::UInt(*x),
            Value::Float(x) => KeyValue::Float(*x),
            Value::Double(x) => KeyValue::Double(*x),
            Value::Bytes(b) => KeyValue::Bytes(BASE64.encode(b)),
            Value::Date(a, b, c, d, e, f, g) => KeyValue::Date(*a, *b, *c, *d, *e, *f, *g),
            Value::Time(a, b, c, d, e, f) => KeyValue::Time(*a, *b, *c, *d, *e, *f),
        }
    }
}

impl KeyValue {
    /// The value to bind; `None` when stored bytes are not base64 (a hand-edited file).
    pub fn to_value(&self) -> Option<Value> {
        Some(match self {
            KeyValue::Null => Value::NULL,
            KeyValue::Int(x) => Value::Int(*x),
            KeyValue::UInt(x) => Value::UInt(*x),
            KeyValue::Float(x) => Value::Float(*x),
            KeyValue::Double(x) => Value::Double(*x),
            KeyValue::Bytes(b) => Value::Bytes(BASE64.decode(b).ok()?),
            KeyValue::Date(a, b, c, d, e, f, g) => Value::Date(*a, *b, *c, *d, *e, *f, *g),
            KeyValue::Time(a, b, c, d, e, f) => Value::Time(*a, *b, *c, *d, *e, *f),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selected_values_render_like_the_binlog() {
        let cases: Vec<(Kind, Value, serde_json::Value)> = vec![
            (Kind::Int, Value::Int(-5), json!(-5)),
            (Kind::Int, Value::UInt(u64::MAX), json!(u64::MAX)),
            (
                Kind::Decimal,
                Value::Bytes(b"-12.30".to_vec()),
                json!("-12.30"),
            ),
            (Kind::Float, Value::Float(1.1), json!(1.1)),
            (Kind::Double, Value::Double(-2.5e-300), json!(-2.5e-300)),
            (
                Kind::Date,
                Value::Date(2026, 11, 21, 0, 0, 0, 0),
                json!("2026-11-21"),
            ),
            (
                Kind::DateTime { fsp: 3 },
                Value::Date(2026, 11, 21, 9, 15, 2, 123_000),
                json!("2026-11-21T09:15:02.123"),
            ),
            (
                Kind::Timestamp { fsp: 0 },
                Value::Date(1970, 1, 1, 0, 0, 1, 0),
                json!("1970-01-01T00:00:01Z"),
            ),
            (
                Kind::Timestamp { fsp: 3 },
                Value::Date(2038, 1, 19, 3, 14, 7, 999_000),
                json!("2038-01-19T03:14:07.999Z"),
            ),
            (
                Kind::Timestamp { fsp: 0 },
                Value::Date(0, 0, 0, 0, 0, 0, 0),
                json!("0000-00-00T00:00:00Z"),
            ),
            (
                Kind::Time { fsp: 0 },
                Value::Time(true, 34, 22, 59, 59, 0),
                json!("-838:59:59"),
            ),
            (Kind::Year, Value::Int(2155), json!(2155)),
            (
                Kind::Text,
                Value::Bytes("héllo 🌊".as_bytes().to_vec()),
                json!("héllo 🌊"),
            ),
            (Kind::Bytes, Value::Bytes(vec![0, 255]), json!("AP8=")),
            (Kind::Enum, Value::Bytes(b"paid".to_vec()), json!("paid")),
            (Kind::Set, Value::Bytes(b"a,c".to_vec()), json!(["a", "c"])),
            (Kind::Set, Value::Bytes(Vec::new()), json!([])),
            (Kind::Bit, Value::Bytes(vec![0xff; 8]), json!(u64::MAX)),
            (Kind::Bit, Value::Bytes(vec![1]), json!(1)),
            (
                Kind::Json,
                Value::Bytes(b"{\"a\":[1]}".to_vec()),
                json!({"a":[1]}),
            ),
            (
                Kind::Geometry,
                Value::Bytes(vec![0xe6, 0x10, 0, 0, 1, 2]),
                json!({"srid": 4326, "wkb": "AQI="}),
            ),
            (Kind::Text, Value::NULL, json!(null)),
        ];
        for (kind, value, want) in cases {
            assert_eq!(
                cell(kind, value.clone()).to_json(),
                want,
                "{kind:?} {value:?}"
            );
        }
    }

    #[test]
    fn kinds_from_information_schema() {
        assert_eq!(Kind::of("BIGINT", None, None, false), Kind::Int);
        assert_eq!(
            Kind::of("datetime", None, Some(6), false),
            Kind::DateTime { fsp: 6 }
        );
        assert_eq!(
            Kind::of("longtext", Some("utf8mb4"), None, true),
            Kind::Json
        );
        assert_eq!(
            Kind::of("longtext", Some("utf8mb4"), None, false),
            Kind::Text
        );
        assert_eq!(Kind::of("point", None, None, false), Kind::Geometry);
        assert_eq!(Kind::of("varbinary", None, None, false), Kind::Bytes);
        assert_eq!(Kind::of("uuid", None, None, false), Kind::Text);
        assert_eq!(Kind::of("INET6", Some("binary"), None, false), Kind::Text);
    }

    #[test]
    fn key_values_round_trip() {
        for v in [
            Value::Int(-1),
            Value::UInt(7),
            Value::Bytes(vec![0, 1, 2]),
            Value::Date(2026, 1, 2, 3, 4, 5, 6),
            Value::Time(true, 1, 2, 3, 4, 5),
        ] {
            let k = KeyValue::from(&v);
            let text = serde_json::to_string(&k).unwrap();
            let back: KeyValue = serde_json::from_str(&text).unwrap();
            assert_eq!(back.to_value(), Some(v));
        }
        assert_eq!(KeyValue::Bytes("@@".into()).to_value(), None);
    }
}
