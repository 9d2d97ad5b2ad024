//! End-to-end tests: the MySQL replica target, MariaDB as source and replica (two databases).
//!
//! The tests play the capture: they change the source table, read the changed rows back in the
//! event's JSON form (docs/event-format.md) and produce the change events with rdkafka. The
//! process tests start `target/debug/sluice-sink` (build it first: `cargo build -p sluice-sinks`).

use mysql_async::prelude::Queryable;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::Message;
use serde_json::Value;
use sluice_event::{ChangeEvent, EventType, Row};
use sluice_integration::process::{run_to_end, sink_binary, spawn_run, terminate};
use sluice_integration::sink::{OffsetProbe, SinkToml};
use sluice_integration::wait::{self, Deadline};
use sluice_integration::{create_topic, kafka, kafka_brokers, mysql, mysql_url, unique_name};
use sluice_sinks::targets::{Item, Outcome, Target, Write};
use sluice_sinks::SinkConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Column, SQL type, the SQL expression that renders the event's JSON for it, and how the
/// workload makes a random value (as a SQL expression with `?` for one parameter).
const COLUMNS: &[(&str, &str, &str)] = &[
    ("id", "BIGINT NOT NULL", "CAST(id AS CHAR)"),
    ("u", "BIGINT UNSIGNED", "CAST(u AS CHAR)"),
    ("small", "SMALLINT", "CAST(small AS CHAR)"),
    ("amount", "DECIMAL(12,2)", "JSON_QUOTE(CAST(amount AS CHAR))"),
    ("ratio", "FLOAT", "CAST(ratio AS CHAR)"),
    ("score", "DOUBLE", "CAST(score AS CHAR)"),
    ("day", "DATE", "JSON_QUOTE(DATE_FORMAT(day, '%Y-%m-%d'))"),
    ("at", "DATETIME(6)", "JSON_QUOTE(DATE_FORMAT(at, '%Y-%m-%dT%H:%i:%s.%f'))"),
    ("ts", "TIMESTAMP(3) NULL", "JSON_QUOTE(CONCAT(LEFT(DATE_FORMAT(ts, '%Y-%m-%dT%H:%i:%s.%f'), 23), 'Z'))"),
    ("dur", "TIME(2)", "JSON_QUOTE(CAST(dur AS CHAR))"),
    ("yr", "YEAR", "CAST(yr + 0 AS CHAR)"),
    ("name", "VARCHAR(40) CHARACTER SET utf8mb4", "JSON_QUOTE(name)"),
    ("note", "TEXT", "JSON_QUOTE(note)"),
    ("raw", "VARBINARY(16)", "JSON_QUOTE(REPLACE(TO_BASE64(raw), CHAR(10), ''))"),
    ("blob_", "BLOB", "JSON_QUOTE(REPLACE(TO_BASE64(blob_), CHAR(10), ''))"),
    ("status", "ENUM('new','paid','shipped')", "JSON_QUOTE(status)"),
    ("colors", "SET('red','green','blue')", "CONCAT('[', IF(colors = '', '', CONCAT('\"', REPLACE(colors, ',', '\",\"'), '\"')), ']')"),
    ("flags", "BIT(10)", "CAST(flags + 0 AS CHAR)"),
    ("attrs", "JSON", "attrs"),
    ("place", "GEOMETRY", "CONCAT('{\"srid\":', ST_SRID(place), ',\"wkb\":', JSON_QUOTE(REPLACE(TO_BASE64(ST_AsBinary(place)), CHAR(10), '')), '}')"),
];

/// Table `t` with every column of [`COLUMNS`], for [`mysql::create_database`].
fn table_t() -> String {
    let cols: Vec<String> = COLUMNS
        .iter()
        .map(|(c, t, _)| format!("`{c}` {t}"))
        .collect();
    format!(
        "t ({}, PRIMARY KEY (id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        cols.join(", ")
    )
}

async fn conn() -> mysql_async::Conn {
    let mut c = mysql::conn().await;
    c.query_drop("SET time_zone = '+00:00'").await.unwrap();
    c
}

