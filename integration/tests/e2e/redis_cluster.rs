//! End-to-end test: the Redis target against a Redis Cluster (issue #4). `scripts/services.sh`
//! runs three masters on 127.0.0.1:6390-6392 (`SLUICE_TEST_REDIS_CLUSTER` points elsewhere).
//! The sink's keys are spread over every master, so one batch's commands belong to many hash
//! slots, and the results are read back through a cluster client.

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use serde_json::{json, Value};
use sluice_event::{ChangeEvent, EventType};
use sluice_integration::process::{run_to_end, sink_binary};
use sluice_integration::sink::{RunningSink, SinkToml};
use sluice_integration::{
    create_topic, kafka_brokers, redis_cluster_urls, redis_exists, unique_name,
};
use sluice_sinks::{Sink, SinkConfig};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Users whose email changes (their keys are invalidated, their copies refreshed).
const UPDATED: std::ops::RangeInclusive<i64> = 1..=24;
/// Users who are deleted (every key of theirs goes).
const DELETED: std::ops::RangeInclusive<i64> = 25..=30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_invalidates_and_refreshes_keys_on_every_master_of_a_cluster() {
    let urls = redis_cluster_urls();
    let mut conn = cluster_conn(&urls).await;
    let p = unique_name("rc");
    let topic = unique_name("sink_rcluster");
    create_topic(&topic, 2).await.unwrap();

    // Cached values the events must remove: the id and both email keys, the old copies.
    let mut stale = Vec::new();
    for id in UPDATED.chain(DELETED) {
        stale.extend(touched_keys(&p, id));
        stale.push(format!("{p}:copy:{id}"));
        stale.push(format!("{p}:h:{id}"));
    }
    for key in &stale {
        let () = redis::cmd("SET")
            .arg(key)
            .arg("cached")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // The precondition that makes this a cluster test: the keys live on all three masters.
    let placement = masters_of(&mut conn, &stale).await;
    let masters: BTreeSet<&String> = placement.values().collect();
    assert!(
        masters.len() >= 3,
        "the test keys should be spread over three masters, they are on {masters:?}"
    );

    let mut events: Vec<ChangeEvent> = Vec::new();
    let mut seq = 100;
    for id in UPDATED {
        seq += 1;
        events.push(user(
            EventType::Update,
            seq,
            json!({"id": id, "email": format!("new{id}@x")}),
            Some(json!({"email": format!("old{id}@x")})),
        ));
    }
    for id in DELETED {
        seq += 1;
        events.push(user(
            EventType::Delete,
            seq,
            json!({"id": id, "email": format!("old{id}@x")}),
            None,
        ));
    }
    sluice_integration::events::produce(&kafka_brokers(), &topic, &events)
        .await
        .unwrap();

    let (text, config) = sink_config(&topic, &p, &urls);
    // `sluice-sink check` connects to the cluster and pings it.
    let file = sluice_integration::write_temp_file("rcluster", "sink.toml", &text);
    let out = run_to_end(
        &sink_binary(),
        ["check".as_ref(), "--config".as_ref(), file.as_os_str()],
        &[],
        60,
    )
    .await;
    assert!(
        out.success() && out.stdout.contains("target cache (redis): ok"),
        "sluice-sink check: {}",
        out.text()
    );
    let mut sink = RunningSink::start(Sink::new(config));

    // Poll until Redis holds exactly the expected state (or report what differs).
    sink.until(
        90,
        "Redis Cluster to hold what the events lead to",
        async || {
            let diff = differences(&mut conn, &p).await;
            if diff.is_empty() {
                return Ok(());
            }
            Err(format!(
                "it still differs in {} keys, e.g. {:?}",
                diff.len(),
                &diff[..diff.len().min(5)]
            ))
        },
    )
    .await;
    sink.stop().await.unwrap();

    for id in UPDATED {
        for key in [format!("{p}:copy:{id}"), format!("{p}:h:{id}")] {
            let _: redis::RedisResult<i64> =
                redis::cmd("DEL").arg(key).query_async(&mut conn).await;
        }
    }
}

/// The keys the invalidation rule deletes for user `id`: the id key and its email keys (the
/// old and new email of an updated user, the last email of a deleted one).
fn touched_keys(p: &str, id: i64) -> Vec<String> {
    let mut keys = vec![format!("{p}:user:{id}"), format!("{p}:email:old{id}@x")];
    if UPDATED.contains(&id) {
        keys.push(format!("{p}:email:new{id}@x"));
    }
    keys
}

fn user(kind: EventType, seq: i64, data: Value, old: Option<Value>) -> ChangeEvent {
    sluice_integration::events::row_event("shop", "users", kind, seq, data, old)
}

async fn cluster_conn(urls: &[String]) -> ClusterConnection {
    ClusterClient::new(urls.to_vec())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot connect to the Redis Cluster {urls:?} ({e}); \
                 start it with `scripts/services.sh up` or set SLUICE_TEST_REDIS_CLUSTER"
            )
        })
}

