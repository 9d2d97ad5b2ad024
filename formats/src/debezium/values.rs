//! Debezium's value encodings turned back into the form sluice-capture writes for each MySQL
//! type (docs/event-format.md), guided by each column's Connect schema and declared type.

use super::Res;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{Map, Value};
use sluice_event::Cell;

/// The declared MySQL type, from `column.propagate.source.type` / `datatype.propagate.source.type`.
pub(super) struct Declared<'a> {
    column_type: Option<&'a str>,
    length: Option<u32>,
    scale: Option<u32>,
}

pub(super) fn declared(field: &Map<String, Value>) -> Declared<'_> {
    let params = field.get("parameters").and_then(Value::as_object);
    let param = |p: &str| params.and_then(|ps| ps.get(p)).and_then(Value::as_str);
    let int = |p: &str| param(p).and_then(|s| s.trim().parse::<u32>().ok());
    Declared {
        column_type: param("__debezium.source.column.type"),
        length: int("__debezium.source.column.length"),
        scale: int("__debezium.source.column.scale").or_else(|| int("scale")),
    }
}

pub(super) fn convert_value(value: &Value, field: Option<&Map<String, Value>>) -> Res<Value> {
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

pub(super) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn int_of(v: &Value) -> Res<i64> {
    v.as_i64()
        .ok_or_else(|| format!("expected an integer, found {}", kind_of(v)))
}

pub(super) fn str_of(v: &Value) -> Res<&str> {
    v.as_str()
        .ok_or_else(|| format!("expected a string, found {}", kind_of(v)))
}

pub(super) fn bytes_of(v: &Value) -> Res<Vec<u8>> {
    BASE64
        .decode(str_of(v)?)
        .map_err(|e| format!("expected base64 bytes: {e}"))
}

/// `(negative, decimal digits)` of a big-endian two's-complement integer.
pub(super) fn unscaled(bytes: &[u8]) -> (bool, String) {
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

pub(super) fn decimal_value(
    (negative, digits): (bool, String),
    scale: u32,
    as_integer: bool,
) -> Res<Value> {
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

pub(super) fn pad_scale(s: &str, scale: u32) -> String {
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
pub(super) fn fsp_or(fsp: Option<u8>, micros: u32, precision: u8) -> u8 {
    fsp.unwrap_or(if micros == 0 { 0 } else { precision })
}

pub(super) fn time_value(micros: i128, fsp: Option<u8>, precision: u8) -> Res<Value> {
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

pub(super) fn datetime_value(micros: i128, fsp: Option<u8>, precision: u8) -> Res<Value> {
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
pub(super) fn zoned_value(s: &str, fsp: Option<u8>) -> Res<Value> {
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

pub(super) fn year_u16(year: i64) -> Res<u16> {
    u16::try_from(year).map_err(|_| format!("year {year} is outside MySQL's range"))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(super) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day number since 1970-01-01.
pub(super) fn civil_from_days(days: i64) -> (i64, u8, u8) {
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
