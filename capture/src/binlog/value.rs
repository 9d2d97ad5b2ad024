//! One column value of a rows event, as event JSON or as a `Cell`.
//!
//! [`write_value`] writes it as its event JSON (the capture's path); [`read_cell`] decodes it
//! into an [`sluice_event::Cell`].

use super::cursor::{Cursor, Malformed};
use super::decimal::{read_decimal, write_decimal};
use super::jsonb;
use super::table_map::{Charset, Column, ColumnKind};
use sluice_event::{compact_json_into, write_bytes, write_cell, write_str, Cell};
use std::borrow::Cow;

/// Writes the event JSON of the value of `col` (known not to be NULL) from `c`: the same
/// bytes as [`write_cell`] of [`read_cell`]. Strings, DECIMAL, ENUM and MariaDB's JSON text
/// go straight from the binlog bytes into `out`, without a `String` per value; the other
/// types have no heap part in their cell and take the cell's path.
pub fn write_value(col: &Column, c: &mut Cursor<'_>, out: &mut Vec<u8>) -> Result<(), Malformed> {
    match &col.kind {
        ColumnKind::Decimal { precision, scale } => {
            out.push(b'"');
            write_decimal(c, *precision, *scale, out)?;
            out.push(b'"');
        }
        ColumnKind::Blob { len_bytes } if col.json_text => {
            let bytes = prefixed(c, *len_bytes)?;
            if !compact_json_into(bytes, out) {
                // Not plain JSON: what the cell's path makes of it.
                write_cell(out, &json_text_cell(col.charset, bytes));
            }
        }
        ColumnKind::VarString { len_bytes } | ColumnKind::Blob { len_bytes } => {
            write_text(out, col.charset, prefixed(c, *len_bytes)?);
        }
        ColumnKind::FixedString { len_bytes, max_len } if col.fixed_bin.is_some() => {
            write_cell(
                out,
                &fixed_bin_cell(col, prefixed(c, *len_bytes)?, *max_len),
            );
        }
        ColumnKind::FixedString { len_bytes, .. } if col.charset != Charset::Binary => {
            write_text(out, col.charset, prefixed(c, *len_bytes)?);
        }
        ColumnKind::Enum { pack } => {
            let i = c.uint_le(usize::from(*pack))? as usize;
            match enum_member(col, i) {
                Ok(name) => write_str(out, name),
                Err(number) => write_str(out, &number),
            }
        }
        _ => write_cell(out, &read_cell(col, c)?),
    }
    Ok(())
}

/// A value stored after its length, a little-endian integer of `len_bytes` bytes.
fn prefixed<'a>(c: &mut Cursor<'a>, len_bytes: u8) -> Result<&'a [u8], Malformed> {
    let n = c.uint_le(usize::from(len_bytes))? as usize;
    c.take(n)
}

/// Text or, for the binary charset, base64 of the bytes (BINARY is not handled here: its
/// padding needs the cell's path).
fn write_text(out: &mut Vec<u8>, charset: Charset, bytes: &[u8]) {
    match decode_text(charset, bytes) {
        Some(s) => write_str(out, &s),
        None => write_bytes(out, bytes),
    }
}

