//! Documents as the target writes them: every column type with conversions, versions that never
//! go back (out of order, replayed), and a mapping conflict dead-lettered with the server's reason.

use super::{
    change, committed, fresh, get_doc, mapping_file, orders_rule, produce, read_topic, rule,
    run_until_caught_up, seq, sink_config,
};
use serde_json::{json, Value};
use sluice_event::EventType;
use sluice_integration::sink::apply_start_at;
use sluice_integration::{es, es_url};
use sluice_sinks::offsets::StartAt;
use sluice_sinks::runtime::HEADER_ERROR;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

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
