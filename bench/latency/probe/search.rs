//! The search probe: polls OpenSearch's `_count`, then `_search`es the documents not yet seen.

use super::{announce, PollStats, Ready, SEARCH};
use crate::marks::Shared;
use crate::opensearch::{es_client, es_json};
use anyhow::Context as _;
use elasticsearch::{CountParts, SearchParts};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Polls `_count` of the documents above every write seen so far and, when there are more than
/// seen, fetches them with `_search` (sorted by `wseq`, pages of 10,000).
pub async fn watch(
    shared: &Shared,
    url: &str,
    index: &str,
    poll: Duration,
    ready: &Ready,
) -> anyhow::Result<PollStats> {
    let es = announce(ready, es_client(url))?;
    let marks = &shared.probes[SEARCH];
    let mut stats = PollStats::default();
    let (mut low, mut seen) = (0u64, 0u64);
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !shared.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let sent = Instant::now();
        let count = es_json(
            es.count(CountParts::Index(&[index]))
                .body(json!({"query": {"range": {"wseq": {"gt": low}}}}))
                .send()
                .await,
        )
        .await?;
        let count = count["count"].as_u64().context("no count in _count")?;
        // Every write up to `low` has been seen, so `seen - low` of the documents counted are too.
        if count > seen - low {
            let mut after = low;
            loop {
                let page = es_json(
                    es.search(SearchParts::Index(&[index]))
                        .body(json!({
                            "query": {"range": {"wseq": {"gt": after}}},
                            "sort": [{"wseq": "asc"}],
                            "size": 10000,
                            // wseq comes back as the sort value: no stored field (not even
                            // _id) is read, which kept a search thread busy decompressing.
                            "stored_fields": "_none_",
                            "track_total_hits": false
                        }))
                        .send()
                        .await,
                )
                .await?;
                let t = shared.now();
                let hits = page["hits"]["hits"].as_array().cloned().unwrap_or_default();
                for h in &hits {
                    if let Some(w) = h["sort"][0].as_u64() {
                        seen += u64::from(marks.set_once(w, t));
                        after = w;
                    }
                }
                if hits.len() < 10000 {
                    break;
                }
            }
            while low < shared.plan.total && marks.get(low + 1).is_some() {
                low += 1;
            }
        }
        stats.add(sent.elapsed());
    }
    Ok(stats)
}
