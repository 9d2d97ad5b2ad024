//! End-to-end tests: the MySQL replica target, MariaDB as source and replica (two databases).
//!
//! The tests play the capture: they change the source table, read the changed rows back in the
//! event's JSON form (docs/event-format.md) and produce the change events with rdkafka. The
//! process tests start `target/debug/sluice-sink` (build it first: `cargo build -p sluice-sinks`).
//!
//! This file holds the tables, events, config and the sink process's helpers; the random
//! changes are made in `workload`. The tests: `process` (the sink process under kills and
//! replays, every column type, the dead-letter topic) and `target` (the target fed directly:
//! versions, soft deletes, per-row outcomes, deadlocks).

mod process;
mod target;
mod workload;

use mysql_async::prelude::Queryable;
use serde_json::Value;
use sluice_event::{ChangeEvent, EventType, Row};
use sluice_integration::process::{run_to_end, sink_binary, spawn_run};
use sluice_integration::sink::{OffsetProbe, SinkToml};
use sluice_integration::wait::Deadline;
use sluice_integration::{create_topic, kafka_brokers, mysql, mysql_url, unique_name};
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
    ("uid", "UUID", "JSON_QUOTE(CAST(uid AS CHAR))"),
    ("ip4", "INET4", "JSON_QUOTE(CAST(ip4 AS CHAR))"),
    ("ip6", "INET6", "JSON_QUOTE(CAST(ip6 AS CHAR))"),
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
