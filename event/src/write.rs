//! The event JSON written straight into a byte buffer, from decoded cells or around row values
//! already written as JSON: the same bytes as [`ChangeEvent::encode`](crate::ChangeEvent::encode),
//! without building a `serde_json` map per row. The capture's hot path (`tail`, `run`) uses this;
//! `ChangeEvent` stays the type readers decode into.

use crate::{Cell, ChangeEvent, EventType, Position, Row, Source, EVENT_VERSION};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// Everything of an event except its row values, borrowed, for [`write_json`].
#[derive(Debug, Clone, Copy)]
pub struct EventHead<'a> {
    pub seq: i64,
    pub source: Source,
    pub instance: &'a str,
    pub database: &'a str,
    pub table: &'a str,
    pub kind: EventType,
    pub ts_ms: i64,
    pub capture_ms: i64,
    /// `pos.file`, `pos.offset`, `pos.row`, `pos.gtid`.
    pub file: &'a str,
    pub offset: u64,
    pub row: u32,
    pub gtid: Option<&'a str>,
    pub xid: Option<u64>,
    pub txn_last: bool,
    pub pk: &'a [String],
    /// DDL only: the statement.
    pub sql: Option<&'a str>,
}

impl EventHead<'_> {
    /// The same event as a [`ChangeEvent`], with its rows already as JSON maps (tests, tools,
    /// and the places that need the decoded form).
    pub fn to_change_event(&self, data: Row, old: Option<Row>) -> ChangeEvent {
        ChangeEvent {
            v: EVENT_VERSION,
            seq: self.seq,
            source: self.source,
            instance: self.instance.to_owned(),
            database: self.database.to_owned(),
            table: self.table.to_owned(),
            kind: self.kind,
            ts_ms: self.ts_ms,
            capture_ms: self.capture_ms,
            pos: Position {
                file: self.file.to_owned(),
                offset: self.offset,
                row: self.row,
                gtid: self.gtid.map(str::to_owned),
            },
            xid: self.xid,
            txn_last: self.txn_last,
            pk: self.pk.to_vec(),
            data,
            old,
            sql: self.sql.map(str::to_owned),
        }
    }
}

/// `name` as a JSON string followed by `:`, as an event writes it in front of the column's
/// value. The capture renders each column's name once per TABLE_MAP instead of once per row.
pub fn json_key(name: &str) -> Box<[u8]> {
    let mut out = Vec::with_capacity(name.len() + 3);
    write_str(&mut out, name);
    out.push(b':');
    out.into_boxed_slice()
}

