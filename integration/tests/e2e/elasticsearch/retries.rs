//! Item-level 429 answers through a fault-injecting proxy: only those items are retried and the
//! committed offset waits for them.

use super::{
    change, committed, fresh, orders_rule, produce, run, seq, sink_config, until_caught_up,
};
use serde_json::{json, Value};
use sluice_event::{ChangeEvent, EventType};
use sluice_integration::http_proxy::{self, HttpProxy, Request, Response, Upstream};
use sluice_integration::{es, es_url, wait};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
