//! What the chaos run proves: per-key order in the targets throughout (samples), and at the end
//! the replica and the index equal to the source, stale cache keys gone, no dead letters.

use super::{Done, Rig};
use mysql_async::prelude::Queryable;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// One target row as sampled: the workload's counter `v` and the target's version (the replica's
/// `seq_v`, the document's `_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub v: i64,
    pub version: i64,
}

/// Samples the replica and the index; a version or `v` that goes back, or a key that comes back
/// after it was gone (ids are never reused), is a per-key order violation.
pub struct Sampler {
    http: reqwest::Client,
    replica: BTreeMap<i64, Sample>,
    index: BTreeMap<i64, Sample>,
    replica_gone: BTreeSet<i64>,
    index_gone: BTreeSet<i64>,
    pub samples: usize,
}

impl Sampler {
    pub async fn new(_rig: &Rig) -> Result<Sampler, String> {
        Ok(Sampler {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .map_err(|e| e.to_string())?,
            replica: BTreeMap::new(),
            index: BTreeMap::new(),
            replica_gone: BTreeSet::new(),
            index_gone: BTreeSet::new(),
            samples: 0,
        })
    }

    /// Takes one sample of each target that answers (a target that is down is skipped).
    pub async fn sample(&mut self, rig: &Rig) -> Result<(), String> {
        if let Some(rows) = replica_rows(rig).await {
            compare("replica", &mut self.replica, &mut self.replica_gone, rows)?;
            self.samples += 1;
        }
        if let Some(docs) = index_docs(&self.http, rig, false).await {
            compare("index", &mut self.index, &mut self.index_gone, docs)?;
            self.samples += 1;
        }
        Ok(())
    }
}

fn compare(
    what: &str,
    seen: &mut BTreeMap<i64, Sample>,
    gone: &mut BTreeSet<i64>,
    now: BTreeMap<i64, Sample>,
) -> Result<(), String> {
    for (id, s) in &now {
        if gone.contains(id) {
            return Err(format!(
                "{what}: key {id} came back after it was gone (now {s:?})"
            ));
        }
        if let Some(before) = seen.get(id) {
            if s.version < before.version || s.v < before.v {
                return Err(format!(
                    "{what}: key {id} went back from {before:?} to {s:?}"
                ));
            }
        }
    }
    for id in seen.keys() {
        if !now.contains_key(id) {
            gone.insert(*id);
        }
    }
    *seen = now;
    Ok(())
}

/// `id → (v, seq_v)` of the replica table, `None` if the replica does not answer.
async fn replica_rows(rig: &Rig) -> Option<BTreeMap<i64, Sample>> {
    let mut c = tokio::time::timeout(Duration::from_secs(2), rig.replica.root())
        .await
        .ok()?
        .ok()?;
    let rows: Vec<(i64, i64, Option<i64>)> =
        c.query("SELECT id, v, seq_v FROM rep.t").await.ok()?;
    let _ = c.disconnect().await;
    Some(
        rows.into_iter()
            .map(|(id, v, seq)| {
                (
                    id,
                    Sample {
                        v,
                        version: seq.unwrap_or(0),
                    },
                )
            })
            .collect(),
    )
}

/// `id → (v, _version)` of the index by ascending id: the first 10,000 documents, or with
/// `all` every one (pages of 10,000 after the last id); `None` if OpenSearch does not answer or
/// the index does not exist yet.
async fn index_docs(http: &reqwest::Client, rig: &Rig, all: bool) -> Option<BTreeMap<i64, Sample>> {
    let es = crate::es_url();
    let es = es.trim_end_matches('/');
    let mut out = BTreeMap::new();
    let mut after: Option<i64> = None;
    loop {
        let mut query = serde_json::json!({
            "size": 10000, "version": true, "query": {"match_all": {}}, "sort": [{"id": "asc"}]
        });
        if let Some(last) = after {
            query["search_after"] = serde_json::json!([last]);
        }
        let body: serde_json::Value = http
            .post(format!("{es}/{}/_search", rig.index))
            .json(&query)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let hits = body["hits"]["hits"].as_array()?;
        for h in hits {
            let (Some(id), Some(v), Some(version)) = (
                h["_id"].as_str().and_then(|s| s.parse::<i64>().ok()),
                h["_source"]["v"].as_i64(),
                h["_version"].as_i64(),
            ) else {
                continue;
            };
            out.insert(id, Sample { v, version });
        }
        if !all || hits.len() < 10000 {
            return Some(out);
        }
        after = hits.last().and_then(|h| h["sort"][0].as_i64());
        after?;
    }
}

