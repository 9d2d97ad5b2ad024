//! The sink's fast path from event bytes to a [`ChangeEvent`]: one pass over the JSON that
//! checks UTF-8 once for the whole message, takes strings without escapes straight from it,
//! knows the event's fields by name without serde's field visitor, and builds each row map at
//! its final size.
//!
//! It reads only what it is sure of. Anything else (a float, an integer outside i64/u64, `-0`,
//! a lone surrogate, a field of an unexpected type, a duplicate or missing field, nesting deeper
//! than serde_json allows) makes [`decode_fast`] return `None`, and
//! [`ChangeEvent::decode`](crate::ChangeEvent::decode) reads the message with serde_json as
//! before, which then decides. So both paths agree on every message; the tests hold it to that.

use crate::{ChangeEvent, EventType, Position, Row, Source};
use serde_json::Value;
use std::borrow::Cow;

/// serde_json stops at 128 levels of nesting; anything near that goes the slow way.
const MAX_DEPTH: u32 = 100;

/// The event in `bytes`, or `None` when the fast path does not cover it.
pub(crate) fn decode_fast(bytes: &[u8]) -> Option<ChangeEvent> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut p = Parser { s: text, i: 0 };
    let event = p.event()?;
    p.ws();
    (p.i == text.len()).then_some(event)
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

/// The fields of [`ChangeEvent`], as read so far.
#[derive(Default)]
struct Fields {
    v: Option<u32>,
    seq: Option<i64>,
    source: Option<Source>,
    instance: Option<String>,
    database: Option<String>,
    table: Option<String>,
    kind: Option<EventType>,
    ts_ms: Option<i64>,
    capture_ms: Option<i64>,
    pos: Option<Position>,
    xid: Option<Option<u64>>,
    txn_last: Option<bool>,
    pk: Option<Vec<String>>,
    data: Option<Row>,
    old: Option<Option<Row>>,
    sql: Option<Option<String>>,
}

/// An integer of the JSON: negative ones as i64, the others as u64 (as serde_json reads them).
enum Int {
    Negative(i64),
    Positive(u64),
}

/// Sets a field read once; a second occurrence is serde's "duplicate field" error.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

impl<'a> Parser<'a> {
    fn bytes(&self) -> &[u8] {
        self.s.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// Skips whitespace and consumes `c`.
    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// Skips whitespace; consumes `c` if it comes next.
    fn eat_if(&mut self, c: u8) -> bool {
        self.ws();
        let hit = self.peek() == Some(c);
        if hit {
            self.i += 1;
        }
        hit
    }

    /// Calls `entry` with each key of an object, the parser then standing before its value.
    fn object(
        &mut self,
        mut entry: impl FnMut(&mut Self, Cow<'a, str>) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        if self.eat_if(b'}') {
            return Some(());
        }
        loop {
            self.ws();
            let key = self.str()?;
            self.eat(b':')?;
            entry(self, key)?;
            if self.eat_if(b'}') {
                return Some(());
            }
            self.eat(b',')?;
        }
    }

    fn event(&mut self) -> Option<ChangeEvent> {
        let mut f = Fields::default();
        self.object(|p, key| match &*key {
            "v" => once(&mut f.v, u32::try_from(p.unsigned()?).ok()?),
            "seq" => once(&mut f.seq, p.signed()?),
            "source" => once(
                &mut f.source,
                match &*p.str_value()? {
                    "binlog" => Source::Binlog,
                    "snapshot" => Source::Snapshot,
                    _ => return None,
                },
            ),
            "instance" => once(&mut f.instance, p.string_value()?),
            "database" => once(&mut f.database, p.string_value()?),
            "table" => once(&mut f.table, p.string_value()?),
            "type" => once(
                &mut f.kind,
                match &*p.str_value()? {
                    "INSERT" => EventType::Insert,
                    "UPDATE" => EventType::Update,
                    "DELETE" => EventType::Delete,
                    "DDL" => EventType::Ddl,
                    _ => return None,
                },
            ),
            "ts_ms" => once(&mut f.ts_ms, p.signed()?),
            "capture_ms" => once(&mut f.capture_ms, p.signed()?),
            "pos" => once(&mut f.pos, p.position()?),
            "xid" => once(&mut f.xid, p.nullable(Self::unsigned)?),
            "txn_last" => once(&mut f.txn_last, p.boolean()?),
            "pk" => once(&mut f.pk, p.strings()?),
            "data" => once(&mut f.data, p.row(0)?),
            "old" => once(&mut f.old, p.nullable(|p| p.row(0))?),
            "sql" => once(&mut f.sql, p.nullable(Self::string_value)?),
            // serde ignores fields it does not know; they must still be valid JSON.
            _ => p.value(0).map(drop),
        })?;
        Some(ChangeEvent {
            v: f.v?,
            seq: f.seq?,
            source: f.source?,
            instance: f.instance?,
            database: f.database?,
            table: f.table?,
            kind: f.kind?,
            ts_ms: f.ts_ms?,
            capture_ms: f.capture_ms?,
            pos: f.pos?,
            xid: f.xid.flatten(),
            txn_last: f.txn_last.unwrap_or_default(),
            pk: f.pk.unwrap_or_default(),
            data: f.data.unwrap_or_default(),
            old: f.old.flatten(),
            sql: f.sql.flatten(),
        })
    }