/// Three rules on one cluster target: invalidate the id and email keys, refresh a JSON copy
/// (with a TTL) and a hash copy.
fn sink_config(topic: &str, p: &str, urls: &[String]) -> (String, SinkConfig) {
    let cluster: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    let group = unique_name("g_rcluster");
    let head = SinkToml {
        session_timeout_ms: 15_000,
        commit_interval_ms: 500,
        linger_ms: 50,
        max_items: 500,
        initial_backoff_ms: 50,
        max_backoff_ms: 1000,
        ..SinkToml::new(topic, &group)
    };
    let text = format!(
        r#"{head}[targets.cache]
type = "redis"
cluster = [{cluster}]
[[rules]]
name = "invalidate"
target = "cache"
match = {{ tables = ["shop.users"] }}
[rules.redis]
keys = ["{p}:user:{{id}}", "{p}:email:{{email}}"]
[[rules]]
name = "json-copy"
target = "cache"
match = {{ tables = ["shop.users"] }}
[rules.redis]
keys = ["{p}:copy:{{id}}"]
mode = "refresh"
ttl_secs = 600
[[rules]]
name = "hash-copy"
target = "cache"
match = {{ tables = ["shop.users"] }}
[rules.redis]
keys = ["{p}:h:{{id}}"]
mode = "refresh"
format = "hash"
"#,
        head = head.text(),
        cluster = cluster.join(", "),
    );
    let config = sluice_integration::sink::parse(&text, &[]);
    (text, config)
}

/// Every key whose value differs from what the events lead to, with what it holds.
async fn differences(conn: &mut ClusterConnection, p: &str) -> Vec<String> {
    let mut out = Vec::new();
    for id in UPDATED.chain(DELETED) {
        for key in touched_keys(p, id) {
            if redis_exists(conn, &key).await {
                out.push(format!("{key} still cached"));
            }
        }
    }
    for id in DELETED {
        for key in [format!("{p}:copy:{id}"), format!("{p}:h:{id}")] {
            if redis_exists(conn, &key).await {
                out.push(format!("{key} of a deleted user still cached"));
            }
        }
    }
    for id in UPDATED {
        let want = json!({"id": id, "email": format!("new{id}@x")});
        let key = format!("{p}:copy:{id}");
        let got: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(conn)
            .await
            .unwrap_or(None);
        let parsed = got
            .as_deref()
            .and_then(|s| serde_json::from_str::<Value>(s).ok());
        if parsed.as_ref() != Some(&want) {
            out.push(format!("{key} = {got:?}, want {want}"));
        } else {
            let ttl: i64 = redis::cmd("TTL").arg(&key).query_async(conn).await.unwrap();
            if !(1..=600).contains(&ttl) {
                out.push(format!("{key} has TTL {ttl}, want 1..=600"));
            }
        }
        let key = format!("{p}:h:{id}");
        let hash: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(conn)
            .await
            .unwrap_or_default();
        let want: HashMap<String, String> = [
            ("id".to_owned(), id.to_string()),
            ("email".to_owned(), format!("new{id}@x")),
        ]
        .into();
        if hash != want {
            out.push(format!("{key} = {hash:?}, want {want:?}"));
        }
    }
    out
}

/// The master (`host:port`) that serves each key, from `CLUSTER KEYSLOT` and `CLUSTER NODES`.
async fn masters_of(conn: &mut ClusterConnection, keys: &[String]) -> BTreeMap<String, String> {
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(conn)
        .await
        .unwrap();
    // `<id> <host:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot ranges...>`
    let mut ranges: Vec<(u16, u16, String)> = Vec::new();
    for line in nodes.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 9 || !f[2].contains("master") {
            continue;
        }
        let addr = f[1].split('@').next().unwrap_or(f[1]).to_owned();
        for r in &f[8..] {
            let (lo, hi) = r.split_once('-').unwrap_or((r, r));
            if let (Ok(lo), Ok(hi)) = (lo.parse(), hi.parse()) {
                ranges.push((lo, hi, addr.clone()));
            }
        }
    }
    let mut out = BTreeMap::new();
    for key in keys {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(conn)
            .await
            .unwrap();
        let master = ranges
            .iter()
            .find(|(lo, hi, _)| (*lo..=*hi).contains(&slot))
            .map(|(_, _, a)| a.clone())
            .unwrap_or_else(|| panic!("slot {slot} of {key} has no master in:\n{nodes}"));
        out.insert(key.clone(), master);
    }
    out
}
