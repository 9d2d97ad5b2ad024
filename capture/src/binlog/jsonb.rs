//! MySQL's binary JSON (the JSON column type of MySQL 5.7+), decoded to a JSON value.

use super::cursor::{Cursor, Malformed};
use super::decimal::read_decimal;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{Map, Number, Value};

/// Nesting deeper than this is refused rather than recursing without bound on corrupt input.
const MAX_DEPTH: usize = 100;

/// Decodes one binary JSON document; an empty value is JSON `null`, as MySQL treats it.
pub fn decode(bytes: &[u8]) -> Result<Value, Malformed> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let t = bytes[0];
    value(t, &bytes[1..], 0)
}

fn value(t: u8, data: &[u8], depth: usize) -> Result<Value, Malformed> {
    if depth > MAX_DEPTH {
        return Err(Malformed::new("JSON nested more than 100 levels"));
    }
    let mut c = Cursor::new(data);
    Ok(match t {
        0x00 => container(data, false, true, depth)?,
        0x01 => container(data, true, true, depth)?,
        0x02 => container(data, false, false, depth)?,
        0x03 => container(data, true, false, depth)?,
        0x04 => match c.u8()? {
            0 => Value::Null,
            1 => Value::Bool(true),
            2 => Value::Bool(false),
            b => return Err(Malformed::new(format!("JSON literal {b} is unknown"))),
        },
        0x05 => Value::from(c.uint_le(2)? as u16 as i16),
        0x06 => Value::from(c.uint_le(2)?),
        0x07 => Value::from(c.uint_le(4)? as u32 as i32),
        0x08 => Value::from(c.uint_le(4)?),
        0x09 => Value::from(c.uint_le(8)? as i64),
        0x0a => Value::from(c.uint_le(8)?),
        0x0b => {
            let f = f64::from_bits(c.uint_le(8)?);
            Number::from_f64(f).map_or(Value::Null, Value::Number)
        }
        0x0c => {
            let n = varlen(&mut c)?;
            Value::String(String::from_utf8_lossy(c.take(n)?).into_owned())
        }
        0x0f => {
            let field_type = c.u8()?;
            let n = varlen(&mut c)?;
            opaque(field_type, c.take(n)?)?
        }
        other => {
            return Err(Malformed::new(format!(
                "JSON value type 0x{other:02x} is unknown"
            )))
        }
    })
}

fn container(data: &[u8], large: bool, object: bool, depth: usize) -> Result<Value, Malformed> {
    let w = if large { 4 } else { 2 };
    let mut c = Cursor::new(data);
    let count = c.uint_le(w)? as usize;
    let size = c.uint_le(w)? as usize;
    if size > data.len() {
        return Err(Malformed::new(format!(
            "JSON container of {size} bytes in {} bytes",
            data.len()
        )));
    }
    let header = count.checked_mul(if object { w + 2 + 1 + w } else { 1 + w });
    if header.is_none_or(|h| h > size) {
        return Err(Malformed::new(format!(
            "JSON container of {count} elements in {size} bytes"
        )));
    }
    let data = &data[..size];
    let mut keys = Vec::with_capacity(if object { count } else { 0 });
    if object {
        for _ in 0..count {
            let off = c.uint_le(w)? as usize;
            let len = c.u16()? as usize;
            let key = data
                .get(off..off.saturating_add(len))
                .ok_or_else(|| Malformed::new("JSON key outside its object"))?;
            keys.push(String::from_utf8_lossy(key).into_owned());
        }
    }
    let mut values = Vec::with_capacity(count);
    for _ in 0..count {
        let t = c.u8()?;
        let inline_ok = matches!(t, 0x04..=0x06) || (large && matches!(t, 0x07 | 0x08));
        let raw = c.take(w)?;
        let v = if inline_ok {
            value(t, raw, depth + 1)?
        } else {
            let off = Cursor::new(raw).uint_le(w)? as usize;
            let rest = data
                .get(off..)
                .ok_or_else(|| Malformed::new("JSON value outside its container"))?;
            value(t, rest, depth + 1)?
        };
        values.push(v);
    }
    Ok(if object {
        let mut m = Map::with_capacity(count);
        for (k, v) in keys.into_iter().zip(values) {
            m.insert(k, v);
        }
        Value::Object(m)
    } else {
        Value::Array(values)
    })
}