/// Reads the value of `col` (known not to be NULL) from `c`.
pub fn read_cell(col: &Column, c: &mut Cursor<'_>) -> Result<Cell, Malformed> {
    let u = col.unsigned;
    Ok(match &col.kind {
        ColumnKind::Tiny => int(c, 1, u)?,
        ColumnKind::Short => int(c, 2, u)?,
        ColumnKind::Int24 => int(c, 3, u)?,
        ColumnKind::Long => int(c, 4, u)?,
        ColumnKind::LongLong => int(c, 8, u)?,
        ColumnKind::Float => Cell::Float(f32::from_bits(c.u32()?)),
        ColumnKind::Double => Cell::Double(f64::from_bits(c.uint_le(8)?)),
        ColumnKind::Decimal { precision, scale } => {
            Cell::Decimal(read_decimal(c, *precision, *scale)?)
        }
        ColumnKind::Year => match c.u8()? {
            0 => Cell::Year(0),
            y => Cell::Year(1900 + u16::from(y)),
        },
        ColumnKind::Date => {
            let v = c.uint_le(3)?;
            Cell::Date {
                year: (v >> 9) as u16,
                month: ((v >> 5) & 15) as u8,
                day: (v & 31) as u8,
            }
        }
        ColumnKind::Time { fsp } => time2(c, *fsp)?,
        ColumnKind::TimeOld => {
            let raw = c.uint_le(3)? as i64;
            // Sign-extend the 24-bit HHMMSS integer.
            let v = if raw & 0x80_0000 != 0 {
                raw - 0x100_0000
            } else {
                raw
            };
            let a = v.unsigned_abs();
            Cell::Time {
                negative: v < 0,
                hours: (a / 10_000) as u32,
                minutes: (a / 100 % 100) as u8,
                seconds: (a % 100) as u8,
                micros: 0,
                fsp: 0,
            }
        }
        ColumnKind::DateTime { fsp } => datetime2(c, *fsp)?,
        ColumnKind::DateTimeOld => {
            let v = c.uint_le(8)?;
            let (date, time) = (v / 1_000_000, v % 1_000_000);
            Cell::DateTime {
                year: (date / 10_000) as u16,
                month: (date / 100 % 100) as u8,
                day: (date % 100) as u8,
                hour: (time / 10_000) as u8,
                minute: (time / 100 % 100) as u8,
                second: (time % 100) as u8,
                micros: 0,
                fsp: 0,
            }
        }
        ColumnKind::Timestamp { fsp } => {
            let secs = c.uint_be(4)? as i64;
            Cell::Timestamp {
                secs,
                micros: fraction(c, *fsp)?,
                fsp: *fsp,
            }
        }
        ColumnKind::TimestampOld => Cell::Timestamp {
            secs: i64::from(c.u32()?),
            micros: 0,
            fsp: 0,
        },
        ColumnKind::VarString { len_bytes } => text(col.charset, prefixed(c, *len_bytes)?, None),
        ColumnKind::FixedString { len_bytes, max_len } if col.fixed_bin.is_some() => {
            fixed_bin_cell(col, prefixed(c, *len_bytes)?, *max_len)
        }
        ColumnKind::FixedString { len_bytes, max_len } => text(
            col.charset,
            prefixed(c, *len_bytes)?,
            Some(usize::from(*max_len)),
        ),
        ColumnKind::Blob { len_bytes } => {
            let bytes = prefixed(c, *len_bytes)?;
            if col.json_text {
                json_text_cell(col.charset, bytes)
            } else {
                text(col.charset, bytes, None)
            }
        }
        ColumnKind::Json { len_bytes } => Cell::Json(jsonb::decode(prefixed(c, *len_bytes)?)?),
        ColumnKind::Geometry { len_bytes } => {
            let mut g = Cursor::new(prefixed(c, *len_bytes)?);
            let srid = g.u32()?;
            Cell::Geometry {
                srid,
                wkb: g.rest().to_vec(),
            }
        }
        ColumnKind::Enum { pack } => {
            let i = c.uint_le(usize::from(*pack))? as usize;
            Cell::Enum(match enum_member(col, i) {
                Ok(name) => name.to_owned(),
                Err(number) => number,
            })
        }
        ColumnKind::Set { pack } => {
            let bits = c.uint_le(usize::from(*pack))?;
            let mut members = Vec::new();
            for i in 0..64 {
                if bits & (1u64 << i) != 0 {
                    members.push(
                        col.members
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| (i + 1).to_string()),
                    );
                }
            }
            Cell::Set(members)
        }
        ColumnKind::Bit { bytes } => Cell::Bit(c.uint_be(usize::from(*bytes).min(8))?),
        ColumnKind::Null => Cell::Null,
    })
}

/// A UUID, INET4 or INET6 value as its text; bytes that are not one (a column whose type
/// changed under the cached schema) stay what a BINARY column gives.
fn fixed_bin_cell(col: &Column, bytes: &[u8], max_len: u16) -> Cell {
    match col.fixed_bin.and_then(|f| f.text(bytes)) {
        Some(s) => Cell::Text(s),
        None => text(col.charset, bytes, Some(usize::from(max_len))),
    }
}

/// MariaDB's JSON is LONGTEXT with a json_valid() check. Plain JSON is kept as its compacted
/// text (no tree built, see [`write_value`]); anything else is parsed, and a value that is
/// not JSON after all (the check can be dropped) stays text.
/// A MariaDB JSON column's text that `compact_json` did not take: the parsed value, or the text
/// as a string (not JSON, or nested deeper than `MAX_JSON_DEPTH`).
fn json_text_cell(charset: Charset, bytes: &[u8]) -> Cell {
    sluice_event::json_column(bytes).unwrap_or_else(|| text(charset, bytes, None))
}