/// A source database and a replica database, each with table `t`.
async fn databases(prefix: &str) -> (String, String) {
    let (src, rep) = (
        unique_name(&format!("{prefix}_src")),
        unique_name(&format!("{prefix}_rep")),
    );
    let mut c = conn().await;
    for db in [&src, &rep] {
        mysql::create_database(&mut c, db, &[&table_t()]).await;
    }
    (src, rep)
}

/// Rows of `db.t` in the event's JSON form, by id.
async fn rows(c: &mut mysql_async::Conn, db: &str, ids: Option<&[i64]>) -> BTreeMap<i64, Row> {
    let exprs: Vec<String> = COLUMNS
        .iter()
        .map(|(_, _, e)| format!("IFNULL({e}, 'null')"))
        .collect();
    let filter = match ids {
        Some([]) => return BTreeMap::new(),
        Some(ids) => {
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            format!(" WHERE id IN ({})", list.join(","))
        }
        None => String::new(),
    };
    let sql = format!(
        "SELECT {} FROM {db}.t{filter} ORDER BY id",
        exprs.join(", ")
    );
    let result: Vec<mysql_async::Row> = c.query(sql).await.unwrap();
    let mut out = BTreeMap::new();
    for r in result {
        let mut row = Row::new();
        for (i, (name, _, _)) in COLUMNS.iter().enumerate() {
            let text: String = r.get(i).unwrap();
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {text}: {e}"));
            row.insert((*name).to_owned(), v);
        }
        let id = row["id"].as_i64().unwrap();
        out.insert(id, row);
    }
    out
}

/// SQL literals for one random row (every column may be NULL except the key).
fn random_values(rng: &mut StdRng, id: i64) -> Vec<String> {
    let names = [
        "Ann",
        "Bøb",
        "Zoë 🌊",
        "O'Hara",
        "back\\\\slash",
        "\"q\"",
        "",
    ];
    let mut v = vec![id.to_string()];
    v.push(format!("{}", rng.random::<u64>()));
    v.push(format!("{}", rng.random::<i16>()));
    v.push(format!(
        "'{}.{:02}'",
        rng.random_range(-9_999_999_999i64..9_999_999_999),
        rng.random_range(0..100)
    ));
    v.push(format!(
        "{}",
        f64::from(rng.random_range(-4000..4000)) / 4.0
    ));
    v.push(format!(
        "{}",
        f64::from(rng.random_range(-80000..80000)) / 8.0
    ));
    v.push(format!(
        "'{}-{:02}-{:02}'",
        rng.random_range(1000..9999),
        rng.random_range(1..13),
        rng.random_range(1..29)
    ));
    v.push(format!(
        "'{}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}'",
        rng.random_range(1000..9999),
        rng.random_range(1..13),
        rng.random_range(1..29),
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60),
        rng.random_range(0..1_000_000)
    ));
    v.push(format!(
        "'{}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}'",
        rng.random_range(1971..2037),
        rng.random_range(1..13),
        rng.random_range(1..29),
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60),
        rng.random_range(0..1000)
    ));
    v.push(format!(
        "'{}{}:{:02}:{:02}.{:02}'",
        if rng.random() { "-" } else { "" },
        rng.random_range(0..839),
        rng.random_range(0..60),
        rng.random_range(0..60),
        rng.random_range(0..100)
    ));
    v.push(format!("{}", rng.random_range(1901..2156)));
    v.push(format!(
        "'{}'",
        names[rng.random_range(0..names.len())].replace('\'', "''")
    ));
    v.push(format!("REPEAT('txt ', {})", rng.random_range(0..50)));
    v.push(format!("x'{}'", hex(&random_bytes(rng, 16))));
    v.push(format!("x'{}'", hex(&random_bytes(rng, 300))));
    v.push(String::from(
        ["'new'", "'paid'", "'shipped'"][rng.random_range(0..3)],
    ));
    v.push(String::from(
        ["''", "'red'", "'green,blue'", "'red,green,blue'"][rng.random_range(0..4)],
    ));
    v.push(format!("{}", rng.random_range(0..1024)));
    v.push(format!("'{}'", serde_json::json!({"n": rng.random_range(0..1000), "tags": ["a", "ü"], "deep": {"ok": rng.random::<bool>()}})));
    v.push(format!(
        "ST_GeomFromText('POINT({} {})', {})",
        rng.random_range(-90..90),
        rng.random_range(-90..90),
        [0, 4326][rng.random_range(0..2)]
    ));
    // Any column but the key may be NULL.
    for x in v.iter_mut().skip(1) {
        if rng.random_ratio(1, 12) {
            *x = "NULL".into();
        }
    }
    v
}

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let n = rng.random_range(0..=max);
    (0..n).map(|_| rng.random()).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A v1 change event of `db.table` with primary key `id`.
