//! JSON text checked and compacted in one pass, without building a `serde_json::Value`:
//! MariaDB keeps JSON columns as text, and parsing each one into a tree only to print it again
//! was a measurable share of the capture's time.

/// The deepest a JSON column's value may nest and still be embedded as JSON: MySQL's own limit
/// for JSON documents. An event adds two levels around a value (the event, `data`/`old`), and
/// serde_json, what sinks read events with, stops at 128 levels, as many other parsers do; a
/// deeper MariaDB value (its JSON is text, with no such limit) is published as a JSON string of
/// its text instead (docs/event-format.md), so every event the capture writes reads back.
pub const MAX_JSON_DEPTH: usize = 100;
const MAX_DEPTH: usize = MAX_JSON_DEPTH;

/// `text` without insignificant whitespace, if it is one JSON value that serde_json reads
/// back: valid UTF-8 and RFC 8259 syntax, no lone surrogate escapes, no number that overflows
/// a double, nesting up to [`MAX_JSON_DEPTH`] levels. Strings, escapes and numbers are kept
/// exactly as written.
/// `None` means: not such a value (the caller decides; the capture falls back to parsing).
pub fn compact_json(text: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    if !compact_json_into(text, &mut out) {
        return None;
    }
    // Only whole tokens of valid UTF-8 input were copied, so the output is valid UTF-8.
    String::from_utf8(out).ok()
}

/// [`compact_json`] appended to `out`; `false` (and `out` as it was) when `text` is not such
/// a value. The capture writes JSON columns into events this way, without a `String` per value.
pub fn compact_json_into(text: &[u8], out: &mut Vec<u8>) -> bool {
    if std::str::from_utf8(text).is_err() {
        return false;
    }
    let start = out.len();
    let mut p = Compactor { b: text, i: 0, out };
    let whole = p.value(0).is_some() && {
        p.ws();
        p.i == p.b.len()
    };
    if !whole {
        out.truncate(start);
    }
    whole
}

/// A JSON column's text as the cell an event embeds: compact text when [`compact_json`] takes
/// it, else the value serde_json parses from it (a number beyond a double's range, a lone
/// surrogate escape), if that nests at most [`MAX_JSON_DEPTH`] levels. `None`: not JSON to embed
/// (the caller writes the text as a string).
pub fn json_column(text: &[u8]) -> Option<crate::Cell> {
    if let Some(t) = compact_json(text) {
        return Some(crate::Cell::JsonText(t));
    }
    let value: serde_json::Value = serde_json::from_slice(text).ok()?;
    (depth(&value) <= MAX_JSON_DEPTH).then_some(crate::Cell::Json(value))
}

/// Container levels of `v` (a scalar is 0).
fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

struct Compactor<'a> {
    b: &'a [u8],
    i: usize,
    out: &'a mut Vec<u8>,
}

impl Compactor<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'{' => self.container(depth, b'}', true),
            b'[' => self.container(depth, b']', false),
            b'"' => self.string(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// An object (`keys`) or array, from its opening bracket.
    fn container(&mut self, depth: usize, close: u8, keys: bool) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.out.push(self.b[self.i]);
        self.i += 1;
        self.ws();
        if self.peek()? == close {
            self.out.push(close);
            self.i += 1;
            return Some(());
        }
        loop {
            if keys {
                self.ws();
                if self.peek()? != b'"' {
                    return None;
                }
                self.string()?;
                self.ws();
                if self.peek()? != b':' {
                    return None;
                }
                self.out.push(b':');
                self.i += 1;
            }
            self.value(depth + 1)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.out.push(b',');
                    self.i += 1;
                }
                c if c == close => {
                    self.out.push(close);
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + word.len())? != word {
            return None;
        }
        self.out.extend_from_slice(word);
        self.i += word.len();
        Some(())
    }

    /// A string from its opening quote, copied with its escapes as written.
    fn string(&mut self) -> Option<()> {
        let start = self.i;
        self.i += 1;
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    self.out.extend_from_slice(&self.b[start..self.i]);
                    return Some(());
                }
                b'\\' => {
                    self.i += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            let cp = self.hex4(self.i + 1)?;
                            self.i += 5;
                            if (0xD800..0xDC00).contains(&cp) {
                                // A high surrogate needs its low half right after it.
                                if self.b.get(self.i..self.i + 2)? != b"\\u" {
                                    return None;
                                }
                                let lo = self.hex4(self.i + 2)?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return None;
                                }
                                self.i += 6;
                            } else if (0xDC00..0xE000).contains(&cp) {
                                return None;
                            }
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.b.get(at..at + 4)?;
        let mut v = 0u32;
        for d in digits {
            v = v * 16 + (*d as char).to_digit(16)?;
        }
        Some(v)
    }

    /// `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`, which must fit a double.
    fn number(&mut self) -> Option<()> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let mut simple = true;
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
            simple = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
            simple = false;
        }
        let token = &self.b[start..self.i];
        // Short integers always fit; anything else must be a finite double for serde_json.
        if !simple || token.len() > 18 {
            let text = std::str::from_utf8(token).ok()?;
            if !text.parse::<f64>().ok()?.is_finite() {
                return None;
            }
        }
        self.out.extend_from_slice(token);
        Some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_what_mariadb_prints() {
        assert_eq!(
            compact_json(br#"{"sku": "A-1", "qty": 1, "tags": ["x", "y"]}"#).as_deref(),
            Some(r#"{"sku":"A-1","qty":1,"tags":["x","y"]}"#)
        );
        assert_eq!(
            compact_json(b" [ 1.50 , -0 , 2e3, \"a\\u00e9\\/ b\" , {} , [ ] , null ] ").as_deref(),
            Some(r#"[1.50,-0,2e3,"a\u00e9\/ b",{},[],null]"#)
        );
        assert_eq!(
            compact_json("\"\\ud83c\\udf0a 🌊\"".as_bytes()).as_deref(),
            Some("\"\\ud83c\\udf0a 🌊\"")
        );
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        for bad in [
            &b""[..],
            b"{",
            b"[1,]",
            b"{\"a\" 1}",
            b"{\"a\":1,}",
            b"01",
            b"1.",
            b".5",
            b"1e",
            b"-",
            b"1e400",
            b"\"\\ud800\"",
            b"\"\\udc00\"",
            b"\"\\x\"",
            b"\"a\nb\"",
            b"tru",
            b"nulls",
            b"1 2",
            b"\xff",
            b"{1:2}",
        ] {
            assert_eq!(
                compact_json(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
            assert!(
                serde_json::from_slice::<serde_json::Value>(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(compact_json(deep.as_bytes()), None);
        for (levels, embedded) in [(1, true), (100, true), (101, false), (127, false)] {
            let doc = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
            assert_eq!(
                compact_json(doc.as_bytes()).is_some(),
                embedded,
                "{levels} levels"
            );
            assert_eq!(
                json_column(doc.as_bytes()).is_some(),
                embedded,
                "{levels} levels"
            );
        }
    }
}
