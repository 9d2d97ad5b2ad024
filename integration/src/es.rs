//! The OpenSearch test node ([`crate::es_url`]): what it holds, and keeping it tidy.

use serde_json::{json, Value};
use std::collections::HashMap;
use tokio::sync::OnceCell;

/// The index template [`single_node_indexes`] puts on the node.
const TEMPLATE: &str = "sluice-tests";

/// Sends `request` and parses the answer's body as JSON (whatever the status).
pub async fn json(request: reqwest::RequestBuilder) -> Value {
    request
        .send()
        .await
        .expect("send a request to the search server")
        .json()
        .await
        .expect("a JSON answer")
}

/// Gives every index named `es_*` (what the Elasticsearch tests' unique names start with) no
/// replica, including those the sink creates by writing to them. The test node is a single node,
/// which never assigns a replica: an index with one stays yellow forever, and its unassigned
/// replica still counts against `cluster.max_shards_per_node` (1,000), which indexes left behind
/// by failed runs would otherwise reach twice as fast. Runs once per test process.
pub async fn single_node_indexes() {
    static DONE: OnceCell<()> = OnceCell::const_new();
    DONE.get_or_init(|| async {
        let body = json!({
            "index_patterns": ["es_*"],
            "template": {"settings": {"number_of_replicas": 0}},
            "_meta": {"description": "Sluice's end-to-end tests (integration/src/es.rs)"}
        });
        let r = reqwest::Client::new()
            .put(format!("{}/_index_template/{TEMPLATE}", crate::es_url()))
            .json(&body)
            .send()
            .await
            .expect("send the index template to the search server");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "PUT _index_template/{TEMPLATE}: HTTP {status}: {text}"
        );
    })
    .await;
}

/// Deletes `indexes` (missing ones are fine): a test that passed leaves nothing on the node,
/// which keeps its data across runs. A failed test keeps its indexes for a look.
pub async fn delete_indexes(indexes: &[&str]) {
    if indexes.is_empty() {
        return;
    }
    let r = reqwest::Client::new()
        .delete(format!(
            "{}/{}?ignore_unavailable=true",
            crate::es_url(),
            indexes.join(",")
        ))
        .send()
        .await
        .expect("send DELETE to the search server");
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "DELETE {indexes:?}: HTTP {status}: {text}"
    );
}

/// Every document of `index` (refreshed first), id → `_source`; empty if there is no such index.
pub async fn all_docs(index: &str) -> HashMap<String, Value> {
    search(index, json!({"match_all": {}})).await
}

/// The documents of `index` (refreshed first) that match `query`, id → `_source`; empty if there
/// is no such index.
pub async fn search(index: &str, query: Value) -> HashMap<String, Value> {
    let http = reqwest::Client::new();
    http.post(format!("{}/{index}/_refresh", crate::es_url()))
        .send()
        .await
        .expect("refresh");
    let answer = http
        .post(format!("{}/{index}/_search", crate::es_url()))
        .json(&json!({"size": 1000, "query": query}))
        .send()
        .await
        .expect("search");
    if !answer.status().is_success() {
        return HashMap::new();
    }
    let found: Value = answer.json().await.expect("a JSON answer");
    found["hits"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|h| {
            (
                h["_id"].as_str().expect("a string _id").to_owned(),
                h["_source"].clone(),
            )
        })
        .collect()
}
