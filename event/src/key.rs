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
    fn decode_rejects_non_keys() {
        assert!(decode_key(b"[1,2]").is_err());
        assert!(decode_key(b"not json").is_err());
        let (db, t, pk) = decode_key(br#"["a","b",18446744073709551615]"#).unwrap();
        assert_eq!((db.as_str(), t.as_str()), ("a", "b"));
        assert_eq!(pk, vec![json!(u64::MAX)]);
    }
}
