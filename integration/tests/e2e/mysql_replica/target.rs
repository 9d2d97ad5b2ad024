//! The MySQL replica target fed items directly: versioned writes, soft deletes, key changes,
//! per-row outcomes, and concurrent batches that deadlock.

use super::{config_text, conn, event, now_ms, parse_config};
use mysql_async::prelude::Queryable;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sluice_event::EventType;
use sluice_integration::{mysql, unique_name};
use sluice_sinks::targets::{Item, Outcome, Target, Write};
use std::collections::BTreeMap;
use std::time::Duration;

/// The target alone, fed items directly: versioned writes, soft deletes, key changes, and one
/// bad row among good ones, with the outcome of each.
#[tokio::test]
async fn mysql_replica_versions_soft_deletes_and_per_row_outcomes() {
    let db = unique_name("mysql_v");
    let mut c = conn().await;
    let u = "u (id INT PRIMARY KEY, email VARCHAR(20) NOT NULL, n TINYINT, deleted_at DATETIME(3) NULL, version BIGINT NULL)";
    mysql::create_database(&mut c, &db, &[u]).await;
    let text = users_config_text(
        &db,
        "soft_delete = 'deleted_at'\nversion_column = 'version'",
    );
    let (rules, target) = replica_target(&text).await;
    let target = target.unwrap();
    target.check().await.unwrap();
    // Items of `shop.users` changes (kind, seq after the base, row, old values).
    let seq = 1_763_716_502_000i64 << 20;
    let items = |changes: &[(EventType, i64, Value, Option<Value>)]| -> Vec<Item> {
        let row = |v: &Value| v.as_object().unwrap().clone();
        changes
            .iter()
            .map(|(kind, n, data, old)| {
                let e = event(
                    "shop",
                    "users",
                    *kind,
                    seq + n,
                    row(data),
                    old.as_ref().map(row),
                );
                Item {
                    rule: 0,
                    mapped: rules.rule(0).apply(&e).unwrap().unwrap(),
                    bytes: 100,
                }
            })
            .collect()
    };
    use serde_json::json;
    use EventType::{Delete, Insert, Update};
    let batch = items(&[
        (Insert, 1, json!({"id": 1, "email": "a@x", "n": 1}), None),
        (Insert, 2, json!({"id": 2, "email": "b@x", "n": 300}), None),
        (Insert, 3, json!({"id": 3, "email": "c@x", "n": 3}), None),
        (
            Update,
            4,
            json!({"id": 4, "email": "c@x", "n": 3}),
            Some(json!({"id": 3})),
        ),
        (Insert, 5, json!({"id": 5, "email": null, "n": 5}), None),
        (Delete, 6, json!({"id": 1, "email": "a@x", "n": 1}), None),
    ]);
    let outcomes = target.write(&batch).await;
    assert_eq!(outcomes[0], Outcome::Done);
    assert!(
        matches!(&outcomes[1], Outcome::Reject(r) if r.contains("error 1264") && r.contains("'n'")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2], Outcome::Done);
    assert_eq!(outcomes[3], Outcome::Done);
    assert!(
        matches!(&outcomes[4], Outcome::Reject(r) if r.contains("error 1048") && r.contains("'email'")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[5], Outcome::Done);
    // 1 soft-deleted, 2 and 5 rejected, 3 moved to 4 (its old key soft-deleted).
    let want = vec![
        (1, "a@x".into(), Some(1), true, Some(seq + 6)),
        (3, "c@x".into(), Some(3), true, Some(seq + 4)),
        (4, "c@x".into(), Some(3), false, Some(seq + 4)),
    ];
    assert_eq!(versioned(&mut c, &db).await, want);
    // An older replay changes nothing; a newer write revives the soft-deleted row.
    let replay = items(&[
        (Insert, 1, json!({"id": 1, "email": "old@x", "n": 1}), None),
        (
            Update,
            2,
            json!({"id": 4, "email": "old@x", "n": 0}),
            Some(json!({"n": 3})),
        ),
        (Delete, 3, json!({"id": 4, "email": "c@x", "n": 3}), None),
    ]);
    assert_eq!(target.write(&replay).await, vec![Outcome::Done; 3]);
    assert_eq!(versioned(&mut c, &db).await, want);
    let newer = items(&[(Insert, 7, json!({"id": 1, "email": "new@x", "n": 7}), None)]);
    assert_eq!(target.write(&newer).await, vec![Outcome::Done]);
    assert_eq!(
        versioned(&mut c, &db).await[0],
        (1, "new@x".into(), Some(7), false, Some(seq + 7))
    );

    // A missing replica table is an error at start-up, with the fix.
    let missing = text.replace("table = 'u'", "table = 'nope'");
    let err = replica_target(&missing).await.1.err().unwrap();
    assert!(
        err.contains(&format!(
            "rules[0].mysql.table: replica table `{db}`.`nope` does not exist"
        )),
        "{err}"
    );
    c.query_drop(format!("DROP DATABASE {db}")).await.unwrap();
}

/// A config whose rule `t` writes `shop.users` into table `u` of the replica database `db`;
/// `mysql` is more of its `[rules.mysql]`.
fn users_config_text(db: &str, mysql: &str) -> String {
    let rule = format!("[rules.mysql]\ntable = 'u'\n{mysql}");
    config_text("unused", "unused", "shop", db, &rule).replace("\"shop.t\"", "\"shop.users\"")
}

/// The rules of config `text` and its target `replica`, connected (or why not).
async fn replica_target(text: &str) -> (sluice_rules::RuleSet, Result<Target, String>) {
    let config = parse_config(text);
    let mut problems = sluice_config::Problems::default();
    let rules = sluice_rules::RuleSet::compile(&config.rules, &mut problems);
    let target = Target::connect("replica", &config.targets["replica"], &rules)
        .await
        .map_err(|e| e.to_string());
    (rules, target)
}

type Versioned = (i64, String, Option<i64>, bool, Option<i64>);

async fn versioned(c: &mut mysql_async::Conn, db: &str) -> Vec<Versioned> {
    let sql =
        format!("SELECT id, email, n, deleted_at IS NOT NULL, version FROM {db}.u ORDER BY id");
    c.query(sql).await.unwrap()
}

/// Eight writers (as eight partitions would) apply random batches of disjoint keys to one table
/// at once; MariaDB answers some with deadlocks (1213). Retrying as the runtime does (from the
/// first item that is not done), every key ends at its last event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_replica_concurrent_batches_survive_deadlocks() {
    use serde_json::json;
    let db = unique_name("mysql_dl");
    let mut c = conn().await;
    let u = "u (id BIGINT PRIMARY KEY, n INT NOT NULL, version BIGINT NULL)";
    mysql::create_database(&mut c, &db, &[u]).await;
    let text = users_config_text(&db, "version_column = 'version'");
    let (rules, target) = replica_target(&text).await;
    let (rules, target) = (
        std::sync::Arc::new(rules),
        std::sync::Arc::new(target.unwrap()),
    );
    let seq = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(now_ms() << 20));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8i64 {
        let (target, rules, seq) = (target.clone(), rules.clone(), seq.clone());
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(w as u64);
            let mut expected: BTreeMap<i64, i64> = BTreeMap::new();
            let mut retries = 0;
            for _ in 0..40 {
                let mut items = Vec::new();
                for _ in 0..200 {
                    let id = rng.random_range(0..300) * 8 + w;
                    let s = seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let n: i64 = rng.random_range(0..1_000_000);
                    let (kind, data) = match expected.get(&id) {
                        Some(&old) if rng.random_ratio(3, 10) => {
                            expected.remove(&id);
                            (EventType::Delete, json!({"id": id, "n": old}))
                        }
                        Some(_) => {
                            expected.insert(id, n);
                            (EventType::Update, json!({"id": id, "n": n}))
                        }
                        None => {
                            expected.insert(id, n);
                            (EventType::Insert, json!({"id": id, "n": n}))
                        }
                    };
                    let e = event(
                        "shop",
                        "users",
                        kind,
                        s,
                        data.as_object().unwrap().clone(),
                        None,
                    );
                    let mapped = rules.rule(0).apply(&e).unwrap().unwrap();
                    items.push(Item {
                        rule: 0,
                        mapped,
                        bytes: 50,
                    });
                }
                let mut from = 0;
                while from < items.len() {
                    let outcomes = target.write(&items[from..]).await;
                    assert_eq!(outcomes.len(), items.len() - from);
                    match outcomes.iter().position(|o| *o != Outcome::Done) {
                        None => from = items.len(),
                        Some(i) => {
                            assert!(
                                matches!(outcomes[i], Outcome::Retry(_)),
                                "{:?}",
                                outcomes[i]
                            );
                            from += i;
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            }
            (expected, retries)
        });
    }
    let mut expected = BTreeMap::new();
    let mut retries = 0;
    while let Some(r) = tasks.join_next().await {
        let (e, n) = r.unwrap();
        expected.extend(e);
        retries += n;
    }
    let got: Vec<(i64, i64)> = c
        .query(format!("SELECT id, n FROM {db}.u ORDER BY id"))
        .await
        .unwrap();
    let got: BTreeMap<i64, i64> = got.into_iter().collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "rows (after {retries} retried writes)"
    );
    assert_eq!(got, expected, "after {retries} retried writes");
    eprintln!("{} rows equal after {retries} retried writes", got.len());
    c.query_drop(format!("DROP DATABASE {db}")).await.unwrap();
}