/// Waits until the replica and the index equal the source and every changed row's stale cache
/// key is gone, sampling order all the while; returns the source's row count.
pub async fn converge(
    rig: &Rig,
    done: &Done,
    within: Duration,
    sampler: &mut Sampler,
) -> Result<usize, String> {
    let deadline = Instant::now() + within;
    let es = crate::es_url();
    let es = es.trim_end_matches('/').to_owned();
    loop {
        sampler.sample(rig).await?;
        let source = source_rows(&rig.db).await?;
        let _ = sampler
            .http
            .post(format!("{es}/{}/_refresh", rig.index))
            .send()
            .await;
        let replica = replica_rows(rig).await.unwrap_or_default();
        let index = index_docs(&sampler.http, rig, true)
            .await
            .unwrap_or_default();
        let replica_v: BTreeMap<i64, i64> = replica.iter().map(|(k, s)| (*k, s.v)).collect();
        let index_v: BTreeMap<i64, i64> = index.iter().map(|(k, s)| (*k, s.v)).collect();
        let stale = stale_keys(rig, done).await;
        let replica_ok = replica_v == source;
        let index_ok = index_v == source;
        if replica_ok && index_ok && stale == Some(0) {
            return Ok(source.len());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "not converged within {} s: replica {} ({} rows, {} differ), index {} ({} docs, {} differ), stale cache keys {:?}, source {} rows",
                within.as_secs(),
                if replica_ok { "equal" } else { "DIFFERENT" },
                replica_v.len(),
                differing(&replica_v, &source),
                if index_ok { "equal" } else { "DIFFERENT" },
                index_v.len(),
                differing(&index_v, &source),
                stale,
                source.len()
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn differing(a: &BTreeMap<i64, i64>, b: &BTreeMap<i64, i64>) -> usize {
    let keys: BTreeSet<&i64> = a.keys().chain(b.keys()).collect();
    keys.into_iter().filter(|k| a.get(k) != b.get(k)).count()
}

/// `id → v` of the source table.
async fn source_rows(db: &str) -> Result<BTreeMap<i64, i64>, String> {
    let mut c = mysql_async::Conn::from_url(crate::mysql_url())
        .await
        .map_err(|e| e.to_string())?;
    let rows: Vec<(i64, i64)> = c
        .query(format!("SELECT id, v FROM `{db}`.t"))
        .await
        .map_err(|e| e.to_string())?;
    let _ = c.disconnect().await;
    Ok(rows.into_iter().collect())
}

/// How many of the changed rows' cache keys still exist (`None` if Redis does not answer).
async fn stale_keys(rig: &Rig, done: &Done) -> Option<usize> {
    let client = redis::Client::open(rig.redis.url()).ok()?;
    let mut c = client.get_multiplexed_async_connection().await.ok()?;
    let ids: Vec<i64> = done.changed.iter().copied().collect();
    let mut left = 0;
    for chunk in ids.chunks(500) {
        let keys: Vec<String> = chunk.iter().map(|id| format!("t:{id}")).collect();
        let n: usize = redis::cmd("EXISTS")
            .arg(&keys)
            .query_async(&mut c)
            .await
            .ok()?;
        left += n;
    }
    Some(left)
}

/// Messages in the sink's dead-letter topic (0 if it does not exist).
pub async fn dead_letters(rig: &Rig) -> Result<usize, String> {
    let brokers = rig.broker.brokers();
    let topic = format!("{}.dlq", rig.topic);
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", crate::unique_name("chaos_dlq"))
            .create()
            .map_err(|e| e.to_string())?;
        let md = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let mut n = 0;
        for t in md.topics().iter().filter(|t| t.error().is_none()) {
            for p in t.partitions() {
                let (low, high) = consumer
                    .fetch_watermarks(&topic, p.id(), Duration::from_secs(10))
                    .map_err(|e| e.to_string())?;
                n += (high - low).max(0) as usize;
            }
        }
        Ok(n)
    })
    .await
    .map_err(|e| e.to_string())?
}