/// Appends the event's value bytes to `out`: compact JSON, fields in the documented order.
/// `data` and `old` yield (column name, value) in table column order; `old` is `Some` for
/// UPDATE only.
pub fn write_json<'n, 'c, D, O>(out: &mut Vec<u8>, head: &EventHead<'_>, data: D, old: Option<O>)
where
    D: IntoIterator<Item = (&'n str, &'c Cell)>,
    O: IntoIterator<Item = (&'n str, &'c Cell)>,
{
    write_head(out, head);
    write_row(out, data);
    if let Some(old) = old {
        out.extend_from_slice(b",\"old\":");
        write_row(out, old);
    }
    write_tail(out, head);
}

/// [`write_json`] with the rows already written as JSON objects (the capture writes them
/// straight from the binlog bytes).
pub fn write_json_rendered(
    out: &mut Vec<u8>,
    head: &EventHead<'_>,
    data: &[u8],
    old: Option<&[u8]>,
) {
    write_head(out, head);
    out.extend_from_slice(data);
    if let Some(old) = old {
        out.extend_from_slice(b",\"old\":");
        out.extend_from_slice(old);
    }
    write_tail(out, head);
}

/// Everything before the value of `data`, up to and including `"data":`.
fn write_head(out: &mut Vec<u8>, head: &EventHead<'_>) {
    out.extend_from_slice(b"{\"v\":");
    write_u64(out, u64::from(EVENT_VERSION));
    out.extend_from_slice(b",\"seq\":");
    write_i64(out, head.seq);
    out.extend_from_slice(match head.source {
        Source::Binlog => b",\"source\":\"binlog\",\"instance\":",
        Source::Snapshot => b",\"source\":\"snapshot\",\"instance\":",
    });
    write_str(out, head.instance);
    out.extend_from_slice(b",\"database\":");
    write_str(out, head.database);
    out.extend_from_slice(b",\"table\":");
    write_str(out, head.table);
    out.extend_from_slice(match head.kind {
        EventType::Insert => b",\"type\":\"INSERT\",\"ts_ms\":",
        EventType::Update => b",\"type\":\"UPDATE\",\"ts_ms\":",
        EventType::Delete => b",\"type\":\"DELETE\",\"ts_ms\":",
        EventType::Ddl => b",\"type\":\"DDL\",\"ts_ms\":",
    });
    write_i64(out, head.ts_ms);
    out.extend_from_slice(b",\"capture_ms\":");
    write_i64(out, head.capture_ms);
    out.extend_from_slice(b",\"pos\":{\"file\":");
    write_str(out, head.file);
    out.extend_from_slice(b",\"offset\":");
    write_u64(out, head.offset);
    out.extend_from_slice(b",\"row\":");
    write_u64(out, u64::from(head.row));
    if let Some(g) = head.gtid {
        out.extend_from_slice(b",\"gtid\":");
        write_str(out, g);
    }
    out.push(b'}');
    if let Some(x) = head.xid {
        out.extend_from_slice(b",\"xid\":");
        write_u64(out, x);
    }
    out.extend_from_slice(if head.txn_last {
        b",\"txn_last\":true,\"pk\":["
    } else {
        b",\"txn_last\":false,\"pk\":["
    });
    for (i, name) in head.pk.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
    }
    out.extend_from_slice(b"],\"data\":");
}

/// Everything after `data` and `old`.
fn write_tail(out: &mut Vec<u8>, head: &EventHead<'_>) {
    if let Some(sql) = head.sql {
        out.extend_from_slice(b",\"sql\":");
        write_str(out, sql);
    }
    out.push(b'}');
}

