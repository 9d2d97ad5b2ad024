//! MySQL's partial JSON updates (`binlog_row_value_options=PARTIAL_JSON`): the after image of a
//! JSON column is a list of diffs against the before image, applied here as the server applies
//! them on a replica.
//!
//! Each diff is an operation byte (0 REPLACE, 1 INSERT, 2 REMOVE), a packed-integer length and
//! the path as text (`$.a."b c"[2]`), then, except for REMOVE, a packed-integer length and the
//! new value in binary JSON.

use super::cursor::{Cursor, Malformed};
use super::jsonb;
use serde_json::{Map, Value};

/// Applies the diffs in `diffs` (the bytes after the column's length prefix) to `doc`.
pub fn apply(doc: &mut Value, diffs: &[u8]) -> Result<(), Malformed> {
    let mut c = Cursor::new(diffs);
    while !c.is_empty() {
        let op = match c.u8()? {
            0 => Op::Replace,
            1 => Op::Insert,
            2 => Op::Remove,
            b => {
                return Err(Malformed::new(format!(
                    "JSON diff operation {b} is unknown"
                )))
            }
        };
        let path_len = c.lenenc_len()?;
        let text = c.take(path_len)?;
        let text =
            std::str::from_utf8(text).map_err(|_| Malformed::new("JSON diff path is not UTF-8"))?;
        let path = parse_path(text)
            .map_err(|e| Malformed::new(format!("JSON diff path {text:?}: {e}")))?;
        let value = if op == Op::Remove {
            None
        } else {
            let n = c.lenenc_len()?;
            Some(jsonb::decode(c.take(n)?)?)
        };
        apply_one(doc, op, &path, value).map_err(|e| {
            Malformed::new(format!(
                "JSON diff {op} {text} does not fit the before image: {e}"
            ))
        })?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Replace,
    Insert,
    Remove,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Replace => "REPLACE",
            Op::Insert => "INSERT",
            Op::Remove => "REMOVE",
        })
    }
}

/// One step of a path: an object member or an array cell (`[n]`, or `[last-n]` from the end).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Leg {
    Member(String),
    Cell { from_end: bool, n: usize },
}

impl Leg {
    /// The position this cell names in an array of `len` elements, `None` when outside it.
    fn index(&self, len: usize) -> Option<usize> {
        match *self {
            Leg::Cell { from_end: false, n } => Some(n).filter(|i| *i < len),
            Leg::Cell { from_end: true, n } => len.checked_sub(n.checked_add(1)?),
            Leg::Member(_) => None,
        }
    }

    /// Where an INSERT at this cell goes in an array of `len`: past the end means appended.
    fn insert_at(&self, len: usize) -> usize {
        match *self {
            Leg::Cell { from_end: false, n } => n.min(len),
            _ => self.index(len).unwrap_or(0),
        }
    }
}

fn apply_one(doc: &mut Value, op: Op, path: &[Leg], value: Option<Value>) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("a diff cannot change the whole document".into());
    };
    let mut at = doc;
    for leg in parents {
        at = match (at, leg) {
            (Value::Object(m), Leg::Member(k)) => m.get_mut(k),
            (Value::Array(a), leg @ Leg::Cell { .. }) => {
                let len = a.len();
                leg.index(len).and_then(|i| a.get_mut(i))
            }
            _ => None,
        }
        .ok_or("the path is not in it")?;
    }
    match (op, at, last) {
        (Op::Replace, Value::Object(m), Leg::Member(k)) => {
            let slot = m.get_mut(k).ok_or("the member is not in it")?;
            *slot = value.unwrap_or(Value::Null);
        }
        (Op::Replace, Value::Array(a), leg @ Leg::Cell { .. }) => {
            let i = leg.index(a.len()).ok_or("the cell is not in it")?;
            a[i] = value.unwrap_or(Value::Null);
        }
        (Op::Insert, Value::Object(m), Leg::Member(k)) => {
            if m.contains_key(k) {
                return Err("the member is already in it".into());
            }
            m.insert(k.clone(), value.unwrap_or(Value::Null));
            sort_keys(m);
        }
        (Op::Insert, Value::Array(a), leg @ Leg::Cell { .. }) => {
            let i = leg.insert_at(a.len());
            a.insert(i, value.unwrap_or(Value::Null));
        }
        (Op::Remove, Value::Object(m), Leg::Member(k)) => {
            m.shift_remove(k).ok_or("the member is not in it")?;
        }
        (Op::Remove, Value::Array(a), leg @ Leg::Cell { .. }) => {
            let i = leg.index(a.len()).ok_or("the cell is not in it")?;
            a.remove(i);
        }
        _ => return Err("the path's last step does not match the value there".into()),
    }
    Ok(())
}

/// MySQL stores an object's members shortest key first, then by bytes: a full after image
/// would list an inserted member there too.
fn sort_keys(m: &mut Map<String, Value>) {
    let mut members: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
    members.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    m.extend(members);
}