    fn position(&mut self) -> Option<Position> {
        let (mut file, mut offset, mut row, mut gtid) = (None, None, None, None);
        self.object(|p, key| match &*key {
            "file" => once(&mut file, p.string_value()?),
            "offset" => once(&mut offset, p.unsigned()?),
            "row" => once(&mut row, u32::try_from(p.unsigned()?).ok()?),
            "gtid" => once(&mut gtid, p.nullable(Self::string_value)?),
            _ => p.value(0).map(drop),
        })?;
        Some(Position {
            file: file?,
            offset: offset?,
            row: row.unwrap_or_default(),
            gtid: gtid.flatten(),
        })
    }

    /// `null` as `None`, else what `read` makes of the value.
    fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        self.ws();
        if self.s[self.i..].starts_with("null") {
            self.i += 4;
            return Some(None);
        }
        read(self).map(Some)
    }

    fn boolean(&mut self) -> Option<bool> {
        match self.value(0)? {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn string_value(&mut self) -> Option<String> {
        self.str_value().map(Cow::into_owned)
    }

    fn str_value(&mut self) -> Option<Cow<'a, str>> {
        self.ws();
        self.str()
    }

    fn strings(&mut self) -> Option<Vec<String>> {
        self.eat(b'[')?;
        let mut out = Vec::new();
        if self.eat_if(b']') {
            return Some(out);
        }
        loop {
            out.push(self.string_value()?);
            if self.eat_if(b']') {
                return Some(out);
            }
            self.eat(b',')?;
        }
    }

    /// An object as a row map, sized once for all its entries.
    fn row(&mut self, depth: u32) -> Option<Row> {
        let mut entries = Vec::new();
        self.object(|p, key| {
            entries.push((key.into_owned(), p.value(depth + 1)?));
            Some(())
        })?;
        let mut row = Row::with_capacity(entries.len());
        // Map::insert keeps a repeated key's first place and its last value, as serde_json does.
        for (k, v) in entries {
            row.insert(k, v);
        }
        Some(row)
    }

    fn value(&mut self, depth: u32) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        let rest = &self.s[self.i..];
        match self.peek()? {
            b'"' => self.string().map(Value::String),
            b'{' => self.row(depth).map(Value::Object),
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                if self.eat_if(b']') {
                    return Some(Value::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat_if(b']') {
                        return Some(Value::Array(items));
                    }
                    self.eat(b',')?;
                }
            }
            b't' if rest.starts_with("true") => {
                self.i += 4;
                Some(Value::Bool(true))
            }
            b'f' if rest.starts_with("false") => {
                self.i += 5;
                Some(Value::Bool(false))
            }
            b'n' if rest.starts_with("null") => {
                self.i += 4;
                Some(Value::Null)
            }
            _ => self.number(),
        }
    }

    /// An integer that fits i64 (negative) or u64; floats, `-0` and leading zeros are not
    /// covered.
    fn number(&mut self) -> Option<Value> {
        Some(match self.integer()? {
            Int::Negative(n) => Value::from(n),
            Int::Positive(n) => Value::from(n),
        })
    }

    fn unsigned(&mut self) -> Option<u64> {
        self.ws();
        match self.integer()? {
            Int::Positive(n) => Some(n),
            Int::Negative(_) => None,
        }
    }

    fn signed(&mut self) -> Option<i64> {
        self.ws();
        match self.integer()? {
            Int::Positive(n) => i64::try_from(n).ok(),
            Int::Negative(n) => Some(n),
        }
    }

    fn integer(&mut self) -> Option<Int> {
        let b = self.bytes();
        let negative = b.get(self.i) == Some(&b'-');
        let start = self.i + usize::from(negative);
        let mut end = start;
        let mut magnitude: u64 = 0;
        while let Some(d) = b.get(end).filter(|d| d.is_ascii_digit()) {
            magnitude = magnitude
                .checked_mul(10)?
                .checked_add(u64::from(d - b'0'))?;
            end += 1;
        }
        if end == start
            || (end - start > 1 && b[start] == b'0')
            || matches!(b.get(end), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        let value = if negative {
            if magnitude == 0 || magnitude > 1 << 63 {
                return None;
            }
            // -2^63 wraps onto itself, which is exactly i64::MIN.
            Int::Negative((magnitude as i64).wrapping_neg())
        } else {
            Int::Positive(magnitude)
        };
        self.i = end;
        Some(value)
    }

    /// A string at the cursor (which stands on its opening quote).
    fn string(&mut self) -> Option<String> {
        self.str().map(Cow::into_owned)
    }

    /// A string at the cursor, borrowed from the message when it has no escapes.
    fn str(&mut self) -> Option<Cow<'a, str>> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let b = self.bytes();
        let mut end = start;
        loop {
            match *b.get(end)? {
                b'"' => {
                    self.i = end + 1;
                    return Some(Cow::Borrowed(&self.s[start..end]));
                }
                b'\\' => break,
                0..=0x1f => return None,
                _ => end += 1,
            }
        }
        // Escapes: decode from here on.
        let mut out = String::with_capacity(end - start + 16);
        out.push_str(&self.s[start..end]);
        let mut i = end;
        loop {
            match *b.get(i)? {
                b'"' => {
                    self.i = i + 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    let c = match *b.get(i + 1)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let (c, used) = self.unicode_escape(i + 2)?;
                            out.push(c);
                            i += 2 + used;
                            continue;
                        }
                        _ => return None,
                    };
                    out.push(c);
                    i += 2;
                }
                0..=0x1f => return None,
                _ => {
                    let run = b[i..]
                        .iter()
                        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
                    out.push_str(&self.s[i..i + run]);
                    i += run;
                }
            }
        }
    }

    /// The character of `\uXXXX` (with its low surrogate `\uXXXX` when it is a high one)
    /// whose hex digits start at `at`, and the bytes read after the `\u`. Lone surrogates are
    /// left to serde_json.
    fn unicode_escape(&self, at: usize) -> Option<(char, usize)> {
        let hex = |at: usize| {
            let digits = self.s.get(at..at + 4)?;
            if !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            u32::from_str_radix(digits, 16).ok()
        };
        let first = hex(at)?;
        match first {
            0xD800..=0xDBFF => {
                if self.s.get(at + 4..at + 6)? != "\\u" {
                    return None;
                }
                let low = hex(at + 6)?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return None;
                }
                let c = 0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00);
                Some((char::from_u32(c)?, 10))
            }
            0xDC00..=0xDFFF => None,
            _ => Some((char::from_u32(first)?, 4)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The fast path never disagrees with serde_json: when it reads a message, serde_json
    /// reads the same event from it.
    fn agrees(bytes: &[u8]) -> Option<ChangeEvent> {
        let fast = decode_fast(bytes);
        if let Some(event) = &fast {
            let slow = serde_json::from_slice::<ChangeEvent>(bytes);
            assert_eq!(
                slow.as_ref().ok(),
                Some(event),
                "{}: serde_json says {slow:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        fast
    }

    fn event(data: Value, old: Option<Value>) -> ChangeEvent {
        let row = |v: Value| match v {
            Value::Object(m) => m,
            _ => unreachable!("rows are objects"),
        };
        ChangeEvent {
            v: 1,
            seq: 1_849_390_794_801_152_000,
            source: Source::Snapshot,
            instance: "in\"st".into(),
            database: "shop".into(),
            table: "users".into(),
            kind: EventType::Update,
            ts_ms: 1_763_716_502_000,
            capture_ms: 1_763_716_502_013,
            pos: Position {
                file: "binlog.000001".into(),
                offset: u64::MAX,
                row: 7,
                gtid: Some("0-1-42".into()),
            },
            xid: Some(3),
            txn_last: true,
            pk: vec!["id".into(), "tenant".into()],
            data: row(data),
            old: old.map(row),
            sql: None,
        }
    }

    #[test]
    fn reads_what_captures_write() {
        let rows = [
            json!({"id": 1, "name": "plain", "n": null, "b": true, "f": false}),
            json!({"min": i64::MIN, "max": u64::MAX, "neg": -1, "zero": 0, "big": i64::MAX}),
            json!({"esc": "q\"b\\/\n\r\t\u{8}\u{c}\u{0}\u{1f}", "uni": "naïve 🌊 \u{2028}"}),
            json!({"json": {"a": [1, "x", {"b": null}], "c": {}}, "arr": [], "e": ""}),
            json!({"dup": 1, "deep": [[[[{"x": [[]]}]]]], "bits": "//8="}),
        ];
        for data in rows {
            let e = event(data.clone(), Some(json!({"id": 0, "name": "old"})));
            assert_eq!(agrees(&e.encode()), Some(e.clone()), "{data}");
            let e = ChangeEvent {
                old: None,
                xid: None,
                ..e
            };
            assert_eq!(agrees(&e.encode()), Some(e), "{data}");
        }
        let ddl = ChangeEvent {
            kind: EventType::Ddl,
            pk: Vec::new(),
            sql: Some("ALTER TABLE t ADD c INT -- \"x\"".into()),
            ..event(json!({}), None)
        };
        assert_eq!(agrees(&ddl.encode()), Some(ddl));
    }

    #[test]
    fn leaves_to_serde_json_what_it_does_not_cover() {
        let base = r#""seq":1,"source":"binlog","instance":"i","database":"d","table":"t","type":"INSERT","ts_ms":1,"capture_ms":2,"pos":{"file":"f","offset":4}"#;
        let with = |extra: &str| format!("{{\"v\":1,{base}{extra}}}");
        // Read, and equal to serde_json's reading.
        for ok in [
            with(""),
            with(r#","unknown":[1,{"x":null}],"data":{"a":1,"a":2}"#),
            with(r#","pos2":{"file":"g"},"xid":null,"old":null,"sql":null,"pk":[]"#),
            format!(" \n\t{{ \"v\" : 1 , {base} }} \r\n"),
            with(r#","data":{"k\u0041\ud83c\udf0a":"\u00e9\/"}"#),
        ] {
            assert!(agrees(ok.as_bytes()).is_some(), "{ok}");
        }
        // Not read: serde_json decides (some of these it reads, most it rejects).
        for left in [
            with(r#","data":{"f":1.5}"#),
            with(r#","data":{"f":1e3}"#),
            with(r#","data":{"z":-0}"#),
            with(r#","data":{"z":01}"#),
            with(r#","data":{"big":18446744073709551616}"#),
            with(r#","data":{"small":-9223372036854775809}"#),
            with(r#","data":{"s":"\ud83c"}"#),
            with(r#","data":{"s":"\udf0a"}"#),
            with(r#","data":{"s":"\x"}"#),
            with("\"data\":{\"s\":\"tab\there\"}"),
            with(r#","data":null"#),
            with(r#","type":"INSERT""#),
            with(r#","txn_last":1"#),
            with(r#","xid":-1"#),
            with(r#","pos":{"file":"f","offset":4}"#),
            format!("{{\"v\":4294967296,{base}}}"),
            format!("{{{base}}}"),
            format!("{{\"v\":1,{base}}} x"),
            format!("{{\"v\":1,{base}"),
            format!("{{\"v\":1,{base},}}"),
            "[1,2,3]".to_owned(),
            String::new(),
            with(&format!(
                r#","data":{{"d":{}1{}}}"#,
                "[".repeat(120),
                "]".repeat(120)
            )),
        ] {
            assert_eq!(agrees(left.as_bytes()), None, "{left}");
        }
        assert_eq!(agrees(b"{\"v\":1,\"seq\":\xff}"), None);
    }

    proptest! {
        /// Whatever bytes replace part of a valid event, the fast path reads it as serde_json
        /// does or leaves it alone, and never panics.
        #[test]
        fn damaged_events_agree(at in 0usize..400, cut in 0usize..8, insert in proptest::collection::vec(any::<u8>(), 0..6)) {
            let e = event(json!({"id": 7, "s": "a\"b", "j": {"x": [1, -2, null]}}), Some(json!({"s": "é"})));
            let mut bytes = e.encode();
            let at = at.min(bytes.len());
            let end = (at + cut).min(bytes.len());
            bytes.splice(at..end, insert);
            agrees(&bytes);
        }

        /// Any string value survives the trip through the fast path.
        #[test]
        fn any_string_round_trips(s in any::<String>()) {
            let e = event(json!({"s": s.clone(), s.clone(): 1}), None);
            prop_assert_eq!(agrees(&e.encode()), Some(e));
        }
    }
}