/// Appends the Kafka key `["<database>","<table>",<pk value>...]`; `None` values (a key
/// column missing from the row) are `null`, as in [`ChangeEvent::key`](crate::ChangeEvent::key).
pub fn write_key<'c>(
    out: &mut Vec<u8>,
    database: &str,
    table: &str,
    pk_values: impl IntoIterator<Item = Option<&'c Cell>>,
) {
    out.push(b'[');
    write_str(out, database);
    out.push(b',');
    write_str(out, table);
    for v in pk_values {
        out.push(b',');
        match v {
            Some(c) => write_cell(out, c),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b']');
}

/// [`write_key`] with the key's values already written as JSON, each after a comma
/// (`,1,"a"`; empty for a table without a primary key).
pub fn write_key_rendered(out: &mut Vec<u8>, database: &str, table: &str, values: &[u8]) {
    out.push(b'[');
    write_str(out, database);
    out.push(b',');
    write_str(out, table);
    out.extend_from_slice(values);
    out.push(b']');
}

/// A JSON object of (name, value) pairs.
fn write_row<'n, 'c>(out: &mut Vec<u8>, row: impl IntoIterator<Item = (&'n str, &'c Cell)>) {
    out.push(b'{');
    let mut first = true;
    for (name, cell) in row {
        if !first {
            out.push(b',');
        }
        first = false;
        write_str(out, name);
        out.push(b':');
        write_cell(out, cell);
    }
    out.push(b'}');
}

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

/// `YYYY-MM-DD`, each part zero-padded to its width (wider values are written in full).
fn date(out: &mut Vec<u8>, year: u32, month: u32, day: u32) {
    if year < 10_000 && month < 100 && day < 100 {
        let ([y0, y1], [y2, y3]) = (pair(year / 100), pair(year));
        let ([m0, m1], [d0, d1]) = (pair(month), pair(day));
        out.extend_from_slice(&[y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1]);
        return;
    }
    padded(out, year, 4);
    out.push(b'-');
    padded(out, month, 2);
    out.push(b'-');
    padded(out, day, 2);
}

/// `HH:MM:SS`; hours may have three digits (TIME).
fn clock(out: &mut Vec<u8>, hours: u32, minutes: u8, seconds: u8) {
    let (minutes, seconds) = (u32::from(minutes), u32::from(seconds));
    if hours < 100 && minutes < 100 && seconds < 100 {
        let ([h0, h1], [m0, m1], [s0, s1]) = (pair(hours), pair(minutes), pair(seconds));
        out.extend_from_slice(&[h0, h1, b':', m0, m1, b':', s0, s1]);
        return;
    }
    padded(out, hours, 2);
    out.push(b':');
    padded(out, minutes, 2);
    out.push(b':');
    padded(out, seconds, 2);
}

/// `.` and `fsp` digits of `micros`, truncated as MySQL stores them; nothing for fsp 0.
fn fraction(out: &mut Vec<u8>, micros: u32, fsp: u8) {
    if fsp == 0 {
        return;
    }
    let m = micros.min(999_999);
    let ([a, b], [c, d], [e, f]) = (pair(m / 10_000), pair(m / 100), pair(m));
    append_prefix(out, &[b'.', a, b, c, d, e, f], 1 + usize::from(fsp.min(6)));
}

/// The two digits of `v % 100`.
fn pair(v: u32) -> [u8; 2] {
    let i = (v % 100) as usize * 2;
    [PAIRS[i], PAIRS[i + 1]]
}

/// `v` in decimal, left-padded with zeros to at least `width` (at most 10) digits.
fn padded(out: &mut Vec<u8>, v: u32, width: usize) {
    let digits = v.checked_ilog10().unwrap_or(0) as usize + 1;
    let len = digits.max(width).min(10);
    let mut buf = [b'0'; 10];
    let mut n = v;
    for slot in buf[..len].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    append_prefix(out, &buf, len);
}

/// Appends the first `len` bytes of `buf`: a copy of the whole, fixed-size buffer, then cut
/// back. Copying a variable number of bytes is a call to `memcpy`, which for a few digits
/// cost more than the digits (about a tenth of the capture's `tail`).
fn append_prefix<const N: usize>(out: &mut Vec<u8>, buf: &[u8; N], len: usize) {
    let start = out.len();
    out.extend_from_slice(buf);
    out.truncate(start + len);
}

/// "00" to "99", for writing two digits per division.
static PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// An unsigned integer in decimal.
pub fn write_u64(out: &mut Vec<u8>, v: u64) {
    let digits = v.checked_ilog10().unwrap_or(0) as usize + 1;
    let mut buf = [0u8; 20];
    let mut i = digits;
    let mut n = v;
    // Four digits per division: `seq` and the two times, 13-19 digits each, are in every event.
    while n >= 10_000 {
        let rem = (n % 10_000) as u32;
        n /= 10_000;
        i -= 4;
        let ([a, b], [c, d]) = (pair(rem / 100), pair(rem));
        buf[i..i + 4].copy_from_slice(&[a, b, c, d]);
    }
    let n = n as u32;
    if n >= 100 {
        i -= 2;
        buf[i..i + 2].copy_from_slice(&pair(n));
    }
    let top = if n >= 100 { n / 100 } else { n };
    if top >= 10 {
        buf[..2].copy_from_slice(&pair(top));
    } else {
        buf[0] = b'0' + top as u8;
    }
    append_prefix(out, &buf, digits);
}

/// A signed integer in decimal (also the text of the `sluice-seq` header).
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
}