/// A path as MySQL writes it in a diff: `$` then `.member`, `."quoted member"`, `[n]`,
/// `[last]` or `[last-n]`. Wildcards and ranges never appear in a diff and are refused.
fn parse_path(text: &str) -> Result<Vec<Leg>, String> {
    let s = text.trim_start();
    let mut s = s.strip_prefix('$').ok_or("it does not start with $")?;
    let mut legs = Vec::new();
    loop {
        s = s.trim_start();
        let Some(first) = s.chars().next() else {
            return Ok(legs);
        };
        match first {
            '.' => {
                s = s[1..].trim_start();
                if s.starts_with('"') {
                    let end = quoted_end(s).ok_or("a quoted member is not closed")?;
                    let name: String = serde_json::from_str(&s[..end])
                        .map_err(|_| "a quoted member is not a JSON string")?;
                    legs.push(Leg::Member(name));
                    s = &s[end..];
                } else {
                    let end = s
                        .find(|c: char| c == '.' || c == '[' || c.is_whitespace())
                        .unwrap_or(s.len());
                    let name = &s[..end];
                    if name.is_empty() || name.contains('*') || name.contains('"') {
                        return Err(format!("member {name:?} is not a plain name"));
                    }
                    legs.push(Leg::Member(name.to_owned()));
                    s = &s[end..];
                }
            }
            '[' => {
                let end = s.find(']').ok_or("an array cell is not closed")?;
                let inner = s[1..end].trim();
                let cell = match inner.strip_prefix("last") {
                    Some(rest) => {
                        let rest = rest.trim_start();
                        let n = match rest.strip_prefix('-') {
                            Some(n) => n.trim().parse().ok(),
                            None if rest.is_empty() => Some(0),
                            None => None,
                        };
                        n.map(|n| Leg::Cell { from_end: true, n })
                    }
                    None => inner.parse().ok().map(|n| Leg::Cell { from_end: false, n }),
                };
                legs.push(cell.ok_or_else(|| format!("array cell [{inner}] is not an index"))?);
                s = &s[end + 1..];
            }
            c => return Err(format!("{c:?} where a step should start")),
        }
    }
}

/// The byte just past the closing quote of the JSON string that `s` starts with.
fn quoted_end(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate().skip(1) {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// One diff in the binlog's form; `value` is binary JSON (absent for REMOVE).
    pub(crate) fn diff(op: u8, path: &str, value: Option<&[u8]>) -> Vec<u8> {
        let mut b = vec![op, path.len() as u8];
        b.extend_from_slice(path.as_bytes());
        if let Some(v) = value {
            b.push(v.len() as u8);
            b.extend_from_slice(v);
        }
        b
    }

    /// Binary JSON of a short string.
    pub(crate) fn jstr(s: &str) -> Vec<u8> {
        let mut b = vec![0x0c, s.len() as u8];
        b.extend_from_slice(s.as_bytes());
        b
    }

    const INT16_7: &[u8] = &[0x05, 7, 0];
    const TRUE: &[u8] = &[0x04, 1];

    #[test]
    fn paths() {
        assert_eq!(parse_path("$").unwrap(), vec![]);
        assert_eq!(
            parse_path(r#"$.a."b c\"d"[3][last-1] [ last ]"#).unwrap(),
            vec![
                Leg::Member("a".into()),
                Leg::Member("b c\"d".into()),
                Leg::Cell {
                    from_end: false,
                    n: 3
                },
                Leg::Cell {
                    from_end: true,
                    n: 1
                },
                Leg::Cell {
                    from_end: true,
                    n: 0
                },
            ]
        );
        for bad in [
            "a",
            "$.*",
            "$[*]",
            "$**.a",
            "$[1 to 2]",
            "$.\"x",
            "$[",
            "$.",
        ] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replace_insert_remove_as_the_server_does() {
        let mut doc = json!({"a": 1, "bb": [1, 2, 3], "ccc": {"x": null}});
        let diffs = [
            diff(0, "$.a", Some(&jstr("new"))),
            diff(1, "$.b", Some(TRUE)),
            diff(1, "$.bb[1]", Some(INT16_7)),
            diff(1, "$.bb[99]", Some(INT16_7)),
            diff(2, "$.bb[0]", None),
            diff(0, "$.bb[last]", Some(TRUE)),
            diff(2, "$.ccc.x", None),
            diff(1, "$.\"d e\"", Some(&jstr("q"))),
        ]
        .concat();
        apply(&mut doc, &diffs).unwrap();
        // Members in the server's order: shortest key first, then by bytes.
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"a":"new","b":true,"bb":[7,2,3,true],"ccc":{},"d e":"q"}"#
        );
    }

    #[test]
    fn diffs_that_do_not_fit_are_errors() {
        let doc = json!({"a": [1]});
        for (d, what) in [
            (diff(0, "$.b", Some(TRUE)), "not in it"),
            (diff(1, "$.a", Some(TRUE)), "already in it"),
            (diff(2, "$.a[1]", None), "not in it"),
            (diff(0, "$", Some(TRUE)), "whole document"),
            (diff(0, "$.a.b", Some(TRUE)), "does not match"),
            (diff(7, "$.a", None), "operation 7"),
            (diff(0, "$.a", None), "needed 1 bytes"),
        ] {
            let err = apply(&mut doc.clone(), &d).unwrap_err();
            assert!(err.0.contains(what), "{err}");
        }
    }
}
