//! Typed column values and their JSON form (the table in docs/event-format.md).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// One decoded column value, typed as MySQL/MariaDB typed it.
///
/// The capture decodes binlog bytes into cells; [`Cell::to_json`] is the single place that
/// decides how each type looks in an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    /// TINYINT..BIGINT signed.
    Int(i64),
    /// TINYINT..BIGINT UNSIGNED.
    UInt(u64),
    /// DECIMAL as exact text with its declared scale, e.g. `-12.30`.
    Decimal(String),
    Float(f32),
    Double(f64),
    /// DATE; zero parts are allowed (`0000-00-00`), as MySQL allows them.
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    /// DATETIME(fsp), wall-clock time without a zone.
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
        fsp: u8,
    },
    /// TIMESTAMP(fsp) as seconds since the Unix epoch (UTC); 0 is MySQL's zero timestamp.
    Timestamp {
        secs: i64,
        micros: u32,
        fsp: u8,
    },
    /// TIME(fsp), possibly negative, hours up to 838.
    Time {
        negative: bool,
        hours: u32,
        minutes: u8,
        seconds: u8,
        micros: u32,
        fsp: u8,
    },
    Year(u16),
    /// CHAR, VARCHAR, TEXT decoded from the column's charset.
    Text(String),
    /// BINARY, VARBINARY, BLOB and text columns with the binary charset.
    Bytes(Vec<u8>),
    Enum(String),
    Set(Vec<String>),
    /// BIT(1..64).
    Bit(u64),
    /// JSON column, already decoded.
    Json(Value),
    /// JSON column kept as text: compact, valid JSON (see [`compact_json`](crate::compact_json)),
    /// written into events as it is. MariaDB stores JSON as text, so this avoids parsing it.
    JsonText(String),
    /// GEOMETRY: SRID and well-known binary.
    Geometry {
        srid: u32,
        wkb: Vec<u8>,
    },
}

impl Cell {
    /// The value as it appears in an event's `data` and `old`.
    pub fn to_json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Int(v) => Value::from(*v),
            Cell::UInt(v) => Value::from(*v),
            Cell::Decimal(s) | Cell::Text(s) | Cell::Enum(s) => Value::String(s.clone()),
            // Go through the shortest decimal text of the f32, so FLOAT 1.1 is 1.1 and not
            // 1.100000023841858; that is also what MySQL shows for the column.
            Cell::Float(v) => float_json(f64::from(*v), v.to_string().parse::<f64>().ok()),
            Cell::Double(v) => float_json(*v, Some(*v)),
            Cell::Date { year, month, day } => {
                Value::String(format!("{year:04}-{month:02}-{day:02}"))
            }
            Cell::DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
                fsp,
            } => {
                let mut s =
                    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
                push_fraction(&mut s, *micros, *fsp);
                Value::String(s)
            }
            Cell::Timestamp { secs, micros, fsp } => {
                let mut s = if *secs == 0 {
                    "0000-00-00T00:00:00".to_owned()
                } else {
                    utc_datetime(*secs)
                };
                push_fraction(&mut s, *micros, *fsp);
                s.push('Z');
                Value::String(s)
            }
            Cell::Time {
                negative,
                hours,
                minutes,
                seconds,
                micros,
                fsp,
            } => {
                let sign = if *negative { "-" } else { "" };
                let mut s = format!("{sign}{hours:02}:{minutes:02}:{seconds:02}");
                push_fraction(&mut s, *micros, *fsp);
                Value::String(s)
            }
            Cell::Year(y) => Value::from(*y),
            Cell::Bytes(b) => Value::String(BASE64.encode(b)),
            Cell::Set(members) => {
                Value::Array(members.iter().map(|m| Value::String(m.clone())).collect())
            }
            Cell::Bit(v) => Value::from(*v),
            Cell::Json(v) => v.clone(),
            Cell::JsonText(s) => {
                serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
            }
            Cell::Geometry { srid, wkb } => json!({"srid": srid, "wkb": BASE64.encode(wkb)}),
        }
    }
}

fn float_json(fallback: f64, preferred: Option<f64>) -> Value {
    serde_json::Number::from_f64(preferred.unwrap_or(fallback))
        .map(Value::Number)
        // MySQL cannot store NaN or infinities; should one arrive, null is the honest JSON.
        .unwrap_or(Value::Null)
}

