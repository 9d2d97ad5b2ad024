//! From one Kafka message to the items of every target, or the reasons it cannot be written.
//! Pure: no I/O, tested with plain unit tests.

use crate::config::InputFormat;
use crate::targets::Item;
use sluice_event::ChangeEvent;
use sluice_formats::Format;
use sluice_rules::{OnError, RuleSet};
use std::collections::HashMap;

/// The rules and which target each one writes to.
pub struct Routing {
    pub rules: RuleSet,
    /// `rule_target[i]` is the index (in `target_names`) of rule `i`'s target.
    pub rule_target: Vec<usize>,
    pub target_names: Vec<String>,
}

/// The rules matching each (instance, database, table) seen so far; one per partition worker.
#[derive(Debug, Default)]
pub struct MatchCache {
    rules: HashMap<(String, String, String), Vec<usize>>,
    /// The table of the previous message and its rules: a run of one table's messages (the
    /// common case) finds them without building a key.
    last: Option<((String, String, String), Vec<usize>)>,
}

impl MatchCache {
    fn get<'a>(&'a mut self, rules: &RuleSet, event: &ChangeEvent) -> &'a [usize] {
        let hit = self.last.as_ref().is_some_and(|((i, d, t), _)| {
            *t == event.table && *d == event.database && *i == event.instance
        });
        if !hit {
            let found = self.lookup(rules, event).to_vec();
            let key = (
                event.instance.clone(),
                event.database.clone(),
                event.table.clone(),
            );
            self.last = Some((key, found));
        }
        self.last.as_ref().map(|(_, r)| r.as_slice()).unwrap_or(&[])
    }

    fn lookup<'a>(&'a mut self, rules: &RuleSet, event: &ChangeEvent) -> &'a [usize] {
        let key = (
            event.instance.clone(),
            event.database.clone(),
            event.table.clone(),
        );
        if !self.rules.contains_key(&key) {
            let found = rules.matching(&event.instance, &event.database, &event.table);
            // Bounded: a table that keeps changing names (shards) cannot grow this forever.
            if self.rules.len() >= 10_000 {
                self.rules.clear();
            }
            self.rules.insert(key.clone(), found);
        }
        self.rules.get(&key).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// What one message turned into.
#[derive(Debug, Default)]
pub struct Prepared {
    /// `(target index, item)`, in rule order.
    pub items: Vec<(usize, Item)>,
    /// Definite failures found before any write: bad bytes, a rule that cannot map the event.
    pub failures: Vec<Failure>,
}

/// A definite failure of one message (for one rule, or for all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The rule's name, when the failure is a rule's.
    pub rule: Option<String>,
    /// The target's name, when the failure is a target's.
    pub target: Option<String>,
    pub reason: String,
    /// The rule says `on_error = "stop"`.
    pub stop: bool,
    /// Why, as a bounded label for metrics and the `sluice-error-class` header: `decode` (not
    /// a change event), `key` (the key names another row than the event), `mapping` (a rule
    /// could not map it), `rejected` (a target refused it) or `retries` (a target kept
    /// failing past `retry.max_retries`).
    pub class: &'static str,
}

impl Routing {
    /// Decodes `payload` and applies every matching rule.
    pub fn prepare(&self, payload: Option<&[u8]>, cache: &mut MatchCache) -> Prepared {
        let mut out = Prepared::default();
        let mut failures = Vec::new();
        self.prepare_into(
            InputFormat::Sluice,
            None,
            payload,
            cache,
            |t, item| out.items.push((t, item)),
            |f| failures.push(f),
        );
        out.failures = failures;
        out
    }

    /// [`Routing::prepare`] handing each item (with its target index) and each failure to
    /// the caller as it is made, in the same order: a batch collects them per target without
    /// a `Prepared` per message. `format` says how the message is written (another capture's
    /// message may hold several changes; `key` is the message's key, which Debezium's carries
    /// the primary key's names in). Returns the newest source commit time (`ts_ms`) of its
    /// events, if any decoded.
    pub fn prepare_into(
        &self,
        format: InputFormat,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        cache: &mut MatchCache,
        mut item: impl FnMut(usize, Item),
        mut failure: impl FnMut(Failure),
    ) -> Option<i64> {
        // A tombstone (null value) is not a change event and carries nothing to write.
        let payload = payload?;
        let decode_failure = |reason: String| Failure {
            rule: None,
            target: None,
            reason,
            stop: false,
            class: "decode",
        };
        if format == InputFormat::Sluice {
            return match ChangeEvent::decode(payload) {
                Ok(event) if key.is_some_and(|k| !event.key_matches(k)) => {
                    failure(key_failure(key.unwrap_or_default(), &event));
                    None
                }
                Ok(event) => {
                    let ts_ms = event.ts_ms;
                    self.apply(event, payload.len(), cache, &mut item, &mut failure);
                    Some(ts_ms)
                }
                Err(e) => {
                    failure(decode_failure(e.to_string()));
                    None
                }
            };
        }
        let format = match format {
            InputFormat::Canal => Format::Canal,
            InputFormat::Maxwell => Format::Maxwell,
            InputFormat::Debezium => Format::Debezium,
            InputFormat::Sluice => Format::Sluice,
            InputFormat::Auto => {
                let seen = sluice_formats::detect(payload);
                metrics::counter!("sluice_sink_formats_total",
                    "format" => seen.map_or("unknown", Format::as_str))
                .increment(1);
                match seen {
                    Some(f) => f,
                    None => {
                        failure(decode_failure(
                            "not a change event of a known format (sluice, canal, maxwell, debezium)"
                                .to_owned(),
                        ));
                        return None;
                    }
                }
            }
        };
        let decoded = match format {
            Format::Debezium => sluice_formats::debezium_with_key(key, payload),
            f => sluice_formats::decode(f, payload),
        };
        let events = match decoded {
            Ok(events) => events,
            Err(e) => {
                failure(decode_failure(e.to_string()));
                return None;
            }
        };
        if let (Format::Sluice, Some(k), [event]) = (format, key, events.as_slice()) {
            if !event.key_matches(k) {
                failure(key_failure(k, event));
                return None;
            }
        }
        let share = payload.len() / events.len().max(1);
        let mut newest = None;
        for event in events {
            newest = newest.max(Some(event.ts_ms));
            self.apply(event, share, cache, &mut item, &mut failure);
        }
        newest
    }

