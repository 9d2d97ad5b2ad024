//! End-to-end tests: the Elasticsearch target against the local OpenSearch 2.19 node of
//! scripts/services.sh, with the real sink runtime in-process and change events produced by the
//! tests. Each test's indexes get no replica (`es::single_node_indexes`) and are deleted when it
//! passes.

use serde_json::{json, Value};
use sluice_event::{ChangeEvent, EventType};
use sluice_integration::http_proxy::{self, HttpProxy, Request, Response, Upstream};
use sluice_integration::sink::{apply_start_at, positions, RunningSink, SinkToml};
use sluice_integration::{create_topic, es, es_url, kafka, kafka_brokers, unique_name, wait};
use sluice_sinks::offsets::StartAt;
use sluice_sinks::runtime::HEADER_ERROR;
use sluice_sinks::targets::elasticsearch::{reindex, Reindex};
use sluice_sinks::{Sink, SinkConfig};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// Events, config, the running sink
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_every_column_type_reaches_the_document_with_conversions() {
    let (topic, index) = fresh("es_types", 1).await;
    // BIGINT UNSIGNED above i64::MAX needs an unsigned_long mapping: dynamic mapping makes the
    // field a long and the server refuses the document.
    let mapping = mapping_file(r#"{"mappings":{"properties":{"ubig":{"type":"unsigned_long"}}}}"#);
    let body = format!(
        r#"[rules.fields]
exclude = ["secret"]
rename = {{ name = "title" }}
constants = {{ origin = "shop-main" }}
[rules.fields.convert]
tags = "split"
created_ms = "epoch_millis_to_datetime"
status_code = {{ type = "map", map = {{ "0" = "new", "1" = "paid" }}, default = "other" }}
attrs = "parse_json"
[rules.fields.json_path]
city = {{ column = "js", path = "$.address.city" }}
skus = {{ column = "js", path = "$.items[*].sku", all = true }}
[rules.elasticsearch]
index = "{index}"
create_index = "{mapping}""#,
        mapping = mapping.display()
    );
    let rules = rule("types", r#""shop.types""#, &body);
    let config = sink_config(&topic, &es_url(), &rules);
    // One value of every type of the capture's type table, as the event format encodes it.
    let row = json!({
        "id": 1, "tiny": -128, "big": 9223372036854775807u64, "ubig": 18446744073709551615u64,
        "dec": "12.30", "f": 1.5, "dbl": -2.25e-5,
        "d": "2026-11-21", "dt": "2026-11-21T09:15:02.123456", "ts": "2026-11-21T09:15:02.123Z",
        "tm": "-838:59:59.000000", "yr": 2026,
        "name": "Zoë \"quoted\"", "bin": "AAEC/w==", "en": "paid", "set": ["a", "b"], "bit": 5,
        "js": {"address": {"city": "Oslo"}, "items": [{"sku": "A"}, {"sku": "B"}]},
        "geo": {"srid": 0, "wkb": "AQEAAAAAAAAAAADwPwAAAAAAAABA"}, "nul": null,
        "tags": "x, y,,z", "created_ms": 1763716502123i64, "status_code": 1,
        "attrs": "{\"k\":[1,2]}", "secret": "pw"
    });
    let s = seq(1);
    produce(&topic, &[change("types", EventType::Insert, s, row, None)]).await;
    run_until_caught_up(&config).await;

    let (version, source) = get_doc(&index, "1").await.expect("document 1 not indexed");
    assert_eq!(version, s, "the document's version is the event's seq");
    let want = json!({
        "id": 1, "tiny": -128, "big": 9223372036854775807u64, "ubig": 18446744073709551615u64,
        "dec": "12.30", "f": 1.5, "dbl": -2.25e-5,
        "d": "2026-11-21", "dt": "2026-11-21T09:15:02.123456", "ts": "2026-11-21T09:15:02.123Z",
        "tm": "-838:59:59.000000", "yr": 2026,
        "title": "Zoë \"quoted\"", "bin": "AAEC/w==", "en": "paid", "set": ["a", "b"], "bit": 5,
        "js": {"address": {"city": "Oslo"}, "items": [{"sku": "A"}, {"sku": "B"}]},
        "geo": {"srid": 0, "wkb": "AQEAAAAAAAAAAADwPwAAAAAAAABA"}, "nul": null,
        "tags": ["x", "y", "z"], "created_ms": "2025-11-21T09:15:02.123Z", "status_code": "paid",
        "attrs": {"k": [1, 2]},
        "city": "Oslo", "skus": ["A", "B"], "origin": "shop-main"
    });
    assert_eq!(source, want);
    es::delete_indexes(&[&index]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_out_of_order_older_event_never_overwrites_newer() {
    let (topic, index) = fresh("es_order", 1).await;
    let rules = orders_rule(&index, "");
    let config = sink_config(&topic, &es_url(), &rules);
    let doc = |id: i64, status: &str| json!({"id": id, "status": status});
    produce(
        &topic,
        &[
            // Newer first, then the older one of the same row.
            change("orders", EventType::Update, seq(20), doc(1, "newer"), None),
            change("orders", EventType::Update, seq(10), doc(1, "older"), None),
            // A delete, then an older insert of the same row: it stays deleted.
            change("orders", EventType::Insert, seq(5), doc(2, "first"), None),
            change("orders", EventType::Delete, seq(30), doc(2, "first"), None),
            change("orders", EventType::Insert, seq(25), doc(2, "late"), None),
            change("orders", EventType::Insert, seq(40), doc(3, "only"), None),
        ],
    )
    .await;
    run_until_caught_up(&config).await;
    assert_eq!(get_doc(&index, "1").await, Some((seq(20), doc(1, "newer"))));
    assert_eq!(get_doc(&index, "2").await, None, "a deleted row came back");
    assert_eq!(get_doc(&index, "3").await, Some((seq(40), doc(3, "only"))));
    es::delete_indexes(&[&index]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_replay_from_an_earlier_start_at_never_regresses() {
    let (topic, index) = fresh("es_replay", 2).await;
    let rules = orders_rule(&index, "");
    let config = sink_config(&topic, &es_url(), &rules);
    let doc = |id: i64, status: &str| json!({"id": id, "status": status});
    let mut events = Vec::new();
    for id in 1..=6 {
        events.push(change(
            "orders",
            EventType::Insert,
            seq(id),
            doc(id, "v1"),
            None,
        ));
    }
    for id in 1..=6 {
        events.push(change(
            "orders",
            EventType::Update,
            seq(10 + id),
            doc(id, "v2"),
            Some(json!({"status": "v1"})),
        ));
    }
    events.push(change(
        "orders",
        EventType::Delete,
        seq(30),
        doc(3, "v2"),
        None,
    ));
    events.push(change(
        "orders",
        EventType::Update,
        seq(31),
        doc(4, "v3"),
        None,
    ));
    let before_all = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 1_000;
    produce(&topic, &events).await;

    run_until_caught_up(&config).await;
    let first = es::all_docs(&index).await;
    let mut want: HashMap<String, Value> = HashMap::new();
    for id in [1, 2, 5, 6] {
        want.insert(id.to_string(), doc(id, "v2"));
    }
    want.insert("4".into(), doc(4, "v3"));
    assert_eq!(first, want);

    // Replay everything from before the first event: the group really goes back...
    let set = apply_start_at(&config, StartAt::Time(before_all)).await;
    assert!(set.iter().all(|(_, _, o)| *o == 0), "{set:?}");
    assert!(committed(&config).await.iter().all(|c| *c == Some(0)));
    // ...and comes back to the same documents and versions: no older version won.
    run_until_caught_up(&config).await;
    assert_eq!(es::all_docs(&index).await, want);
    assert_eq!(get_doc(&index, "4").await.map(|d| d.0), Some(seq(31)));
    assert_eq!(get_doc(&index, "1").await.map(|d| d.0), Some(seq(11)));
    assert_eq!(get_doc(&index, "3").await, None, "a deleted row came back");
    es::delete_indexes(&[&index]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_mapping_conflict_goes_to_the_dlq_with_the_server_reason() {
    let (topic, index) = fresh("es_dlq", 1).await;
    let mapping = mapping_file(
        r#"{"mappings":{"properties":{"n":{"type":"long"},"status":{"type":"keyword"}}}}"#,
    );
    let rules = orders_rule(
        &index,
        &format!("create_index = \"{}\"\n", mapping.display()),
    );
    let config = sink_config(&topic, &es_url(), &rules);
    produce(
        &topic,
        &[
            change(
                "orders",
                EventType::Insert,
                seq(1),
                json!({"id": 1, "n": 5}),
                None,
            ),
            change(
                "orders",
                EventType::Insert,
                seq(2),
                json!({"id": 2, "n": "abc"}),
                None,
            ),
            change(
                "orders",
                EventType::Insert,
                seq(3),
                json!({"id": 3, "n": 7}),
                None,
            ),
        ],
    )
    .await;
    run_until_caught_up(&config).await;

    // create_index made the index with the file's mapping.
    let m = es::json(reqwest::Client::new().get(format!("{}/{index}/_mapping", es_url()))).await;
    assert_eq!(m[&index]["mappings"]["properties"]["n"]["type"], "long");
    assert!(get_doc(&index, "1").await.is_some());
    assert!(get_doc(&index, "2").await.is_none());
    assert!(get_doc(&index, "3").await.is_some());
    let dlq = read_topic(&format!("{topic}.dlq"), 1);
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    let error = &dlq[0][HEADER_ERROR];
    assert!(
        error.starts_with(&format!(
            "elasticsearch rejected the index of document `2` in index `{index}`: HTTP 400 mapper_parsing_exception: failed to parse field [n] of type [long]"
        )),
        "{error}"
    );
    assert_eq!(dlq[0]["sluice-original-offset"], "1");
    assert_eq!(dlq[0]["sluice-rule"], "o");
    es::delete_indexes(&[&index]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_sharded_tables_into_one_index_with_where_and_json_path() {
    let (topic, index) = fresh("es_shards", 4).await;
    let body = format!(
        r#"where = 'status != "deleted" && amount > 10'
id = "{{tenant}}-{{id}}"
[rules.fields]
include = ["id", "tenant", "status", "amount"]
[rules.fields.json_path]
city = {{ column = "shipping", path = "$.address.city" }}
[rules.elasticsearch]
index = "{index}"
routing = "{{tenant}}""#
    );
    let rules = rule("orders", r#""shop.orders_[0-9][0-9]""#, &body);
    let config = sink_config(&topic, &es_url(), &rules);
    let mut events = Vec::new();
    let mut want = HashMap::new();
    for shard in 0..4 {
        for n in 0..5i64 {
            let id = shard * 100 + n;
            let status = if n == 4 { "deleted" } else { "paid" };
            let amount = if n == 3 { "5.00" } else { "12.50" };
            let city = format!("city{shard}");
            let row = json!({"id": id, "tenant": "t1", "status": status, "amount": amount,
                "note": "internal", "shipping": format!("{{\"address\":{{\"city\":\"{city}\"}}}}")});
            if n < 3 {
                want.insert(
                    format!("t1-{id}"),
                    json!({"id": id, "tenant": "t1", "status": status, "amount": amount, "city": city}),
                );
            }
            events.push(change(
                &format!("orders_{shard:02}"),
                EventType::Insert,
                seq(id),
                row,
                None,
            ));
        }
    }
    // Another table of the database does not match.
    events.push(change(
        "orders_archive",
        EventType::Insert,
        seq(999),
        json!({"id": 1}),
        None,
    ));
    produce(&topic, &events).await;
    run_until_caught_up(&config).await;
    assert_eq!(es::all_docs(&index).await, want);
    es::delete_indexes(&[&index]).await;
}

/// The rules of the upsert tests: `shop.orders` and `shop.shipping` feed one document per order;
/// the order's rule deletes the document, the shipping rule only its own fields.
fn upsert_rules(index: &str) -> String {
    let order = format!("[rules.elasticsearch]\nindex = \"{index}\"\nmode = \"upsert\"");
    let shipping = format!(
        r#"id = "{{order_id}}"
[rules.fields]
include = ["order_id", "carrier"]
{order}
delete = "fields""#
    );
    rule("order", r#""shop.orders""#, &order) + &rule("shipping", r#""shop.shipping""#, &shipping)
}

/// The ids of the documents of `index` that have the field `field`.
async fn having(index: &str, field: &str) -> Vec<String> {
    let mut ids: Vec<String> = es::search(index, json!({"exists": {"field": field}}))
        .await
        .into_keys()
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_upsert_mode_merges_rules_and_deletes_only_its_fields() {
    let (topic, index) = fresh("es_upsert", 1).await;
    let config = sink_config(&topic, &es_url(), &upsert_rules(&index));
    let shipping = json!({"id": 70, "order_id": 7, "carrier": "DHL"});
    produce(
        &topic,
        &[
            change(
                "orders",
                EventType::Insert,
                seq(1),
                json!({"id": 7, "status": "paid"}),
                None,
            ),
            change(
                "shipping",
                EventType::Insert,
                seq(2),
                shipping.clone(),
                None,
            ),
            change(
                "orders",
                EventType::Update,
                seq(3),
                json!({"id": 7, "status": "shipped"}),
                None,
            ),
            change(
                "shipping",
                EventType::Delete,
                seq(4),
                shipping.clone(),
                None,
            ),
            change(
                "orders",
                EventType::Insert,
                seq(5),
                json!({"id": 8, "status": "new"}),
                None,
            ),
            change(
                "orders",
                EventType::Delete,
                seq(6),
                json!({"id": 8, "status": "new"}),
                None,
            ),
        ],
    )
    .await;
    run_until_caught_up(&config).await;
    // The shipping fields are gone from the document, not null: the order's fields and the
    // `seq` each rule last applied are what is left.
    let merged = json!({"id": 7, "status": "shipped",
        "_sluice_seq": {"order": seq(3), "shipping": seq(4)}});
    let docs = es::all_docs(&index).await;
    assert_eq!(docs.get("7"), Some(&merged));
    assert!(!docs.contains_key("8"), "{docs:?}");
    assert!(having(&index, "carrier").await.is_empty());
    assert_eq!(having(&index, "status").await, vec!["7".to_owned()]);

    // Older changes delivered again (a producer retry, a capture resync) change nothing: the
    // shipping row's insert does not bring its fields back, the order's first state does not
    // replace its newer one.
    produce(
        &topic,
        &[
            change(
                "shipping",
                EventType::Insert,
                seq(2),
                shipping.clone(),
                None,
            ),
            change(
                "orders",
                EventType::Insert,
                seq(1),
                json!({"id": 7, "status": "paid"}),
                None,
            ),
        ],
    )
    .await;
    run_until_caught_up(&config).await;
    assert_eq!(es::all_docs(&index).await.get("7"), Some(&merged));

    // Replaying the whole topic converges to the same documents.
    apply_start_at(&config, StartAt::Earliest).await;
    run_until_caught_up(&config).await;
    let docs = es::all_docs(&index).await;
    assert_eq!(docs.get("7"), Some(&merged));
    assert!(!docs.contains_key("8"), "{docs:?}");

    // A newer shipping row is written again; a removal of a document that does not exist is done.
    let newer = json!({"id": 71, "order_id": 7, "carrier": "UPS"});
    let nowhere = json!({"id": 90, "order_id": 9, "carrier": "DHL"});
    produce(
        &topic,
        &[
            change("shipping", EventType::Insert, seq(7), newer, None),
            change("shipping", EventType::Delete, seq(8), nowhere, None),
        ],
    )
    .await;
    run_until_caught_up(&config).await;
    let docs = es::all_docs(&index).await;
    assert_eq!(
        docs.get("7"),
        Some(
            &json!({"id": 7, "status": "shipped", "order_id": 7, "carrier": "UPS",
            "_sluice_seq": {"order": seq(3), "shipping": seq(7)}})
        )
    );
    assert!(!docs.contains_key("9"), "{docs:?}");
    es::delete_indexes(&[&index]).await;
}

// ---------------------------------------------------------------------------------------------
// Item-level 429 through a fault-injecting proxy
// ---------------------------------------------------------------------------------------------

/// Faults for the proxy (`sluice_integration::http_proxy`) in front of the server: while
/// `failing` is set, the bulk actions of chosen document ids are answered with an item-level 429
/// (and not passed on); `sent` counts how often each id was sent.
#[derive(Default)]
struct Proxy {
    fail_ids: Mutex<HashSet<String>>,
    failing: AtomicBool,
    sent: Mutex<HashMap<String, usize>>,
}

impl Proxy {
    /// Starts the proxy; it runs until the returned value is dropped.
    async fn start(self: &Arc<Self>) -> HttpProxy {
        let proxy = self.clone();
        let handler = http_proxy::handler(move |req: Request, up: Upstream| {
            let proxy = proxy.clone();
            async move {
                if req.path.starts_with("/_bulk") {
                    proxy.bulk(&up, &req).await
                } else {
                    up.forward(&req).await
                }
            }
        });
        HttpProxy::start(&es_url(), None, handler).await.unwrap()
    }

    fn sent(&self, id: &str) -> usize {
        self.sent.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    /// Passes on the actions of ids that do not fail; answers the others with 429.
    async fn bulk(&self, up: &Upstream, req: &Request) -> Response {
        let text = String::from_utf8_lossy(&req.body);
        let mut lines = text.lines();
        let mut forward = String::new();
        // Per action: Some(id) if it is failed here, None if passed on.
        let mut plan: Vec<(String, Option<String>)> = Vec::new();
        while let Some(action) = lines.next() {
            let meta: Value = serde_json::from_str(action).unwrap();
            let (op, m) = meta.as_object().unwrap().iter().next().unwrap();
            let id = m["_id"].as_str().unwrap().to_owned();
            let source = (op != "delete").then(|| lines.next().unwrap().to_owned());
            *self.sent.lock().unwrap().entry(id.clone()).or_default() += 1;
            let fail =
                self.failing.load(Ordering::SeqCst) && self.fail_ids.lock().unwrap().contains(&id);
            if fail {
                plan.push((op.clone(), Some(id)));
            } else {
                plan.push((op.clone(), None));
                forward.push_str(action);
                forward.push('\n');
                if let Some(s) = source {
                    forward.push_str(&s);
                    forward.push('\n');
                }
            }
        }
        let mut passed: Vec<Value> = Vec::new();
        if !forward.is_empty() {
            let r = up
                .send(
                    &req.method,
                    &req.path,
                    "application/x-ndjson",
                    forward.into_bytes(),
                )
                .await;
            let r: Value = serde_json::from_slice(&r.body).unwrap();
            passed = r["items"].as_array().cloned().unwrap();
        }
        let mut passed = passed.into_iter();
        let items: Vec<Value> = plan
            .into_iter()
            .map(|(op, failed)| match failed {
                Some(id) => json!({ op: {"_id": id, "status": 429, "error": {
                    "type": "es_rejected_execution_exception",
                    "reason": "rejected execution of coordinating operation (injected)"}}}),
                None => passed.next().unwrap(),
            })
            .collect();
        Response::json(200, &json!({"took": 1, "errors": true, "items": items}))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_item_level_429_retries_only_those_items_and_the_offset_waits() {
    let (topic, index) = fresh("es_429", 1).await;
    let proxy = Arc::new(Proxy::default());
    proxy
        .fail_ids
        .lock()
        .unwrap()
        .extend(["3".to_owned(), "7".to_owned()]);
    proxy.failing.store(true, Ordering::SeqCst);
    let server = proxy.start().await;
    let rules = orders_rule(&index, "");
    let config = sink_config(&topic, server.url(), &rules);
    let events: Vec<ChangeEvent> = (1..=10)
        .map(|id| {
            change(
                "orders",
                EventType::Insert,
                seq(id),
                json!({"id": id}),
                None,
            )
        })
        .collect();
    produce(&topic, &events).await;
    let sink = run(&config);

    // While 3 and 7 are refused: they are tried again and again, the others arrive, and the
    // committed offset stays before message 2 (id 3).
    wait::until(30, "ids 3 and 7 retried", async || {
        proxy.sent("3") >= 3 && proxy.sent("7") >= 2
    })
    .await;
    let present = es::all_docs(&index).await;
    for id in [1, 2, 4, 5, 6, 8, 9, 10] {
        assert!(
            present.contains_key(&id.to_string()),
            "{id} missing: {present:?}"
        );
    }
    assert!(!present.contains_key("3") && !present.contains_key("7"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = committed(&config).await[0];
    assert!(
        c.is_none_or(|o| o <= 2),
        "committed {c:?} past the refused id 3"
    );

    // Recovery: everything lands, the offset reaches the end.
    proxy.failing.store(false, Ordering::SeqCst);
    until_caught_up(&config).await;
    sink.stop().await.unwrap();
    assert_eq!(es::all_docs(&index).await.len(), 10);
    // The items the server took were not sent again.
    for id in [4, 5, 6, 8, 9, 10] {
        assert_eq!(proxy.sent(&id.to_string()), 1, "id {id} was re-sent");
    }
    assert!(proxy.sent("3") >= 3);
    es::delete_indexes(&[&index]).await;
}

// ---------------------------------------------------------------------------------------------
// Reindex with an alias swap
// ---------------------------------------------------------------------------------------------

/// `_aliases` actions against the server.
async fn aliases(actions: Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/_aliases", es_url()))
        .json(&json!({ "actions": actions }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// The indices `alias` points to.
async fn alias_targets(alias: &str) -> Vec<String> {
    let v = es::json(reqwest::Client::new().get(format!("{}/_alias/{alias}", es_url()))).await;
    let mut names: Vec<String> = v
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_reindex_backfills_a_new_index_and_swaps_the_alias() {
    let (topic, alias) = fresh("es_reindex", 2).await;
    let (v1, v2) = (format!("{alias}_v1"), format!("{alias}_v2"));
    reqwest::Client::new()
        .put(format!("{}/{v1}", es_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    aliases(json!([{"add": {"index": v1, "alias": alias}}])).await;
    let rules = orders_rule(&alias, "");
    let config = sink_config(&topic, &es_url(), &rules);
    let doc = |id: i64, status: &str| json!({"id": id, "status": status});
    let first: Vec<ChangeEvent> = (1..=5)
        .map(|id| change("orders", EventType::Insert, seq(id), doc(id, "new"), None))
        .collect();
    produce(&topic, &first).await;
    // The live sink writes through the alias into v1.
    let live = run(&config);
    until_caught_up(&config).await;
    assert_eq!(es::all_docs(&v1).await.len(), 5);
    produce(
        &topic,
        &[
            change("orders", EventType::Update, seq(10), doc(2, "paid"), None),
            change("orders", EventType::Delete, seq(11), doc(5, "new"), None),
        ],
    )
    .await;

    // The new mapping makes `status` a keyword.
    let mapping = mapping_file(r#"{"mappings":{"properties":{"status":{"type":"keyword"}}}}"#);
    let job = Reindex {
        rule: "o".into(),
        to: v2.clone(),
        start_at: StartAt::Earliest,
        create_index: Some(mapping),
        replace_index: false,
    };
    let steps = Mutex::new(Vec::new());
    let report = reindex(&config, &job, CancellationToken::new(), |m| {
        steps.lock().unwrap().push(m.to_owned())
    })
    .await
    .unwrap();
    assert_eq!(report.before, vec![v1.clone()]);
    assert_eq!(alias_targets(&alias).await, vec![v2.clone()]);
    let m = es::json(reqwest::Client::new().get(format!("{}/{v2}/_mapping", es_url()))).await;
    assert_eq!(
        m[&v2]["mappings"]["properties"]["status"]["type"],
        "keyword"
    );
    let mut want: HashMap<String, Value> = HashMap::new();
    for (id, status) in [(1, "new"), (2, "paid"), (3, "new"), (4, "new")] {
        want.insert(id.to_string(), doc(id, status));
    }
    assert_eq!(es::all_docs(&v2).await, want, "steps: {steps:?}");

    // After the swap the live sink writes into the new index through the alias.
    produce(
        &topic,
        &[change(
            "orders",
            EventType::Insert,
            seq(20),
            doc(6, "new"),
            None,
        )],
    )
    .await;
    until_caught_up(&config).await;
    live.stop().await.unwrap();
    assert_eq!(get_doc(&v2, "6").await, Some((seq(20), doc(6, "new"))));
    assert_eq!(get_doc(&v1, "6").await, None);

    // A rule whose index is a concrete index needs --replace-index.
    let job = Reindex {
        to: format!("{alias}_v3"),
        ..job
    };
    let concrete = sink_config(
        &topic,
        &es_url(),
        &rules.replace(&format!("\"{alias}\""), &format!("\"{v1}\"")),
    );
    let err = reindex(&concrete, &job, CancellationToken::new(), |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!("reindex: `{v1}` is an index, not an alias, so it cannot be swapped; add --replace-index to delete it and create the alias `{v1}` → `{alias}_v3` in one atomic request (searches of `{v1}` keep working)")
    );

    // With it, the index is deleted and an alias of its name made in one `_aliases` request
    // (`remove_index` and `add`); the name finds the backfilled documents.
    let v3 = format!("{alias}_v3");
    let job = Reindex {
        replace_index: true,
        ..job
    };
    let report = reindex(&concrete, &job, CancellationToken::new(), |_| {})
        .await
        .unwrap();
    assert_eq!(report.before, vec![v1.clone()]);
    assert_eq!(alias_targets(&v1).await, vec![v3.clone()]);
    want.insert("6".into(), doc(6, "new"));
    assert_eq!(es::all_docs(&v1).await, want);
    // `v1` is an alias now; deleting the indexes removes the aliases with them.
    es::delete_indexes(&[&v2, &v3]).await;
}