/// Appends `.` and `fsp` digits of `micros` (truncated, as MySQL stores them).
fn push_fraction(s: &mut String, micros: u32, fsp: u8) {
    if fsp == 0 {
        return;
    }
    let fsp = u32::from(fsp.min(6));
    let scaled = micros.min(999_999) / 10u32.pow(6 - fsp);
    let _ = write!(s, ".{scaled:0width$}", width = fsp as usize);
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC for seconds since the epoch (proleptic Gregorian calendar).
fn utc_datetime(secs: i64) -> String {
    let (y, m, d, h, mi, s) = utc_parts(secs);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
}

/// Year, month, day, hour, minute, second in UTC of seconds since the epoch.
pub(crate) fn utc_parts(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    (y, m, d, rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's civil_from_days algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_of_each_type() {
        let cases: Vec<(Cell, Value)> = vec![
            (Cell::Null, Value::Null),
            (Cell::Int(i64::MIN), json!(i64::MIN)),
            (Cell::UInt(u64::MAX), json!(u64::MAX)),
            (Cell::Decimal("-12.30".into()), json!("-12.30")),
            (Cell::Float(1.1), json!(1.1)),
            (Cell::Double(-2.5e-300), json!(-2.5e-300)),
            (
                Cell::Date {
                    year: 2026,
                    month: 11,
                    day: 21,
                },
                json!("2026-11-21"),
            ),
            (
                Cell::Date {
                    year: 0,
                    month: 0,
                    day: 0,
                },
                json!("0000-00-00"),
            ),
            (
                Cell::DateTime {
                    year: 2026,
                    month: 11,
                    day: 21,
                    hour: 9,
                    minute: 15,
                    second: 2,
                    micros: 123_456,
                    fsp: 6,
                },
                json!("2026-11-21T09:15:02.123456"),
            ),
            (
                Cell::DateTime {
                    year: 2026,
                    month: 11,
                    day: 21,
                    hour: 9,
                    minute: 15,
                    second: 2,
                    micros: 120_000,
                    fsp: 2,
                },
                json!("2026-11-21T09:15:02.12"),
            ),
            (
                Cell::DateTime {
                    year: 2026,
                    month: 1,
                    day: 2,
                    hour: 3,
                    minute: 4,
                    second: 5,
                    micros: 0,
                    fsp: 0,
                },
                json!("2026-01-02T03:04:05"),
            ),
            (
                Cell::Timestamp {
                    secs: 1_763_716_502,
                    micros: 123_000,
                    fsp: 3,
                },
                json!("2025-11-21T09:15:02.123Z"),
            ),
            (
                Cell::Timestamp {
                    secs: 1,
                    micros: 0,
                    fsp: 0,
                },
                json!("1970-01-01T00:00:01Z"),
            ),
            (
                Cell::Timestamp {
                    secs: 2_147_483_647,
                    micros: 999_999,
                    fsp: 6,
                },
                json!("2038-01-19T03:14:07.999999Z"),
            ),
            (
                Cell::Timestamp {
                    secs: 0,
                    micros: 0,
                    fsp: 1,
                },
                json!("0000-00-00T00:00:00.0Z"),
            ),
            (
                Cell::Time {
                    negative: true,
                    hours: 838,
                    minutes: 59,
                    seconds: 59,
                    micros: 0,
                    fsp: 6,
                },
                json!("-838:59:59.000000"),
            ),
            (
                Cell::Time {
                    negative: false,
                    hours: 1,
                    minutes: 2,
                    seconds: 3,
                    micros: 500_000,
                    fsp: 1,
                },
                json!("01:02:03.5"),
            ),
            (Cell::Year(2026), json!(2026)),
            (Cell::Text("héllo 🌊".into()), json!("héllo 🌊")),
            (Cell::Bytes(vec![0, 255, 0]), json!("AP8A")),
            (Cell::Enum("paid".into()), json!("paid")),
            (Cell::Set(vec!["a".into(), "c".into()]), json!(["a", "c"])),
            (Cell::Set(vec![]), json!([])),
            (Cell::Bit(u64::MAX), json!(u64::MAX)),
            (
                Cell::Json(json!({"a":[1,{"b":null}]})),
                json!({"a":[1,{"b":null}]}),
            ),
            (
                Cell::Geometry {
                    srid: 4326,
                    wkb: vec![1, 1, 0, 0, 0],
                },
                json!({"srid":4326,"wkb":"AQEAAAA="}),
            ),
        ];
        for (cell, want) in cases {
            assert_eq!(cell.to_json(), want, "{cell:?}");
        }
    }

    #[test]
    fn civil_dates_around_leap_years() {
        assert_eq!(utc_datetime(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(utc_datetime(4_107_542_399), "2100-02-28T23:59:59");
        assert_eq!(utc_datetime(-1), "1969-12-31T23:59:59");
    }
}