/// Bytes that need an escape in a JSON string, and how serde_json writes them: `b'u'` for
/// `\u00XX`, the letter of the short escape otherwise, 0 for none.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// A JSON string: quotes, and the escapes serde_json writes (`\"`, `\\`, control characters).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none of them needs an escape (the common case).
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if !needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let end = (i + 8).min(bytes.len());
        while i < end {
            let b = bytes[i];
            let esc = ESCAPE[b as usize];
            if esc != 0 {
                out.extend_from_slice(&bytes[start..i]);
                if esc == b'u' {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 0xf) as usize]);
                } else {
                    out.push(b'\\');
                    out.push(esc);
                }
                start = i + 1;
            }
            i += 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any of the eight bytes is below 0x20, `"` or `\` (exact, no false positives).
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q & HIGH;
    let b = w ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b & HIGH;
    (below_space | quote | backslash) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_like_serde_json() {
        for s in [
            "",
            "plain",
            "q\"b\\",
            "\u{0}\u{1f}\u{7f}\n\r\t\u{8}\u{c}",
            "naïve 🌊",
            "\u{2028}",
            "0123456789abcdef\"0123456789\\abcdef\u{1}",
            "ünïcødé text that is longer than eight bytes, with \t a tab",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn every_ascii_byte_at_every_offset_of_a_word() {
        for b in 0u8..128 {
            for at in 0..17 {
                let mut s = "abcdefghijklmnopq".to_owned().into_bytes();
                s[at] = b;
                let s = String::from_utf8(s).unwrap();
                let mut out = Vec::new();
                write_str(&mut out, &s);
                assert_eq!(out, serde_json::to_vec(&s).unwrap(), "{s:?}");
            }
        }
    }

    #[test]
    fn numbers_dates_and_times_like_fmt() {
        let mut values: Vec<u64> = vec![0, u64::MAX];
        for p in 0..20 {
            let t = 10u64.pow(p);
            values.extend([t - 1, t, t + 1, t.wrapping_mul(5) + 7]);
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> (x % 64));
        }
        for v in values {
            let mut out = b"[".to_vec();
            write_u64(&mut out, v);
            assert_eq!(out, format!("[{v}").into_bytes());
        }
        for (y, m, d) in [
            (0, 0, 0),
            (2026, 11, 22),
            (9999, 12, 31),
            (10_000, 1, 1),
            (7, 100, 5),
        ] {
            let mut out = Vec::new();
            date(&mut out, y, m, d);
            assert_eq!(out, format!("{y:04}-{m:02}-{d:02}").into_bytes());
        }
        for (h, m, s) in [
            (0, 0, 0),
            (23, 59, 59),
            (99, 1, 2),
            (838, 59, 59),
            (100, 0, 0),
        ] {
            let mut out = Vec::new();
            clock(&mut out, h, m, s);
            assert_eq!(out, format!("{h:02}:{m:02}:{s:02}").into_bytes());
        }
        for (us, fsp, want) in [
            (123_456, 3, ".123"),
            (5, 6, ".000005"),
            (999_999, 1, ".9"),
            (120_000, 2, ".12"),
            (7, 0, ""),
        ] {
            let mut out = Vec::new();
            fraction(&mut out, us, fsp);
            assert_eq!(out, want.as_bytes());
        }
    }

    #[test]
    fn integers() {
        for v in [
            0i64,
            1,
            -1,
            9,
            10,
            99,
            100,
            101,
            999,
            i64::MIN,
            i64::MAX,
            1_234_567,
        ] {
            let mut out = Vec::new();
            write_i64(&mut out, v);
            assert_eq!(out, v.to_string().into_bytes());
        }
        for v in [u64::MAX, 10u64.pow(19), 10u64.pow(19) - 1] {
            let mut out = b"x".to_vec();
            write_u64(&mut out, v);
            assert_eq!(out, format!("x{v}").into_bytes());
        }
        for (v, width, want) in [
            (7, 2, "07"),
            (0, 4, "0000"),
            (12345, 2, "12345"),
            (u32::MAX, 6, "4294967295"),
            (3, 6, "000003"),
        ] {
            let mut out = Vec::new();
            padded(&mut out, v, width);
            assert_eq!(out, want.as_bytes());
        }
    }
}
