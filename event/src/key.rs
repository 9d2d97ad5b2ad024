//! The Kafka key: a compact JSON array `["<database>","<table>",<pk value>...]`.

use serde_json::Value;

/// Why bytes could not be read as a Sluice key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "Kafka key is not a Sluice key: {0}; expected [\"<database>\",\"<table>\",<pk values>...]"
    )]
    Malformed(String),
}

/// Encodes a key; the primary-key values are written exactly as in the event value.
pub fn encode_key(database: &str, table: &str, pk_values: &[&Value]) -> Vec<u8> {
    let mut items: Vec<&Value> = Vec::with_capacity(pk_values.len() + 2);
    let db = Value::String(database.to_owned());
    let tb = Value::String(table.to_owned());
    items.push(&db);
    items.push(&tb);
    items.extend_from_slice(pk_values);
    match serde_json::to_vec(&items) {
        Ok(bytes) => bytes,
        Err(e) => unreachable!("serialising JSON values into a Vec failed: {e}"),
    }
}

/// Writes the key of `database`, `table` and `pk_values` to `out` as [`encode_key`] does;
/// false if `out` refused the bytes.
pub(crate) fn write_key_to<'v>(
    out: &mut impl std::io::Write,
    database: &str,
    table: &str,
    pk_values: impl Iterator<Item = &'v Value> + Clone,
) -> bool {
    struct Key<'a, I> {
        database: &'a str,
        table: &'a str,
        values: I,
    }
    impl<'v, I: Iterator<Item = &'v Value> + Clone> serde::Serialize for Key<'_, I> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq as _;
            let mut seq = s.serialize_seq(None)?;
            seq.serialize_element(self.database)?;
            seq.serialize_element(self.table)?;
            for v in self.values.clone() {
                seq.serialize_element(v)?;
            }
            seq.end()
        }
    }
    let key = Key {
        database,
        table,
        values: pk_values,
    };
    serde_json::to_writer(out, &key).is_ok()
}

/// A writer that checks that what is written equals `expected`, and stores nothing.
pub(crate) struct SameBytes<'a> {
    rest: &'a [u8],
}

impl<'a> SameBytes<'a> {
    pub(crate) fn new(expected: &'a [u8]) -> SameBytes<'a> {
        SameBytes { rest: expected }
    }

    /// Everything written so far matched, and nothing of `expected` is left over.
    pub(crate) fn matched(&self) -> bool {
        self.rest.is_empty()
    }
}

impl std::io::Write for SameBytes<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.rest.strip_prefix(buf) {
            Some(rest) => {
                self.rest = rest;
                Ok(buf.len())
            }
            None => Err(std::io::Error::other("differs")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decodes a key into database, table and primary-key values.
pub fn decode_key(bytes: &[u8]) -> Result<(String, String, Vec<Value>), KeyError> {
    let parsed: Vec<Value> =
        serde_json::from_slice(bytes).map_err(|e| KeyError::Malformed(e.to_string()))?;
    let mut it = parsed.into_iter();
    match (it.next(), it.next()) {
        (Some(Value::String(db)), Some(Value::String(table))) => Ok((db, table, it.collect())),
        _ => Err(KeyError::Malformed(
            "the first two items must be the database and table names as strings".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compact_array_with_typed_values() {
        let id = json!(7);
        let region = json!("eu");
        assert_eq!(
            encode_key("shop", "orders", &[&id, &region]),
            br#"["shop","orders",7,"eu"]"#.to_vec()
        );
        assert_eq!(
            encode_key("shop", "log", &[]),
            br#"["shop","log"]"#.to_vec()
        );
    }

    #[test]
    fn a_key_matches_the_event_whose_row_it_names() {
        let event = crate::ChangeEvent::decode(
            br#"{"v":1,"seq":1,"source":"binlog","instance":"i","database":"shop","table":"t",
            "type":"INSERT","ts_ms":1,"capture_ms":1,"pos":{"file":"b","offset":4},"pk":["id","r"],
            "data":{"r":"\u00e9/\"","id":18446744073709551615,"x":1.5}}"#,
        )
        .unwrap();
        assert!(event.key_matches(&event.key()));
        assert!(event.key_matches(br#"["shop","t",18446744073709551615,"\u00e9/\""]"#));
        assert!(
            event.key_matches(b"[ \"shop\" , \"t\", 18446744073709551615, \"\xc3\xa9\\/\\\"\" ]")
        );
        for other in [
            &br#"["shop","t",18446744073709551614,"\u00e9/\""]"#[..],
            br#"["shop","t",18446744073709551615]"#,
            br#"["shop","t",18446744073709551615,"\u00e9/\"",1]"#,
            br#"["shop","u",18446744073709551615,"\u00e9/\""]"#,
            br#"["shop","t",1.8446744073709552e19,"\u00e9/\""]"#,
            br#"["shop","t",18446744073709551615,"\u00e9/\""#,
            b"",
            b"\xff",
        ] {
            assert!(
                !event.key_matches(other),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        let ddl = crate::ChangeEvent::decode(
            br#"{"v":1,"seq":1,"source":"binlog","instance":"i","database":"shop","table":"t",
            "type":"DDL","ts_ms":1,"capture_ms":1,"pos":{"file":"b","offset":4},"pk":[],
            "data":{},"sql":"ALTER TABLE t ADD c INT"}"#,
        )
        .unwrap();
        assert!(ddl.key_matches(br#"["shop","t"]"#));
        assert!(!ddl.key_matches(br#"["shop","t",null]"#));
    }

    #[test]
    fn decode_rejects_non_keys() {
        assert!(decode_key(b"[1,2]").is_err());
        assert!(decode_key(b"not json").is_err());
        let (db, t, pk) = decode_key(br#"["a","b",18446744073709551615]"#).unwrap();
        assert_eq!((db.as_str(), t.as_str()), ("a", "b"));
        assert_eq!(pk, vec![json!(u64::MAX)]);
    }
}