fn event(
    db: &str,
    table: &str,
    kind: EventType,
    seq: i64,
    data: Row,
    old: Option<Row>,
) -> ChangeEvent {
    let (data, old) = (Value::Object(data), old.map(Value::Object));
    sluice_integration::events::row_event(db, table, kind, seq, data, old)
}

/// Plays the capture: turns row changes into events with increasing `seq`.
struct Capture {
    db: String,
    seq: i64,
    events: Vec<ChangeEvent>,
}

impl Capture {
    fn new(db: &str) -> Capture {
        Capture {
            db: db.to_owned(),
            seq: now_ms() << 20,
            events: Vec::new(),
        }
    }

    fn push(&mut self, kind: EventType, data: Row, old: Option<Row>) {
        self.seq += 1;
        self.events
            .push(event(&self.db, "t", kind, self.seq, data, old));
    }

    fn update(&mut self, before: &Row, after: Row) {
        let old: Row = before
            .iter()
            .filter(|(k, v)| after.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.push(EventType::Update, after, Some(old));
    }
}

/// Runs `n` random transactions of 1-4 changes on `db.t` (ids below `max_id`) and records
/// their events in order: inserts, updates of random columns, primary-key changes (a DELETE of
/// the old key and an INSERT of the new one, as the capture emits them) and deletes.
async fn workload(
    c: &mut mysql_async::Conn,
    cap: &mut Capture,
    rng: &mut StdRng,
    n: usize,
    max_id: i64,
) {
    let db = cap.db.clone();
    for _ in 0..n {
        let mut tx = c
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .unwrap();
        for _ in 0..rng.random_range(1..=4) {
            let id = rng.random_range(1..max_id);
            let roll = rng.random_range(0..100);
            let Some(before) = rows_in(&mut tx, &db, id).await else {
                let values = random_values(rng, id);
                tx.query_drop(format!("INSERT INTO {db}.t VALUES ({})", values.join(",")))
                    .await
                    .unwrap();
                let after = rows_in(&mut tx, &db, id).await.unwrap();
                cap.push(EventType::Insert, after, None);
                continue;
            };
            if roll < 15 {
                tx.query_drop(format!("DELETE FROM {db}.t WHERE id = {id}"))
                    .await
                    .unwrap();
                cap.push(EventType::Delete, before, None);
            } else if roll < 25 {
                let to = rng.random_range(1..max_id);
                if rows_in(&mut tx, &db, to).await.is_none() {
                    tx.query_drop(format!("UPDATE {db}.t SET id = {to} WHERE id = {id}"))
                        .await
                        .unwrap();
                    cap.push(EventType::Delete, before, None);
                    let after = rows_in(&mut tx, &db, to).await.unwrap();
                    cap.push(EventType::Insert, after, None);
                }
            } else {
                let values = random_values(rng, id);
                let sets: Vec<String> = COLUMNS
                    .iter()
                    .zip(&values)
                    .skip(1)
                    .filter(|_| rng.random_ratio(1, 3))
                    .map(|((c, _, _), v)| format!("`{c}` = {v}"))
                    .collect();
                if !sets.is_empty() {
                    tx.query_drop(format!(
                        "UPDATE {db}.t SET {} WHERE id = {id}",
                        sets.join(", ")
                    ))
                    .await
                    .unwrap();
                    let after = rows_in(&mut tx, &db, id).await.unwrap();
                    if after != before {
                        cap.update(&before, after);
                    }
                }
            }
        }
        tx.commit().await.unwrap();
    }
}

async fn rows_in(tx: &mut mysql_async::Transaction<'_>, db: &str, id: i64) -> Option<Row> {
    let exprs: Vec<String> = COLUMNS
        .iter()
        .map(|(_, _, e)| format!("IFNULL({e}, 'null')"))
        .collect();
    let r: Option<mysql_async::Row> = tx
        .query_first(format!(
            "SELECT {} FROM {db}.t WHERE id = {id}",
            exprs.join(", ")
        ))
        .await
        .unwrap();
    let r = r?;
    let mut row = Row::new();
    for (i, (name, _, _)) in COLUMNS.iter().enumerate() {
        let text: String = r.get(i).unwrap();
        row.insert(
            (*name).to_owned(),
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {text}: {e}")),
        );
    }
    Some(row)
}

/// Produces `events` in order, each under its key with the sluice headers.
async fn produce(topic: &str, events: &[ChangeEvent]) {
    sluice_integration::events::produce_many(&kafka_brokers(), topic, events)
        .await
        .unwrap();
}

fn config_text(topic: &str, group: &str, src: &str, rep: &str, rule_extra: &str) -> String {
    let url = mysql_url();
    // The password comes from the environment, as in a deployment.
    let url = url.replacen(":sluice@", ":${REPLICA_PASSWORD}@", 1);
    let head = SinkToml {
        session_timeout_ms: 10_000,
        linger_ms: 10,
        max_items: 200,
        max_backoff_ms: 500,
        ..SinkToml::new(topic, group)
    };
    format!(
        r#"{head}[targets.replica]
type = "mysql"
url = "{url}/{rep}"
pool_size = 4
[[rules]]
name = "t"
target = "replica"
match = {{ tables = ["{src}.t"] }}
{rule_extra}
"#,
        head = head.text()
    )
}

fn password() -> String {
    let url = mysql_url();
    let creds = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('@').next())
        .unwrap_or("");
    creds.split(':').nth(1).unwrap_or("").to_owned()
}

