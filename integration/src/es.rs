//! Reading what the Elasticsearch/OpenSearch test server ([`crate::es_url`]) holds.

use serde_json::{json, Value};
use std::collections::HashMap;

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

/// Every document of `index` (refreshed first), id → `_source`; empty if there is no such index.
pub async fn all_docs(index: &str) -> HashMap<String, Value> {
    let http = reqwest::Client::new();
    http.post(format!("{}/{index}/_refresh", crate::es_url()))
        .send()
        .await
        .expect("refresh");
    let answer = http
        .post(format!("{}/{index}/_search", crate::es_url()))
        .json(&json!({"size": 1000, "query": {"match_all": {}}}))
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