/// Length with 7 bits per byte, low bits first, as MySQL writes string lengths in JSON.
fn varlen(c: &mut Cursor<'_>) -> Result<usize, Malformed> {
    let mut n: usize = 0;
    for i in 0..5 {
        let b = c.u8()?;
        n |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err(Malformed::new("JSON string length longer than 5 bytes"))
}

/// Scalars MySQL stores in their column format (DECIMAL, dates and times), as text.
fn opaque(field_type: u8, data: &[u8]) -> Result<Value, Malformed> {
    use super::table_map::ty;
    Ok(match field_type {
        ty::NEWDECIMAL => {
            let mut c = Cursor::new(data);
            let precision = c.u8()?;
            let scale = c.u8()?;
            if precision == 0 || scale > precision {
                return Err(Malformed::new("JSON decimal with an invalid precision"));
            }
            Value::String(read_decimal(&mut c, precision, scale)?)
        }
        ty::DATE | ty::DATETIME | ty::TIMESTAMP | ty::TIME => {
            let packed = Cursor::new(data).uint_le(8)? as i64;
            Value::String(packed_temporal(field_type, packed))
        }
        _ => Value::String(BASE64.encode(data)),
    })
}

/// MySQL's in-memory packed date/time (`TIME_to_longlong_*_packed`) as text.
fn packed_temporal(field_type: u8, packed: i64) -> String {
    use super::table_map::ty;
    let negative = packed < 0;
    let p = packed.unsigned_abs();
    let micros = p % (1 << 24);
    let ymdhms = p >> 24;
    let frac = if micros > 0 {
        format!(".{micros:06}")
    } else {
        String::new()
    };
    if field_type == ty::TIME {
        let hour = (ymdhms >> 12) % (1 << 10);
        let minute = (ymdhms >> 6) % (1 << 6);
        let second = ymdhms % (1 << 6);
        let sign = if negative { "-" } else { "" };
        return format!("{sign}{hour:02}:{minute:02}:{second:02}{frac}");
    }
    let ymd = ymdhms >> 17;
    let ym = ymd >> 5;
    let hms = ymdhms % (1 << 17);
    let (year, month, day) = (ym / 13, ym % 13, ymd % (1 << 5));
    if field_type == ty::DATE {
        return format!("{year:04}-{month:02}-{day:02}");
    }
    let (hour, minute, second) = (hms >> 12, (hms >> 6) % (1 << 6), hms % (1 << 6));
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_document() {
        // {"a": [1, "xy", true], "b": null} encoded by hand in the small format.
        let arr: Vec<u8> = {
            let mut v = vec![3, 0];
            let size_pos = v.len();
            v.extend_from_slice(&[0, 0]);
            v.extend_from_slice(&[0x05, 1, 0]); // int16 1 inline
            v.extend_from_slice(&[0x0c, 0, 0]); // string at offset (patched)
            v.extend_from_slice(&[0x04, 1, 0]); // true inline
            let str_off = v.len() as u16;
            v[8..10].copy_from_slice(&str_off.to_le_bytes());
            v.extend_from_slice(&[2, b'x', b'y']);
            let size = v.len() as u16;
            v[size_pos..size_pos + 2].copy_from_slice(&size.to_le_bytes());
            v
        };
        let mut obj = vec![2, 0, 0, 0];
        // key entries: offset u16, len u16
        let key_start = 4 + 2 * 4 + 2 * 3;
        obj.extend_from_slice(&(key_start as u16).to_le_bytes());
        obj.extend_from_slice(&1u16.to_le_bytes());
        obj.extend_from_slice(&((key_start + 1) as u16).to_le_bytes());
        obj.extend_from_slice(&1u16.to_le_bytes());
        let arr_off = key_start + 2;
        obj.push(0x02);
        obj.extend_from_slice(&(arr_off as u16).to_le_bytes());
        obj.extend_from_slice(&[0x04, 0, 0]);
        obj.extend_from_slice(b"ab");
        obj.extend_from_slice(&arr);
        let size = obj.len() as u16;
        obj[2..4].copy_from_slice(&size.to_le_bytes());
        let mut doc = vec![0x00];
        doc.extend_from_slice(&obj);
        assert_eq!(decode(&doc).unwrap(), json!({"a":[1,"xy",true],"b":null}));
    }

    #[test]
    fn scalars_and_garbage() {
        assert_eq!(decode(&[0x0c, 2, b'h', b'i']).unwrap(), json!("hi"));
        assert_eq!(
            decode(&[0x09, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap(),
            json!(-1)
        );
        assert_eq!(decode(&[]).unwrap(), Value::Null);
        assert!(decode(&[0x00, 9, 0, 2, 0]).is_err());
        assert!(decode(&[0x0c, 9, b'h']).is_err());
        assert!(decode(&[0x33]).is_err());
    }
}