    /// Applies every rule matching `event`'s table; `bytes` is its share of the message.
    fn apply(
        &self,
        event: ChangeEvent,
        bytes: usize,
        cache: &mut MatchCache,
        item: &mut impl FnMut(usize, Item),
        failure: &mut impl FnMut(Failure),
    ) {
        let matching = cache.get(&self.rules, &event);
        let mut event = Some(event);
        for (n, &i) in matching.iter().enumerate() {
            let rule = self.rules.rule(i);
            let target = self.rule_target.get(i).copied().unwrap_or(0);
            // The last rule takes the event, so its row moves into the document.
            let applied = match event.take() {
                Some(e) if n + 1 == matching.len() => rule.apply_owned(e),
                Some(e) => {
                    let r = rule.apply(&e);
                    event = Some(e);
                    r
                }
                None => break,
            };
            match applied {
                Ok(Some(mapped)) => item(
                    target,
                    Item {
                        rule: i,
                        mapped,
                        bytes,
                    },
                ),
                Ok(None) => {}
                Err(e) => failure(Failure {
                    rule: Some(rule.name().to_owned()),
                    target: self.target_names.get(target).cloned(),
                    reason: e.to_string(),
                    stop: rule.on_error() == OnError::Stop,
                    class: "mapping",
                }),
            }
        }
    }

    /// The index of the rule named `name`.
    pub fn rule_index(&self, name: &str) -> Option<usize> {
        (0..self.rules.len()).find(|&i| self.rules.rule(i).name() == name)
    }

    /// The name of rule `i`, for headers and metrics.
    pub fn rule_name(&self, i: usize) -> &str {
        self.rules.rule(i).name()
    }

    /// Whether rule `i` stops the sink on a definite failure.
    pub fn stops(&self, i: usize) -> bool {
        self.rules.rule(i).on_error() == OnError::Stop
    }
}