/// The name of ENUM member `i` (1-based); MySQL's "invalid value" member, index 0, is the empty
/// string. A number the metadata has no name for stays a number (`Err`).
fn enum_member(col: &Column, i: usize) -> Result<&str, String> {
    match i {
        0 => Ok(""),
        i => col
            .members
            .get(i - 1)
            .map(String::as_str)
            .ok_or_else(|| i.to_string()),
    }
}

fn int(c: &mut Cursor<'_>, n: usize, unsigned: bool) -> Result<Cell, Malformed> {
    let v = c.uint_le(n)?;
    if unsigned {
        return Ok(Cell::UInt(v));
    }
    let shift = 64 - 8 * n as u32;
    Ok(Cell::Int(((v << shift) as i64) >> shift))
}

/// Fractional seconds of TIME2/DATETIME2/TIMESTAMP2: `(fsp + 1) / 2` big-endian bytes.
fn fraction(c: &mut Cursor<'_>, fsp: u8) -> Result<u32, Malformed> {
    Ok(match fsp {
        1 | 2 => c.u8()? as u32 * 10_000,
        3 | 4 => c.uint_be(2)? as u32 * 100,
        5 | 6 => c.uint_be(3)? as u32,
        _ => 0,
    })
    .and_then(|us| {
        if us > 999_999 {
            Err(Malformed::new(format!(
                "fractional second {us} is over 999999"
            )))
        } else {
            Ok(us)
        }
    })
}

fn datetime2(c: &mut Cursor<'_>, fsp: u8) -> Result<Cell, Malformed> {
    let int = c.uint_be(5)? as i64 - 0x80_0000_0000;
    let micros = fraction(c, fsp)?;
    let v = int.unsigned_abs();
    let ymd = v >> 17;
    let ym = ymd >> 5;
    let hms = v % (1 << 17);
    Ok(Cell::DateTime {
        year: (ym / 13).min(9999) as u16,
        month: (ym % 13) as u8,
        day: (ymd % (1 << 5)) as u8,
        hour: (hms >> 12) as u8,
        minute: ((hms >> 6) % (1 << 6)) as u8,
        second: (hms % (1 << 6)) as u8,
        micros,
        fsp,
    })
}

/// TIME2: MySQL's `my_time_packed_from_binary` followed by `TIME_from_longlong_time_packed`.
fn time2(c: &mut Cursor<'_>, fsp: u8) -> Result<Cell, Malformed> {
    const TIMEF_INT_OFS: i64 = 0x80_0000;
    const TIMEF_OFS: i64 = 0x8000_0000_0000;
    let packed: i64 = match fsp {
        1 | 2 => {
            let mut int = c.uint_be(3)? as i64 - TIMEF_INT_OFS;
            let mut frac = i64::from(c.u8()?);
            if int < 0 && frac != 0 {
                int += 1;
                frac -= 0x100;
            }
            (int << 24) + frac * 10_000
        }
        3 | 4 => {
            let mut int = c.uint_be(3)? as i64 - TIMEF_INT_OFS;
            let mut frac = c.uint_be(2)? as i64;
            if int < 0 && frac != 0 {
                int += 1;
                frac -= 0x10000;
            }
            (int << 24) + frac * 100
        }
        5 | 6 => c.uint_be(6)? as i64 - TIMEF_OFS,
        _ => (c.uint_be(3)? as i64 - TIMEF_INT_OFS) << 24,
    };
    let negative = packed < 0;
    let p = packed.unsigned_abs();
    let hms = p >> 24;
    Ok(Cell::Time {
        negative,
        hours: ((hms >> 12) % (1 << 10)) as u32,
        minutes: ((hms >> 6) % (1 << 6)) as u8,
        seconds: (hms % (1 << 6)) as u8,
        micros: ((p % (1 << 24)) as u32).min(999_999),
        fsp,
    })
}

/// Text in its column charset; binary-charset values stay bytes (BINARY padded back to size).
fn text(charset: Charset, bytes: &[u8], fixed_len: Option<usize>) -> Cell {
    match decode_text(charset, bytes) {
        Some(s) => Cell::Text(s.into_owned()),
        None => {
            let mut v = bytes.to_vec();
            if let Some(n) = fixed_len {
                if v.len() < n {
                    v.resize(n, 0);
                }
            }
            Cell::Bytes(v)
        }
    }
}

