//! The replica: the topic applied in partition order to a table, and compared with the source.

use super::{conn, Done};
use mysql_async::prelude::Queryable;
use serde_json::Value;
use sluice_event::{ChangeEvent, EventType, Source};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The replica: applies each partition's events in order (upsert by key, delete by key), then
/// writes the result into `db.r`. Checks on the way that `seq` increases along each partition
/// and that an event read again after a crash has the `seq` it had the first time.
pub(super) async fn apply(db: &str, partitions: &[Vec<ChangeEvent>]) -> BTreeMap<i64, Value> {
    let mut rows: BTreeMap<i64, Value> = BTreeMap::new();
    for events in partitions {
        let mut last = i64::MIN;
        let mut seen: HashMap<i64, &ChangeEvent> = HashMap::new();
        for ev in events {
            match seen.get(&ev.seq) {
                Some(first) => assert!(
                    first.kind == ev.kind && first.data == ev.data && first.source == ev.source,
                    "seq {} names two different events:\n{first:?}\n{ev:?}",
                    ev.seq
                ),
                None => {
                    assert!(
                        ev.seq > last,
                        "seq {} after {last} in one partition",
                        ev.seq
                    );
                    last = ev.seq;
                    seen.insert(ev.seq, ev);
                }
            }
            let id = ev.data["id"].as_i64().unwrap();
            match ev.kind {
                EventType::Insert | EventType::Update => {
                    rows.insert(id, Value::Object(ev.data.clone()));
                }
                EventType::Delete => {
                    rows.remove(&id);
                }
                EventType::Ddl => {}
            }
        }
    }
    let mut c = conn().await;
    let all: Vec<&Value> = rows.values().collect();
    for batch in all.chunks(1_000) {
        let values: Vec<String> = batch
            .iter()
            .map(|r| {
                format!(
                    "({}, {}, {}, {}, {})",
                    r["id"],
                    r["grp"],
                    sql_string(&r["name"]),
                    sql_string(&r["amount"]),
                    sql_string(&r["updated"])
                )
            })
            .collect();
        c.query_drop(format!("INSERT INTO {db}.r VALUES {}", values.join(",")))
            .await
            .unwrap();
    }
    rows
}

fn sql_string(v: &Value) -> String {
    format!("'{}'", v.as_str().unwrap().replace('\'', "''"))
}

/// Row texts of `db.table` by id, for a readable diff.
pub(super) async fn table_rows(db: &str, table: &str) -> BTreeMap<i64, String> {
    let mut c = conn().await;
    let rows: Vec<(i64, String)> = c
        .query(format!(
            "SELECT id, CONCAT_WS('|', grp, name, amount, DATE_FORMAT(updated, '%Y-%m-%d %H:%i:%s.%f')) FROM {db}.{table} ORDER BY id"
        ))
        .await
        .unwrap();
    rows.into_iter().collect()
}

pub(super) async fn checksum(db: &str, table: &str) -> (u64, u64) {
    let mut c = conn().await;
    c.query_first(format!(
        "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', id, grp, name, amount, updated))), 0) FROM {db}.{table}"
    ))
    .await
    .unwrap()
    .unwrap()
}

/// Source and replica are equal, and no deleted key exists in the replica.
pub(super) async fn assert_converged(db: &str, done: &Done, partitions: &[Vec<ChangeEvent>]) {
    let source = table_rows(db, "t").await;
    let replica = table_rows(db, "r").await;
    let missing: Vec<_> = source
        .keys()
        .filter(|k| !replica.contains_key(k))
        .take(5)
        .collect();
    let extra: Vec<_> = replica
        .keys()
        .filter(|k| !source.contains_key(k))
        .take(5)
        .collect();
    let differ: Vec<_> = source
        .iter()
        .filter(|(k, v)| replica.get(k).is_some_and(|r| r != *v))
        .take(5)
        .collect();
    let keys: HashSet<i64> = missing
        .iter()
        .chain(extra.iter())
        .map(|k| **k)
        .chain(differ.iter().map(|(k, _)| **k))
        .collect();
    let history: Vec<String> = partitions
        .iter()
        .flatten()
        .filter(|e| e.data["id"].as_i64().is_some_and(|id| keys.contains(&id)))
        .map(|e| {
            format!(
                "{:?} {:?} seq={} pos={:?} {:?}",
                e.source, e.kind, e.seq, e.pos, e.data
            )
        })
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "replica differs: missing {missing:?}, extra {extra:?}, different {differ:?}; events of those keys:\n{}",
        history.join("\n")
    );
    assert_eq!(checksum(db, "t").await, checksum(db, "r").await);
    let resurrected: Vec<_> = done
        .deleted
        .iter()
        .filter(|id| replica.contains_key(id) && !source.contains_key(id))
        .collect();
    assert!(
        resurrected.is_empty(),
        "deleted rows in the replica: {resurrected:?}"
    );
}

pub(super) fn snapshot_events(partitions: &[Vec<ChangeEvent>]) -> Vec<&ChangeEvent> {
    partitions
        .iter()
        .flatten()
        .filter(|e| e.source == Source::Snapshot)
        .collect()
}
