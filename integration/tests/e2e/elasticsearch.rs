//! End-to-end tests: the Elasticsearch target against the local OpenSearch 2.19 node of
//! scripts/services.sh, with the real sink runtime in-process and change events produced by the
//! tests. Each test's indexes get no replica (`es::single_node_indexes`) and are deleted when it
//! passes.
//!
//! This file holds the events, the config, the running sink and reads of the server; the tests
//! are in `documents` (column types, versions, replays, mapping conflicts), `rules` (several
//! tables or rules into one index, upsert mode), `retries` (item-level 429 through a
//! fault-injecting proxy) and `backfill` (`reindex`: a new index, then an alias swap).

mod backfill;
mod documents;
mod retries;
mod rules;

use serde_json::{json, Value};
use sluice_event::{ChangeEvent, EventType};
use sluice_integration::sink::{positions, RunningSink, SinkToml};
use sluice_integration::{create_topic, es, es_url, kafka, kafka_brokers, unique_name, wait};
use sluice_sinks::{Sink, SinkConfig};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// `seq` as the capture makes it (`ts_ms << 20`) from one base per test run, plus `n` so
/// tests can order events.
fn seq(n: i64) -> i64 {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(|| {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        ms << 20
    });
    base + n
}

/// A change of row `data` of `shop.<table>`.
fn change(table: &str, kind: EventType, seq: i64, data: Value, old: Option<Value>) -> ChangeEvent {
    sluice_integration::events::row_event("shop", table, kind, seq, data, old)
}

/// Produces `events` in order (each under its key, so one row stays in one partition).
async fn produce(topic: &str, events: &[ChangeEvent]) {
    sluice_integration::events::produce(&kafka_brokers(), topic, events)
        .await
        .unwrap();
}

/// A topic no other test uses, with `partitions` partitions and its dead-letter topic, and an
/// index name no other test uses, both named after `prefix`.
async fn fresh(prefix: &str, partitions: i32) -> (String, String) {
    es::single_node_indexes().await;
    let topic = unique_name(prefix);
    create_topic(&topic, partitions).await.unwrap();
    create_topic(&format!("{topic}.dlq"), 1).await.unwrap();
    (topic, unique_name(prefix))
}

/// A rule `name` of the target `search` for `tables` (TOML strings, comma-separated); `body` is
/// the rest of it.
fn rule(name: &str, tables: &str, body: &str) -> String {
    format!(
        "[[rules]]\nname = \"{name}\"\ntarget = \"search\"\nmatch = {{ tables = [{tables}] }}\n{body}\n"
    )
}

/// One rule `o`: `shop.orders` into `index`, with `extra` lines in its [rules.elasticsearch].
fn orders_rule(index: &str, extra: &str) -> String {
    let body = format!("[rules.elasticsearch]\nindex = \"{index}\"\n{extra}");
    rule("o", "\"shop.orders\"", &body)
}

/// A file with the index mapping `json`, for `create_index`.
fn mapping_file(json: &str) -> std::path::PathBuf {
    sluice_integration::write_temp_file("es_mapping", "mapping.json", json)
}

/// A sink config reading `topic` (a group of its own) with one Elasticsearch target `search` at
/// `url`.
fn sink_config(topic: &str, url: &str, rules: &str) -> SinkConfig {
    let group = unique_name("g");
    let text = format!(
        "{}[targets.search]\ntype = \"elasticsearch\"\nurls = [\"{url}\"]\ntimeout_ms = 10000\n{rules}\n",
        SinkToml::new(topic, &group).text()
    );
    sluice_integration::sink::parse(&text, &[])
}

fn run(config: &SinkConfig) -> RunningSink {
    RunningSink::start(Sink::new(config.clone()))
}

/// Runs the sink until it has committed everything produced so far, then stops it.
async fn run_until_caught_up(config: &SinkConfig) {
    let sink = run(config);
    until_caught_up(config).await;
    sink.stop().await.unwrap();
}

/// The group's committed offsets, per partition.
async fn committed(config: &SinkConfig) -> Vec<Option<i64>> {
    wait::until_ok(90, "the group's committed offsets", async || {
        let p = positions(config).await.ok_or("the broker did not answer")?;
        Ok(p.into_iter().map(|(c, _)| c).collect())
    })
    .await
}

/// Waits until the group has committed everything produced so far (an empty partition has
/// nothing to commit).
async fn until_caught_up(config: &SinkConfig) {
    wait::until(90, "the sink committed every message", async || {
        positions(config)
            .await
            .is_some_and(|p| p.iter().all(|(c, high)| c.unwrap_or(0) == *high))
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/// `(version, _source)` of a document, or None if it does not exist.
async fn get_doc(index: &str, id: &str) -> Option<(i64, Value)> {
    let v = es::json(reqwest::Client::new().get(format!("{}/{index}/_doc/{id}", es_url()))).await;
    if v["found"] != json!(true) {
        return None;
    }
    Some((v["_version"].as_i64().unwrap(), v["_source"].clone()))
}

/// The headers of the first `expect` messages of `topic`, read from the beginning.
fn read_topic(topic: &str, expect: usize) -> Vec<BTreeMap<String, String>> {
    let messages = kafka::read_messages(&kafka_brokers(), topic, 1, expect, 20);
    messages.iter().map(kafka::headers).collect()
}
