//! What one mapped row means in Redis commands: pure, so every case is a unit test.

use super::config::{Format, Mode, RedisRule};
use sluice_event::{EventType, Row};
use sluice_rules::{Mapped, Template};

/// One Redis operation on one key; the service turns each into wire commands and sends runs of
/// `Del` as one `DEL key...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `DEL key`
    Del(String),
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

impl Command {
    /// The key the command writes.
    pub fn key(&self) -> &str {
        match self {
            Command::Del(key) | Command::Set { key, .. } | Command::HashReplace { key, .. } => key,
        }
    }
}

/// The commands for one item. An error is a definite failure: a key template cannot render.
pub fn encode(rule: &RedisRule, mapped: &Mapped) -> Result<Vec<Command>, String> {
    let mut out = Vec::new();
    Encoder::default().encode(rule, mapped, &mut out)?;
    Ok(out)
}

/// Encodes the items of one batch, reusing its key lists from item to item.
#[derive(Default)]
pub struct Encoder {
    new_keys: Vec<String>,
    old_keys: Vec<String>,
}

impl Encoder {
    /// Appends the commands for one item to `out`; on error nothing is appended.
    pub fn encode(
        &mut self,
        rule: &RedisRule,
        mapped: &Mapped,
        out: &mut Vec<Command>,
    ) -> Result<(), String> {
        if mapped.kind == EventType::Ddl {
            return Ok(());
        }
        self.new_keys.clear();
        self.old_keys.clear();
        for t in &rule.keys {
            let key = render(t, &mapped.doc)?;
            if !self.new_keys.contains(&key) {
                self.new_keys.push(key);
            }
        }
        // Keys of the before-image that differ: the old email's key must go too. A template
        // whose columns kept their values renders the new key again, so it is not rendered.
        if let Some(old) = &mapped.old_doc {
            for t in &rule.keys {
                if t.columns().all(|c| mapped.doc.get(c) == old.get(c)) {
                    continue;
                }
                let key = render(t, old)?;
                if !self.new_keys.contains(&key) && !self.old_keys.contains(&key) {
                    self.old_keys.push(key);
                }
            }
        }
        match (rule.mode, mapped.kind) {
            (Mode::Invalidate, _) | (Mode::Refresh, EventType::Delete) => {
                out.extend(self.new_keys.drain(..).map(Command::Del));
                out.extend(self.old_keys.drain(..).map(Command::Del));
            }
            (Mode::Refresh, _) => {
                out.extend(self.old_keys.drain(..).map(Command::Del));
                match rule.format {
                    Format::Json => {
                        let value = json_bytes(&mapped.doc);
                        out.extend(self.new_keys.drain(..).map(|key| Command::Set {
                            key,
                            value: value.clone(),
                            ttl_secs: rule.ttl_secs,
                        }));
                    }
                    Format::Hash => {
                        let fields = hash_fields(&mapped.doc);
                        out.extend(self.new_keys.drain(..).map(|key| Command::HashReplace {
                            key,
                            fields: fields.clone(),
                            ttl_secs: rule.ttl_secs,
                        }));
                    }
                }
            }
        }
        Ok(())
    }
}

fn render(template: &Template, row: &Row) -> Result<String, String> {
    template
        .render(row)
        .map_err(|e| format!("cannot render Redis key: {e}"))
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
                dels(&["user:1", "user:email:a@x"]),
            ),
            (
                mapped(
                    EventType::Update,
                    json!({"id":1,"email":"b@x"}),
                    Some(json!({"id":1,"email":"a@x"})),
                ),
                dels(&["user:1", "user:email:b@x", "user:email:a@x"]),
            ),
            (
                mapped(
                    EventType::Update,
                    json!({"id":1,"email":"a@x","n":2}),
                    Some(json!({"id":1,"email":"a@x","n":1})),
                ),
                dels(&["user:1", "user:email:a@x"]),
            ),
            (
                mapped(EventType::Delete, json!({"id":1,"email":"a@x"}), None),
                dels(&["user:1", "user:email:a@x"]),
            ),
            // The id changed (a number), the email kept its value: the old id's key goes too.
            (
                mapped(
                    EventType::Update,
                    json!({"id":2,"email":"a@x"}),
                    Some(json!({"id":1,"email":"a@x"})),
                ),
                dels(&["user:2", "user:email:a@x", "user:1"]),
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
        assert_eq!(cmds[0], Command::Del("user:1".into()));
        assert!(matches!(&cmds[1], Command::Set { key, .. } if key == "user:2"));
        let del = mapped(EventType::Delete, json!({"id":1,"name":"Ann"}), None);
        assert_eq!(encode(&r, &del).unwrap(), dels(&["user:1"]));

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
        // A before-image without a key column cannot name the old key either.
        let r = rule(Mode::Invalidate, Format::Json, &["user:{email}"], None);
        let m = mapped(
            EventType::Update,
            json!({"id":1,"email":"a@x"}),
            Some(json!({"id":1})),
        );
        let err = encode(&r, &m).unwrap_err();
        assert!(err.contains("email"), "{err}");
    }

    #[test]
    fn one_encoder_keeps_items_apart() {
        let r = rule(
            Mode::Invalidate,
            Format::Json,
            &["u:{id}", "e:{email}"],
            None,
        );
        let mut enc = Encoder::default();
        let mut out = Vec::new();
        let a = mapped(
            EventType::Update,
            json!({"id":1,"email":"b"}),
            Some(json!({"id":1,"email":"a"})),
        );
        let b = mapped(EventType::Insert, json!({"id":2,"email":"c"}), None);
        enc.encode(&r, &a, &mut out).unwrap();
        assert!(enc
            .encode(
                &r,
                &mapped(EventType::Insert, json!({"id":3}), None),
                &mut out
            )
            .is_err());
        enc.encode(&r, &b, &mut out).unwrap();
        assert_eq!(out, dels(&["u:1", "e:b", "e:a", "u:2", "e:c"]));
    }

    fn dels(keys: &[&str]) -> Vec<Command> {
        keys.iter().map(|k| Command::Del((*k).into())).collect()
    }
}
