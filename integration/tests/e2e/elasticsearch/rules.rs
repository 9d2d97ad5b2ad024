//! Several tables and rules into one index: sharded tables with `where` and JSONPath, and upsert
//! mode, where rules merge into one document and delete only their own fields.

use super::{change, fresh, produce, rule, run_until_caught_up, seq, sink_config};
use serde_json::json;
use sluice_event::EventType;
use sluice_integration::sink::apply_start_at;
use sluice_integration::{es, es_url};
use sluice_sinks::offsets::StartAt;
use std::collections::HashMap;

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