/// The text of a value in its column charset (invalid UTF-8 replaced); `None` for the binary
/// charset, whose values stay bytes.
fn decode_text(charset: Charset, bytes: &[u8]) -> Option<Cow<'_, str>> {
    match charset {
        // Checked first: `from_utf8_lossy` walks valid text more slowly than `from_utf8`.
        Charset::Utf8 => Some(match std::str::from_utf8(bytes) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(bytes),
        }),
        Charset::Latin1 => Some(Cow::Owned(bytes.iter().map(|b| cp1252(*b)).collect())),
        Charset::Binary => None,
    }
}

/// MySQL's latin1 is Windows-1252: 0x80..0x9f are typographic characters, not C1 controls.
fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9f => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(kind: ColumnKind, unsigned: bool, charset: Charset) -> Column {
        Column {
            name: "c".into(),
            kind,
            unsigned,
            charset,
            members: vec!["a".into(), "b".into(), "c".into()],
            json_text: false,
            fixed_bin: None,
        }
    }

    fn read(kind: ColumnKind, unsigned: bool, bytes: &[u8]) -> Cell {
        let c = col(kind, unsigned, Charset::Utf8);
        let mut cur = Cursor::new(bytes);
        let cell = read_cell(&c, &mut cur).unwrap();
        assert!(cur.is_empty(), "{bytes:?} not fully read");
        cell
    }

    /// A MariaDB JSON column nested deeper than `MAX_JSON_DEPTH` is published as the string of
    /// its text, by both the direct writer and the cells, so every event reads back in the sink.
    #[test]
    fn json_text_deeper_than_the_limit_is_a_string_and_the_event_reads_back() {
        let mut c = col(ColumnKind::Blob { len_bytes: 4 }, false, Charset::Utf8);
        c.json_text = true;
        for (levels, embedded) in [
            (3, true),
            (100, true),
            (101, false),
            (127, false),
            (200, false),
        ] {
            let doc = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
            let mut bytes = (doc.len() as u32).to_le_bytes().to_vec();
            bytes.extend_from_slice(doc.as_bytes());
            let mut value = Vec::new();
            write_value(&c, &mut Cursor::new(&bytes), &mut value).unwrap();
            let cell = read_cell(&c, &mut Cursor::new(&bytes)).unwrap();
            let mut from_cell = Vec::new();
            sluice_event::write_cell(&mut from_cell, &cell);
            assert_eq!(value, from_cell, "{levels} levels: the two paths differ");
            assert_eq!(value.first() == Some(&b'['), embedded, "{levels} levels");
            let event = format!(
                r#"{{"v":1,"seq":1,"source":"binlog","instance":"i","database":"d","table":"t","type":"INSERT","ts_ms":1,"capture_ms":1,"pos":{{"file":"b.1","offset":4,"row":0}},"pk":["c"],"data":{{"c":{}}}}}"#,
                String::from_utf8(value).unwrap()
            );
            let back = sluice_event::ChangeEvent::decode(event.as_bytes())
                .unwrap_or_else(|e| panic!("{levels} levels: the sink cannot read it: {e}"));
            if !embedded {
                assert_eq!(back.data["c"], serde_json::Value::String(doc));
            }
        }
    }

    #[test]
    fn integers() {
        assert_eq!(read(ColumnKind::Tiny, false, &[0x80]), Cell::Int(-128));
        assert_eq!(read(ColumnKind::Tiny, true, &[0xff]), Cell::UInt(255));
        assert_eq!(
            read(ColumnKind::Int24, false, &[0xff, 0xff, 0xff]),
            Cell::Int(-1)
        );
        assert_eq!(
            read(ColumnKind::Int24, true, &[0xff, 0xff, 0xff]),
            Cell::UInt(16_777_215)
        );
        assert_eq!(
            read(ColumnKind::LongLong, true, &[0xff; 8]),
            Cell::UInt(u64::MAX)
        );
        assert_eq!(
            read(ColumnKind::LongLong, false, &[0, 0, 0, 0, 0, 0, 0, 0x80]),
            Cell::Int(i64::MIN)
        );
    }

    #[test]
    fn temporal() {
        // DATETIME(3) 2026-11-21 09:15:02.123: ym = 2026*13+11, packed as MySQL does.
        let ymd = ((2026u64 * 13 + 11) << 5) | 21;
        let hms = (9u64 << 12) | (15 << 6) | 2;
        let int = ((ymd << 17) | hms) + 0x80_0000_0000;
        let mut b = int.to_be_bytes()[3..].to_vec();
        b.extend_from_slice(&1230u16.to_be_bytes());
        assert_eq!(
            read(ColumnKind::DateTime { fsp: 3 }, false, &b).to_string_json(),
            "\"2026-11-21T09:15:02.123\""
        );
        // TIME(6) -838:59:59.000000 and -00:00:00.5 (fsp 1).
        let hms = (838i64 << 12) | (59 << 6) | 59;
        let packed = -(hms << 24) + 0x8000_0000_0000;
        let b = &(packed as u64).to_be_bytes()[2..];
        assert_eq!(
            read(ColumnKind::Time { fsp: 6 }, false, b).to_string_json(),
            "\"-838:59:59.000000\""
        );
        // -0.5 s at fsp 1: int part -1 (0x7fffff), frac byte 0x100 - 50.
        assert_eq!(
            read(ColumnKind::Time { fsp: 1 }, false, &[0x7f, 0xff, 0xff, 206]).to_string_json(),
            "\"-00:00:00.5\""
        );
        assert_eq!(
            read(ColumnKind::Date, false, &[0x95, 0x9d, 0x0f]).to_string_json(),
            "\"1998-12-21\""
        );
        assert_eq!(
            read(
                ColumnKind::Timestamp { fsp: 0 },
                false,
                &[0x69, 0x20, 0x2d, 0x96]
            )
            .to_string_json(),
            "\"2025-11-21T09:15:02Z\""
        );
    }

    #[test]
    fn strings_and_sets() {
        let latin = col(
            ColumnKind::VarString { len_bytes: 1 },
            false,
            Charset::Latin1,
        );
        let cell = read_cell(&latin, &mut Cursor::new(&[3, b'c', 0xe9, 0x80])).unwrap();
        assert_eq!(cell, Cell::Text("cé€".into()));
        let bin = col(
            ColumnKind::FixedString {
                len_bytes: 1,
                max_len: 4,
            },
            false,
            Charset::Binary,
        );
        let cell = read_cell(&bin, &mut Cursor::new(&[2, 0, 1])).unwrap();
        assert_eq!(cell, Cell::Bytes(vec![0, 1, 0, 0]));
        assert_eq!(
            read(ColumnKind::Set { pack: 1 }, false, &[0b101]),
            Cell::Set(vec!["a".into(), "c".into()])
        );
        assert_eq!(
            read(ColumnKind::Enum { pack: 1 }, false, &[2]),
            Cell::Enum("b".into())
        );
        assert_eq!(
            read(ColumnKind::Bit { bytes: 8 }, false, &[0xff; 8]),
            Cell::Bit(u64::MAX)
        );
        let mut j = col(ColumnKind::Blob { len_bytes: 4 }, false, Charset::Utf8);
        j.json_text = true;
        let cell = read_cell(
            &j,
            &mut Cursor::new(&[7, 0, 0, 0, b'{', b'"', b'a', b'"', b':', b'1', b'}']),
        )
        .unwrap();
        assert_eq!(cell, Cell::JsonText(r#"{"a":1}"#.into()));
        // MariaDB prints JSON with spaces; the event carries it compacted, numbers as written.
        let doc = br#"{"a": [1.50, "x\u00e9"], "b": {}}"#;
        let mut bytes = (doc.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(doc);
        let cell = read_cell(&j, &mut Cursor::new(&bytes)).unwrap();
        assert_eq!(
            cell,
            Cell::JsonText(r#"{"a":[1.50,"x\u00e9"],"b":{}}"#.into())
        );
        // Numbers beyond a double go through the parser; text that is not JSON stays text.
        for (doc, want) in [
            (&b"[1e400]"[..], Cell::Text("[1e400]".into())),
            (b"{\"a\"", Cell::Text("{\"a\"".into())),
        ] {
            let mut bytes = (doc.len() as u32).to_le_bytes().to_vec();
            bytes.extend_from_slice(doc);
            assert_eq!(read_cell(&j, &mut Cursor::new(&bytes)).unwrap(), want);
        }
    }

    trait J {
        fn to_string_json(&self) -> String;
    }
    impl J for Cell {
        fn to_string_json(&self) -> String {
            self.to_json().to_string()
        }
    }
}
