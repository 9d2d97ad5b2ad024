//! `sluice-sink reindex`: a new index backfilled from Kafka, then the alias swapped to it.

use super::{
    change, fresh, get_doc, mapping_file, orders_rule, produce, run, seq, sink_config,
    until_caught_up,
};
use serde_json::{json, Value};
use sluice_event::{ChangeEvent, EventType};
use sluice_integration::{es, es_url};
use sluice_sinks::offsets::StartAt;
use sluice_sinks::targets::elasticsearch::{reindex, Reindex};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

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
