//! One column value as JSON: the bytes `serde_json` writes for [`Cell::to_json`].

use super::digits::{clock, date, fraction};
use super::{write_i64, write_str, write_u64};
use crate::Cell;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// Appends the JSON of one value, exactly as [`Cell::to_json`] serialised by `serde_json`.
pub fn write_cell(out: &mut Vec<u8>, cell: &Cell) {
    match cell {
        Cell::Null => out.extend_from_slice(b"null"),
        Cell::Int(v) => write_i64(out, *v),
        Cell::UInt(v) | Cell::Bit(v) => write_u64(out, *v),
        Cell::Year(y) => write_u64(out, u64::from(*y)),
        Cell::Decimal(s) | Cell::Text(s) | Cell::Enum(s) => write_str(out, s),
        // Floats are rare; serde_json's own formatting keeps the bytes identical.
        Cell::Float(_) | Cell::Double(_) | Cell::Json(_) | Cell::Geometry { .. } => {
            if let Err(e) = serde_json::to_writer(&mut *out, &cell.to_json()) {
                unreachable!("serialising a JSON value into a Vec failed: {e}");
            }
        }
        Cell::JsonText(s) => out.extend_from_slice(s.as_bytes()),
        Cell::Date { year, month, day } => {
            out.push(b'"');
            date(out, u32::from(*year), u32::from(*month), u32::from(*day));
            out.push(b'"');
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
            out.push(b'"');
            date(out, u32::from(*year), u32::from(*month), u32::from(*day));
            out.push(b'T');
            clock(out, u32::from(*hour), *minute, *second);
            fraction(out, *micros, *fsp);
            out.push(b'"');
        }
        Cell::Timestamp { secs, micros, fsp } => {
            out.push(b'"');
            if *secs == 0 {
                out.extend_from_slice(b"0000-00-00T00:00:00");
            } else {
                let (y, m, d, h, mi, s) = crate::cell::utc_parts(*secs);
                if (0..=9999).contains(&y) {
                    date(out, y as u32, m, d);
                } else {
                    // Outside TIMESTAMP's range; the formatted path handles signs and widths.
                    out.extend_from_slice(format!("{y:04}-{m:02}-{d:02}").as_bytes());
                }
                out.push(b'T');
                clock(out, h, mi as u8, s as u8);
            }
            fraction(out, *micros, *fsp);
            out.extend_from_slice(b"Z\"");
        }
        Cell::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
            fsp,
        } => {
            out.push(b'"');
            if *negative {
                out.push(b'-');
            }
            clock(out, *hours, *minutes, *seconds);
            fraction(out, *micros, *fsp);
            out.push(b'"');
        }
        Cell::Bytes(b) => write_bytes(out, b),
        Cell::Set(members) => {
            out.push(b'[');
            for (i, m) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, m);
            }
            out.push(b']');
        }
    }
}

/// Bytes as a JSON string of their base64 (standard alphabet, padded).
pub fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let start = out.len();
    let n = base64::encoded_len(bytes.len(), true).unwrap_or(0);
    out.resize(start + n, 0);
    if BASE64.encode_slice(bytes, &mut out[start..]).is_err() {
        // Cannot happen (the slice has the encoded length); fall back to the allocating path.
        out.truncate(start);
        out.extend_from_slice(BASE64.encode(bytes).as_bytes());
    }
    out.push(b'"');
}