fn parse_config(text: &str) -> SinkConfig {
    sluice_integration::sink::parse(text, &[("REPLICA_PASSWORD", &password())])
}

fn write_config(text: &str) -> PathBuf {
    sluice_integration::write_temp_file("mysqlcfg", "sink.toml", text)
}

/// `sluice-sink run` with the config at `config` and `args`, logging to `log` next to it.
fn spawn_sink(config: &Path, log: &str, args: &[&str]) -> tokio::process::Child {
    let password = password();
    let env = [("REPLICA_PASSWORD", password.as_str())];
    spawn_run(
        &sink_binary(),
        config,
        args,
        &env,
        &config.with_file_name(log),
    )
}

/// Waits until the group of `probe` has committed `at_least` messages (`secs` s at most); on a
/// timeout the failure shows the sink's log `log`.
async fn wait_committed(probe: &OffsetProbe, at_least: i64, secs: u64, log: &Path) {
    let deadline = Deadline::after(secs);
    let mut last = None;
    loop {
        last = probe.committed_sum().await.or(last);
        if last.is_some_and(|n| n >= at_least) {
            return;
        }
        let what = || {
            format!(
                "offsets committed up to {at_least} (at {last:?}); log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        };
        deadline.sleep(Duration::from_millis(500), what).await;
    }
}

async fn verify(config: &Path) -> (bool, String) {
    let mut args = vec!["verify".as_ref(), "--config".as_ref(), config.as_os_str()];
    args.extend(["--rule", "t", "--chunk-rows", "50"].map(std::ffi::OsStr::new));
    let out = run_to_end(
        &sink_binary(),
        args,
        &[("REPLICA_PASSWORD", &password())],
        300,
    )
    .await;
    (out.success(), out.text())
}

async fn checksum(c: &mut mysql_async::Conn, db: &str) -> u64 {
    let row: mysql_async::Row = c
        .query_first(format!("CHECKSUM TABLE {db}.t"))
        .await
        .unwrap()
        .unwrap();
    row.get::<u64, _>(1).unwrap()
}

/// What a test of the sink process works with: source and replica databases, a topic with its
/// dead-letter topic, the config file, and a probe of the group's offsets.
async fn setup(name: &str, partitions: i32) -> (String, String, String, PathBuf, OffsetProbe) {
    let (src, rep) = databases(name).await;
    let topic = unique_name(&format!("mysql_{name}"));
    create_topic(&topic, partitions).await.unwrap();
    create_topic(&format!("{topic}.dlq"), 1).await.unwrap();
    let text = config_text(&topic, &unique_name("g"), &src, &rep, "");
    let probe = OffsetProbe::new(&parse_config(&text));
    (src, rep, topic, write_config(&text), probe)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_replica_random_workload_with_kills_and_replay_converges() {
    let (src, rep, topic, path, probe) = setup("wl", 4).await;
    let log = |n: &str| path.with_file_name(n);
    let mut rng = StdRng::seed_from_u64(0x5_1u64 ^ 6);
    let mut c = conn().await;
    let mut cap = Capture::new(&src);

    // Three rounds: changes arrive, a sink runs for a while and is killed with SIGKILL.
    let mut produced = 0;
    for round in 0..3 {
        workload(&mut c, &mut cap, &mut rng, 250, 300).await;
        produce(&topic, &cap.events[produced..]).await;
        produced = cap.events.len();
        let name = format!("run{round}.log");
        let mut sink = spawn_sink(&path, &name, &[]);
        let target = if round < 2 {
            produced as i64 / 2
        } else {
            produced as i64
        };
        wait_committed(&probe, target, 240, &log(&name)).await;
        if round < 2 {
            // The next process joins at once; the broker gives it the partitions when the
            // dead member's session (10 s here) has expired.
            sluice_integration::kill9(&mut sink).await;
        } else {
            // The last one stops cleanly, so the replay's member owns every partition at once.
            let _ = terminate(&mut sink, 30).await;
        }
    }
    // One replay of everything from the start: the replica must not move away from the source.
    let mut replay = spawn_sink(&path, "replay.log", &["--start-at", "earliest"]);
    wait::until(30, "the replay's start position in its log", async || {
        let text = std::fs::read_to_string(log("replay.log")).unwrap_or_default();
        text.contains("start at")
    })
    .await;
    // Changes made during the replay land too.
    workload(&mut c, &mut cap, &mut rng, 100, 300).await;
    produce(&topic, &cap.events[produced..]).await;
    produced = cap.events.len();
    wait_committed(&probe, produced as i64, 240, &log("replay.log")).await;
    sluice_integration::kill9(&mut replay).await;

    let kinds = |k: EventType| cap.events.iter().filter(|e| e.kind == k).count();
    assert!(
        kinds(EventType::Insert) > 100
            && kinds(EventType::Update) > 100
            && kinds(EventType::Delete) > 50,
        "workload too small"
    );
    let source = rows(&mut c, &src, None).await;
    let replica = rows(&mut c, &rep, None).await;
    assert!(source.len() > 50, "{}", source.len());
    assert_eq!(source.len(), replica.len());
    for (id, row) in &source {
        assert_eq!(Some(row), replica.get(id), "row {id}");
    }
    assert_eq!(checksum(&mut c, &src).await, checksum(&mut c, &rep).await);
    let (ok, out) = verify(&path).await;
    assert!(ok, "{out}");
    assert!(out.contains("\nequal"), "{out}");

    // verify sees a changed and a missing row, and names their key ranges.
    let ids: Vec<i64> = source.keys().copied().collect();
    let (changed, missing) = (ids[3], ids[ids.len() - 1]);
    mysql::exec_all(
        &mut c,
        [
            format!("UPDATE {rep}.t SET name = 'changed' WHERE id = {changed}"),
            format!("DELETE FROM {rep}.t WHERE id = {missing}"),
        ],
    )
    .await;
    let (ok, out) = verify(&path).await;
    assert!(!ok, "{out}");
    assert_eq!(out.matches("differs: keys").count(), 2, "{out}");
    assert!(out.contains("differs: keys [start, ("), "{out}");
    assert!(
        out.contains("the replica differs from the source in 2 key ranges"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_replica_every_column_type_round_trips_and_a_bad_row_goes_to_the_dlq() {
    let (src, rep, topic, path, probe) = setup("rt", 2).await;
    let mut c = conn().await;
    let mut rng = StdRng::seed_from_u64(42);
    // Edge values, a row of NULLs, and random rows.
    let edges = [
        "1, 18446744073709551615, -32768, '-9999999999.99', -1.25, 1e300, '1000-01-01', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999', '-838:59:59.00', 2155, 'naïve 🌊 \"q\" \\\\ ''', REPEAT('x', 2000), x'00ff0001', x'', 'shipped', 'red,green,blue', 1023, '{\"a\":[1,{\"b\":null}],\"s\":\"ü\"}', ST_GeomFromText('LINESTRING(0 0, 1 1, 2 5)', 4326)",
        "2, 0, 0, '0.00', 0, 0, '0000-00-00', '0000-00-00 00:00:00', '1970-01-01 00:00:01', '00:00:00', 0, '', '', x'00', x'00', 'new', '', 0, '[]', ST_GeomFromText('POINT(0 0)')",
    ];
    let random = (4..60).map(|id| random_values(&mut rng, id).join(","));
    let values = edges.map(String::from).into_iter().chain(random);
    let mut inserts: Vec<String> = values
        .map(|v| format!("INSERT INTO {src}.t VALUES ({v})"))
        .collect();
    inserts.insert(2, format!("INSERT INTO {src}.t (id) VALUES (3)"));
    mysql::exec_all(&mut c, inserts).await;
    let source = rows(&mut c, &src, None).await;
    let mut cap = Capture::new(&src);
    for row in source.values() {
        cap.push(EventType::Insert, row.clone(), None);
    }
    // A row the replica refuses (DECIMAL(12,2) out of range), in the middle of the stream.
    let mut bad = source[&5].clone();
    bad.insert("id".into(), Value::from(1_000_000));
    bad.insert("amount".into(), Value::from("123456789012345.00"));
    cap.events.insert(30, cap.events[0].clone());
    cap.events[30].data = bad;
    produce(&topic, &cap.events).await;

    let mut sink = spawn_sink(&path, "run.log", &[]);
    let run_log = path.with_file_name("run.log");
    wait_committed(&probe, cap.events.len() as i64, 240, &run_log).await;
    sluice_integration::kill9(&mut sink).await;

    let replica = rows(&mut c, &rep, None).await;
    assert_eq!(replica.len(), source.len());
    for (id, row) in &source {
        assert_eq!(Some(row), replica.get(id), "row {id}");
    }
    assert_eq!(checksum(&mut c, &src).await, checksum(&mut c, &rep).await);
    let (ok, out) = verify(&path).await;
    assert!(ok && out.contains("\nequal"), "{out}");

    // The refused row is in the dead-letter topic with the server's message.
    let dlq = read_topic(&format!("{topic}.dlq"), 1).await;
    assert_eq!(dlq.len(), 1);
    let (key, error) = &dlq[0];
    assert!(key.contains("1000000"), "{key}");
    assert!(
        error.contains("error 1264") && error.contains("Out of range value for column 'amount'"),
        "{error}"
    );
}

/// (key, sluice-error header) of the first `expect` messages of `topic` (one partition).
async fn read_topic(topic: &str, expect: usize) -> Vec<(String, String)> {
    let topic = topic.to_owned();
    let messages = tokio::task::spawn_blocking(move || {
        kafka::read_messages(&kafka_brokers(), &topic, 1, expect, 30)
    })
    .await
    .unwrap();
    messages
        .iter()
        .map(|m| {
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            let error = kafka::headers(m).remove("sluice-error").unwrap_or_default();
            (key, error)
        })
        .collect()
}

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