/// A Sluice event under a key that names another row (or is no Sluice key): the key chose the
/// partition, so the message may be out of order with the row's other changes, and writing it
/// could put an older change over a newer one.
fn key_failure(key: &[u8], event: &ChangeEvent) -> Failure {
    const SHOWN: usize = 200;
    let shown = String::from_utf8_lossy(&key[..key.len().min(SHOWN)]);
    let more = if key.len() > SHOWN { "..." } else { "" };
    Failure {
        rule: None,
        target: None,
        reason: format!(
            "key does not match the event's primary key: the message's key is `{shown}{more}`, \
             its event (`{}.{}`) says `{}`; the key decides the partition, so the message may be \
             out of order with its row's other changes: produce it under the key its event makes \
             (docs/event-format.md, *Key*)",
            event.database,
            event.table,
            String::from_utf8_lossy(&event.key()),
        ),
        stop: false,
        class: "key",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::Problems;
    use sluice_rules::RuleConfig;

    fn routing(rules_toml: &str) -> Routing {
        #[derive(serde::Deserialize)]
        struct File {
            rules: Vec<RuleConfig>,
        }
        let file: File = toml::from_str(rules_toml).unwrap();
        let mut problems = Problems::default();
        let rules = RuleSet::compile(&file.rules, &mut problems);
        assert!(problems.is_empty(), "{problems}");
        Routing {
            rule_target: vec![0; rules.len()],
            rules,
            target_names: vec!["out".into()],
        }
    }

    fn event(table: &str, data: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "v": 1, "seq": 7, "source": "binlog", "instance": "i", "database": "shop",
            "table": table, "type": "INSERT", "ts_ms": 1, "capture_ms": 1,
            "pos": {"file": "b.1", "offset": 4}, "pk": ["id"], "data": data
        }))
        .unwrap()
    }

    /// Items and failures of one message read as `format`.
    fn prepared(r: &Routing, format: InputFormat, payload: &[u8]) -> (Vec<usize>, Vec<Failure>) {
        let (mut items, mut failures) = (Vec::new(), Vec::new());
        r.prepare_into(
            format,
            None,
            Some(payload),
            &mut MatchCache::default(),
            |_, i| items.push(i.rule),
            |f| failures.push(f),
        );
        (items, failures)
    }

    #[test]
    fn auto_reads_what_it_recognises_and_dead_letters_the_rest() {
        let r = routing(
            "[[rules]]\nname = \"a\"\ntarget = \"out\"\nmatch = { tables = [\"shop.users\"] }\n",
        );
        let (items, failures) = prepared(
            &r,
            InputFormat::Auto,
            &event("users", serde_json::json!({"id": 1})),
        );
        assert_eq!((items, failures), (vec![0], vec![]));
        for garbage in [&b"[1, 2]"[..], b"{\"hello\": 1}", b"\xff\xfe"] {
            let (items, failures) = prepared(&r, InputFormat::Auto, garbage);
            assert!(items.is_empty());
            assert_eq!(failures.len(), 1, "{garbage:?}");
            assert_eq!(failures[0].class, "decode");
            assert_eq!(
                failures[0].reason,
                "not a change event of a known format (sluice, canal, maxwell, debezium)"
            );
        }
    }

    #[test]
    fn a_message_that_is_not_of_its_topics_format_is_a_decode_failure() {
        let r = routing(
            "[[rules]]\nname = \"a\"\ntarget = \"out\"\nmatch = { tables = [\"shop.users\"] }\n",
        );
        let (items, failures) = prepared(&r, InputFormat::Canal, b"not json");
        assert!(items.is_empty());
        assert_eq!(failures[0].class, "decode");
        assert!(
            failures[0].reason.starts_with("canal message: "),
            "{}",
            failures[0].reason
        );
    }

    #[test]
    fn messages_become_items_or_failures() {
        let r = routing(
            r#"
[[rules]]
name = "a"
target = "out"
match = { tables = ["shop.users"] }
id = "{id}-{email}"
[[rules]]
name = "b"
target = "out"
match = { tables = ["shop.*"] }
on_error = "stop"
"#,
        );
        let mut cache = MatchCache::default();
        let p = r.prepare(
            Some(&event("users", serde_json::json!({"id": 1, "email": "e"}))),
            &mut cache,
        );
        let ids: Vec<(usize, &str)> = p
            .items
            .iter()
            .map(|(_, i)| (i.rule, i.mapped.id.as_str()))
            .collect();
        assert_eq!(ids, [(0, "1-e"), (1, "1")]);
        assert!(p.failures.is_empty());

        let p = r.prepare(
            Some(&event("orders", serde_json::json!({"id": 2}))),
            &mut cache,
        );
        assert_eq!(p.items.len(), 1);

        let p = r.prepare(
            Some(&event("users", serde_json::json!({"id": 3}))),
            &mut cache,
        );
        assert_eq!(p.items.len(), 1, "rule b still maps it");
        assert_eq!(p.failures.len(), 1);
        assert_eq!(p.failures[0].rule.as_deref(), Some("a"));
        assert!(!p.failures[0].stop);

        let p = r.prepare(Some(b"nope"), &mut cache);
        assert_eq!(p.failures.len(), 1);
        assert_eq!(p.failures[0].rule, None);
        assert!(p.failures[0]
            .reason
            .starts_with("message is not a Sluice change event"));

        let p = r.prepare(None, &mut cache);
        assert!(p.items.is_empty() && p.failures.is_empty());
    }

    #[test]
    fn a_key_that_names_another_row_is_a_key_failure_and_no_key_is_none() {
        let r = routing(
            "[[rules]]\nname = \"a\"\ntarget = \"out\"\nmatch = { tables = [\"shop.users\"] }\n",
        );
        let value = event("users", serde_json::json!({"id": 5}));
        for format in [InputFormat::Sluice, InputFormat::Auto] {
            let run = |key: Option<&[u8]>| {
                let (mut items, mut failures) = (Vec::new(), Vec::new());
                r.prepare_into(
                    format,
                    key,
                    Some(&value),
                    &mut MatchCache::default(),
                    |_, i| items.push(i.rule),
                    |f| failures.push(f),
                );
                (items, failures)
            };
            for good in [
                None,
                Some(&br#"["shop","users",5]"#[..]),
                Some(b"[\"shop\", \"users\", 5]"),
            ] {
                assert_eq!(run(good), (vec![0], vec![]), "{format:?} {good:?}");
            }
            for bad in [&br#"["shop","users",6]"#[..], b"k", b""] {
                let (items, failures) = run(Some(bad));
                assert!(items.is_empty(), "{format:?}");
                assert_eq!(failures.len(), 1);
                assert_eq!(failures[0].class, "key");
                assert_eq!(failures[0].rule, None);
                assert!(
                    failures[0].reason.starts_with(&format!(
                        "key does not match the event's primary key: the message's key is `{}`, its event (`shop.users`) says `[\"shop\",\"users\",5]`",
                        String::from_utf8_lossy(bad)
                    )),
                    "{}",
                    failures[0].reason
                );
            }
        }
    }
}
