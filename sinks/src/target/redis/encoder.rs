//! What one mapped row means in Redis commands: pure, so every case is a unit test.

use super::config::{Format, Mode, RedisRule};
use sluice_event::{EventType, Row};
use sluice_rules::Mapped;

/// One logical Redis operation; the service turns each into one or more wire commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `DEL keys...`
    Del(Vec<String>),
    /// `SET key value [EX ttl]`
    Set {
        key: String,
        value: Vec<u8>,
        ttl_secs: Option<u64>,
    },
    /// `DEL key`, `HSET key field value...`, `[EXPIRE key ttl]`: the hash is replaced whole.
    HashReplace {
        key: String,
        fields: Vec<(String, Vec<u8>)>,
        ttl_secs: Option<u64>,
    },
}

/// The commands for one item. An error is a definite failure: a key template cannot render.
pub fn encode(rule: &RedisRule, mapped: &Mapped) -> Result<Vec<Command>, String> {
    if mapped.kind == EventType::Ddl {
        return Ok(Vec::new());
    }
    let new_keys = render_all(rule, &mapped.doc)?;
    // Keys of the before-image that differ: the old email's key must go too.
    let mut old_keys = Vec::new();
    if let Some(old) = &mapped.old_doc {
        for key in render_all(rule, old)? {
            if !new_keys.contains(&key) && !old_keys.contains(&key) {
                old_keys.push(key);
            }
        }
    }
    let mut commands = Vec::new();
    match (rule.mode, mapped.kind) {
        (Mode::Invalidate, _) | (Mode::Refresh, EventType::Delete) => {
            let mut all = new_keys;
            all.extend(old_keys);
            commands.push(Command::Del(all));
        }
        (Mode::Refresh, _) => {
            if !old_keys.is_empty() {
                commands.push(Command::Del(old_keys));
            }
            for key in new_keys {
                commands.push(match rule.format {
                    Format::Json => Command::Set {
                        key,
                        value: json_bytes(&mapped.doc),
                        ttl_secs: rule.ttl_secs,
                    },
                    Format::Hash => Command::HashReplace {
                        key,
                        fields: hash_fields(&mapped.doc),
                        ttl_secs: rule.ttl_secs,
                    },
                });
            }
        }
    }
    Ok(commands)
}

fn render_all(rule: &RedisRule, row: &Row) -> Result<Vec<String>, String> {
    let mut keys = Vec::with_capacity(rule.keys.len());
    for t in &rule.keys {
        let key = t
            .render(row)
            .map_err(|e| format!("cannot render Redis key: {e}"))?;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

fn json_bytes(row: &Row) -> Vec<u8> {
    serde_json::to_vec(row).unwrap_or_default()
}

/// Strings as they are, other values as JSON text; NULL columns are left out of the hash.
fn hash_fields(row: &Row) -> Vec<(String, Vec<u8>)> {
    row.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let bytes = match v {
                serde_json::Value::String(s) => s.as_bytes().to_vec(),
                other => other.to_string().into_bytes(),
            };
            (k.clone(), bytes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_rules::Template;

    fn rule(mode: Mode, format: Format, keys: &[&str], ttl: Option<u64>) -> RedisRule {
        RedisRule {
            keys: keys.iter().map(|k| Template::parse(k).unwrap()).collect(),
            mode,
            format,
            ttl_secs: ttl,
        }
    }

    fn row(v: serde_json::Value) -> Row {
        v.as_object().unwrap().clone()
    }

    fn mapped(kind: EventType, doc: serde_json::Value, old: Option<serde_json::Value>) -> Mapped {
        Mapped {
            kind,
            seq: 1,
            id: String::new(),
            doc: row(doc),
            old_doc: old.map(row),
            changed: Vec::new(),
        }
    }

    #[test]
    fn invalidate_deletes_new_and_changed_old_keys() {
        let r = rule(
            Mode::Invalidate,
            Format::Json,
            &["user:{id}", "user:email:{email}"],
            None,
        );
        let cases = [
            (
                mapped(EventType::Insert, json!({"id":1,"email":"a@x"}), None),
                vec![Command::Del(vec!["user:1".into(), "user:email:a@x".into()])],
            ),
            (
                mapped(
                    EventType::Update,
                    json!({"id":1,"email":"b@x"}),
                    Some(json!({"id":1,"email":"a@x"})),
                ),
                vec![Command::Del(vec![
                    "user:1".into(),
                    "user:email:b@x".into(),
                    "user:email:a@x".into(),
                ])],
            ),
            (
                mapped(
                    EventType::Update,
                    json!({"id":1,"email":"a@x","n":2}),
                    Some(json!({"id":1,"email":"a@x","n":1})),
                ),
                vec![Command::Del(vec!["user:1".into(), "user:email:a@x".into()])],
            ),
            (
                mapped(EventType::Delete, json!({"id":1,"email":"a@x"}), None),
                vec![Command::Del(vec!["user:1".into(), "user:email:a@x".into()])],
            ),
        ];
        for (m, want) in cases {
            assert_eq!(encode(&r, &m).unwrap(), want, "{m:?}");
        }
    }

    #[test]
    fn refresh_sets_json_or_hash_and_deletes_on_delete() {
        let r = rule(Mode::Refresh, Format::Json, &["user:{id}"], Some(60));
        let m = mapped(EventType::Insert, json!({"id":1,"name":"Ann"}), None);
        assert_eq!(
            encode(&r, &m).unwrap(),
            vec![Command::Set {
                key: "user:1".into(),
                value: br#"{"id":1,"name":"Ann"}"#.to_vec(),
                ttl_secs: Some(60)
            }]
        );
        let moved = mapped(
            EventType::Update,
            json!({"id":2,"name":"Ann"}),
            Some(json!({"id":1,"name":"Ann"})),
        );
        let cmds = encode(&r, &moved).unwrap();
        assert_eq!(cmds[0], Command::Del(vec!["user:1".into()]));
        assert!(matches!(&cmds[1], Command::Set { key, .. } if key == "user:2"));
        let del = mapped(EventType::Delete, json!({"id":1,"name":"Ann"}), None);
        assert_eq!(
            encode(&r, &del).unwrap(),
            vec![Command::Del(vec!["user:1".into()])]
        );

        let h = rule(Mode::Refresh, Format::Hash, &["u:{id}"], None);
        let m = mapped(
            EventType::Insert,
            json!({"id":1,"name":"Ann","gone":null,"tags":["a"]}),
            None,
        );
        assert_eq!(
            encode(&h, &m).unwrap(),
            vec![Command::HashReplace {
                key: "u:1".into(),
                fields: vec![
                    ("id".into(), b"1".to_vec()),
                    ("name".into(), b"Ann".to_vec()),
                    ("tags".into(), br#"["a"]"#.to_vec()),
                ],
                ttl_secs: None
            }]
        );
    }

    #[test]
    fn unrenderable_key_is_an_error() {
        let r = rule(Mode::Invalidate, Format::Json, &["user:{missing}"], None);
        let m = mapped(EventType::Insert, json!({"id":1}), None);
        let err = encode(&r, &m).unwrap_err();
        assert!(err.starts_with("cannot render Redis key: "), "{err}");
    }
}
