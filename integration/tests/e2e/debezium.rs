//! Real Debezium in front of the sink: Debezium 3.5's MariaDB connector on Kafka Connect
//! standalone (`sluice_integration::debezium`) streams a table of every column type, changed by
//! a random workload (inserts, updates, key changes, deletes), into the shared broker; the sink
//! with `format = "debezium"` keeps a MariaDB replica (which must then equal the source by
//! `verify`, every column included), an OpenSearch index (one document per source row, equal to
//! it) and Redis keys (every changed row's key deleted, the others kept).

use mysql_async::prelude::Queryable;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;
use sluice_integration::debezium::{DebeziumConnect, Stream};
use sluice_integration::sink::{RunningSink, SinkToml};
use sluice_integration::{
    create_topic, es, es_url, kafka_brokers, mysql, mysql_url, redis_exists, redis_url, unique_name,
};
use sluice_sinks::targets::mysql::verify::verify;
use sluice_sinks::{Sink, SinkConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Column, SQL type, the SQL expression that renders the event's JSON for it, and two edge
/// values (SQL literals): capture/decoding.rs's ALL_TYPES and its edge rows, less what Debezium
/// cannot carry faithfully (docs/formats.md, "Not supported"): the JSON column (MariaDB's JSON
/// is LONGTEXT to the connector, so it arrives as text, not as the JSON value) and the zero date
/// `'0000-00-00'` (Debezium writes it as null; `'0001-01-01'` stands in for it).
const TYPES: &[(&str, &str, &str, [&str; 2])] = &[
    ("ti", "TINYINT", "CAST(ti AS CHAR)", ["-128", "127"]),
    ("tiu", "TINYINT UNSIGNED", "CAST(tiu AS CHAR)", ["255", "0"]),
    ("si", "SMALLINT", "CAST(si AS CHAR)", ["-32768", "32767"]),
    ("siu", "SMALLINT UNSIGNED", "CAST(siu AS CHAR)", ["65535", "0"]),
    ("mi", "MEDIUMINT", "CAST(mi AS CHAR)", ["-8388608", "8388607"]),
    ("miu", "MEDIUMINT UNSIGNED", "CAST(miu AS CHAR)", ["16777215", "0"]),
    ("i", "INT", "CAST(i AS CHAR)", ["-2147483648", "2147483647"]),
    ("iu", "INT UNSIGNED", "CAST(iu AS CHAR)", ["4294967295", "0"]),
    ("bi", "BIGINT", "CAST(bi AS CHAR)", ["-9223372036854775808", "9223372036854775807"]),
    ("biu", "BIGINT UNSIGNED", "CAST(biu AS CHAR)", ["18446744073709551615", "0"]),
    (
        "d65",
        "DECIMAL(65,30)",
        "JSON_QUOTE(CAST(d65 AS CHAR))",
        [
            "'99999999999999999999999999999999999.999999999999999999999999999999'",
            "'-99999999999999999999999999999999999.999999999999999999999999999999'",
        ],
    ),
    ("d10", "DECIMAL(10,2)", "JSON_QUOTE(CAST(d10 AS CHAR))", ["'-12.30'", "'0.01'"]),
    ("d0", "DECIMAL(5,0)", "JSON_QUOTE(CAST(d0 AS CHAR))", ["'-0'", "'99999'"]),
    ("f", "FLOAT", "CAST(f AS CHAR)", ["1.1", "-3.40282e38"]),
    ("db", "DOUBLE", "CAST(db AS CHAR)", ["-2.5e-300", "1.7976931348623157e308"]),
    ("dt", "DATE", "JSON_QUOTE(DATE_FORMAT(dt, '%Y-%m-%d'))", ["'2026-11-21'", "'0001-01-01'"]),
    (
        "dtm0",
        "DATETIME",
        "JSON_QUOTE(DATE_FORMAT(dtm0, '%Y-%m-%dT%H:%i:%s'))",
        ["'1000-01-01 00:00:00'", "'2000-02-29 12:00:00'"],
    ),
    (
        "dtm3",
        "DATETIME(3)",
        "JSON_QUOTE(LEFT(DATE_FORMAT(dtm3, '%Y-%m-%dT%H:%i:%s.%f'), 23))",
        ["'2026-11-21 09:15:02.123'", "'2000-01-01 00:00:00.000'"],
    ),
    (
        "dtm6",
        "DATETIME(6)",
        "JSON_QUOTE(DATE_FORMAT(dtm6, '%Y-%m-%dT%H:%i:%s.%f'))",
        ["'9999-12-31 23:59:59.999999'", "'2000-01-01 00:00:00.000001'"],
    ),
    (
        "ts0",
        "TIMESTAMP NULL",
        "JSON_QUOTE(CONCAT(DATE_FORMAT(ts0, '%Y-%m-%dT%H:%i:%s'), 'Z'))",
        ["'1970-01-01 00:00:01'", "'2026-11-21 09:15:02'"],
    ),
    (
        "ts3",
        "TIMESTAMP(3) NULL",
        "JSON_QUOTE(CONCAT(LEFT(DATE_FORMAT(ts3, '%Y-%m-%dT%H:%i:%s.%f'), 23), 'Z'))",
        ["'2038-01-19 03:14:07.999'", "'2000-01-01 00:00:00.000'"],
    ),
    ("tm0", "TIME", "JSON_QUOTE(CAST(tm0 AS CHAR))", ["'-838:59:59'", "'00:00:00'"]),
    ("tm1", "TIME(1)", "JSON_QUOTE(CAST(tm1 AS CHAR))", ["'-00:00:00.5'", "'12:34:56.7'"]),
    (
        "tm6",
        "TIME(6)",
        "JSON_QUOTE(CAST(tm6 AS CHAR))",
        ["'838:59:59.000000'", "'-01:02:03.040506'"],
    ),
    ("yr", "YEAR", "CAST(yr + 0 AS CHAR)", ["2155", "0"]),
    (
        "vc",
        "VARCHAR(300) CHARACTER SET utf8mb4",
        "JSON_QUOTE(vc)",
        ["'héllo 🌊 \"quoted\" \\\\ back'", "''"],
    ),
    ("ch", "CHAR(10) CHARACTER SET utf8mb4", "JSON_QUOTE(ch)", ["'ab'", "''"]),
    (
        "lat",
        "VARCHAR(50) CHARACTER SET latin1",
        "JSON_QUOTE(CONVERT(lat USING utf8mb4))",
        ["CONVERT(_utf8mb4'café €' USING latin1)", "''"],
    ),
    ("txt", "TEXT", "JSON_QUOTE(txt)", ["REPEAT('t', 1000)", "''"]),
    (
        "bin",
        "BINARY(6)",
        "JSON_QUOTE(REPLACE(TO_BASE64(bin), CHAR(10), ''))",
        ["x'000100000000'", "x'00'"],
    ),
    (
        "vb",
        "VARBINARY(20)",
        "JSON_QUOTE(REPLACE(TO_BASE64(vb), CHAR(10), ''))",
        ["x'00ff00'", "x''"],
    ),
    (
        "bl",
        "BLOB",
        "JSON_QUOTE(REPLACE(TO_BASE64(bl), CHAR(10), ''))",
        ["x'00000000ff'", "x''"],
    ),
    ("en", "ENUM('new','paid','shipped')", "JSON_QUOTE(en)", ["'new'", "'shipped'"]),
    (
        "st",
        "SET('a','b','c','d')",
        "CONCAT('[', IF(st = '', '', CONCAT('\"', REPLACE(st, ',', '\",\"'), '\"')), ']')",
        ["'a,b,c,d'", "''"],
    ),
    ("b1", "BIT(1)", "CAST(b1 + 0 AS CHAR)", ["b'1'", "b'0'"]),
    (
        "b64",
        "BIT(64)",
        "CAST(b64 + 0 AS CHAR)",
        ["b'1111111111111111111111111111111111111111111111111111111111111111'", "b'0'"],
    ),
    (
        "geo",
        "GEOMETRY",
        "CONCAT('{\"srid\":', ST_SRID(geo), ',\"wkb\":', JSON_QUOTE(REPLACE(TO_BASE64(ST_AsBinary(geo)), CHAR(10), '')), '}')",
        ["ST_GeomFromText('POINT(1 2)', 4326)", "ST_GeomFromText('LINESTRING(0 0, 1 1, 2 5)')"],
    ),
];

/// Row ids the workload uses: 1 to `MAX_ID - 1`.
const MAX_ID: u32 = 40;

/// Transactions of the workload (1 to 4 changes each).
const TRANSACTIONS: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debezium_stream_keeps_a_replica_an_index_and_redis_keys_in_step() {
    es::single_node_indexes().await;
    let (src, rep) = (unique_name("dbz_src"), unique_name("dbz_rep"));
    let mut c = conn().await;
    let cols: Vec<String> = TYPES
        .iter()
        .map(|(n, t, _, _)| format!("`{n}` {t}"))
        .collect();
    let table = format!(
        "t (id INT UNSIGNED PRIMARY KEY, {}) DEFAULT CHARSET=utf8mb4",
        cols.join(", ")
    );
    for db in [&src, &rep] {
        mysql::create_database(&mut c, db, &[&table]).await;
    }
    let prefix = unique_name("dbz");
    let topic = format!("{prefix}.{src}.t");
    create_topic(&topic, 1).await.unwrap();
    create_topic(&format!("{topic}.dlq"), 1).await.unwrap();
    let index = unique_name("es_dbz");
    let keys = unique_name("dbz_key");
    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for id in 1..MAX_ID {
        let () = redis::cmd("SET")
            .arg(format!("{keys}:{id}"))
            .arg("cached")
            .query_async(&mut redis)
            .await
            .unwrap();
    }

    // The whole workload first; Debezium then reads it from the binlog.
    let from = mysql::binlog_end(&mut c).await;
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let changed = workload(&mut c, &src, &mut rng).await;
    let want = source_rows(&mut c, &src).await;

    let connect = DebeziumConnect::start(&Stream {
        prefix: &prefix,
        database: &src,
        table: "t",
        from,
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let config = sink_config(&topic, &src, &rep, &index, &keys);
    let mut sink = RunningSink::start(Sink::new(config.clone()));
    let what = format!("the replica, the index and Redis in step with {src}.t (seed {seed})");
    sink.until(120, &what, async || {
        let report = verify(&config, "t", None, 20)
            .await
            .map_err(|e| e.to_string())?;
        if !report.is_equal() {
            return Err(format!(
                "replica differs: {} source rows, {} replica rows, {:?}; Debezium: {}",
                report.source_rows,
                report.replica_rows,
                report.differences,
                connect.status().await
            ));
        }
        let docs = es::all_docs(&index).await;
        if docs.len() != want.len() {
            return Err(format!("{} documents, {} rows", docs.len(), want.len()));
        }
        for id in &changed {
            if redis_exists(&mut redis, &format!("{keys}:{id}")).await {
                return Err(format!("{keys}:{id} still cached"));
            }
        }
        Ok(())
    })
    .await;
    sink.stop().await.unwrap();
    drop(connect);

    // Every column took part in the comparison.
    let report = verify(&config, "t", None, 20).await.unwrap();
    assert!(report.is_equal(), "{report:?}");
    assert!(
        report.skipped.is_empty(),
        "verify left out {:?}",
        report.skipped
    );
    assert_eq!(
        report.compared.len(),
        TYPES.len() + 1,
        "{:?}",
        report.compared
    );
    let docs = es::all_docs(&index).await;
    for (id, row) in &want {
        let doc = docs
            .get(&id.to_string())
            .unwrap_or_else(|| panic!("no document {id}"));
        assert_row_eq(doc, row, &format!("document {id} (seed {seed})"));
    }
    for id in 1..MAX_ID {
        let cached = redis_exists(&mut redis, &format!("{keys}:{id}")).await;
        assert_eq!(
            cached,
            !changed.contains(&id),
            "{keys}:{id}: a changed row's key is deleted, another's kept"
        );
    }
    assert_eq!(
        high_watermark(&format!("{topic}.dlq")),
        0,
        "nothing was dead-lettered"
    );
    es::delete_indexes(&[&index]).await;
}

async fn conn() -> mysql_async::Conn {
    let mut c = mysql::conn().await;
    c.query_drop("SET time_zone = '+00:00', sql_mode = ''")
        .await
        .unwrap();
    c
}

/// The sink reading Debezium's topic into the three targets, one rule each.
fn sink_config(topic: &str, src: &str, rep: &str, index: &str, keys: &str) -> SinkConfig {
    let group = unique_name("g");
    let head = SinkToml {
        linger_ms: 10,
        max_items: 200,
        ..SinkToml::new(topic, &group)
    }
    .text()
    .replace("[consumer]\n", "[consumer]\nformat = \"debezium\"\n");
    // BIGINT UNSIGNED and BIT(64) above i64::MAX need unsigned_long, FLOAT's and DOUBLE's edges
    // a double; dynamic date detection would make text columns dates.
    let mapping = sluice_integration::write_temp_file(
        "es_dbz_mapping",
        "mapping.json",
        r#"{"mappings":{"date_detection":false,"properties":{
            "biu":{"type":"unsigned_long"},"b64":{"type":"unsigned_long"},
            "f":{"type":"double"},"db":{"type":"double"}}}}"#,
    );
    let text = format!(
        r#"{head}[targets.replica]
type = "mysql"
url = "{mysql}/{rep}"
pool_size = 2
[targets.search]
type = "elasticsearch"
urls = ["{es}"]
timeout_ms = 10000
[targets.cache]
type = "redis"
url = "{redis}"
[[rules]]
name = "t"
target = "replica"
match = {{ tables = ["{src}.t"] }}
[[rules]]
name = "search"
target = "search"
match = {{ tables = ["{src}.t"] }}
[rules.elasticsearch]
index = "{index}"
create_index = "{mapping}"
[[rules]]
name = "cache"
target = "cache"
match = {{ tables = ["{src}.t"] }}
[rules.redis]
keys = ["{keys}:{{id}}"]
"#,
        mysql = mysql_url(),
        es = es_url(),
        redis = redis_url(),
        mapping = mapping.display(),
    );
    sluice_integration::sink::parse(&text, &[])
}

/// SQL literals for a random row: each column one of its edge values, a random value, or NULL.
fn random_values(rng: &mut StdRng) -> Vec<String> {
    TYPES
        .iter()
        .map(|(name, _, _, edges)| match rng.random_range(0..10) {
            0 => "NULL".to_owned(),
            1..=3 => match *name {
                "i" => rng.random::<i32>().to_string(),
                "bi" => rng.random::<i64>().to_string(),
                "d10" => format!(
                    "'{}.{:02}'",
                    rng.random_range(-99_999_999..99_999_999),
                    rng.random_range(0..100)
                ),
                "dtm6" => format!(
                    "'{}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}'",
                    rng.random_range(1000..9999),
                    rng.random_range(1..13),
                    rng.random_range(1..29),
                    rng.random_range(0..24),
                    rng.random_range(0..60),
                    rng.random_range(0..60),
                    rng.random_range(0..1_000_000)
                ),
                "vc" => format!("'Zoë {} O''Hara'", rng.random::<u32>()),
                _ => edges[rng.random_range(0..2)].to_owned(),
            },
            n => edges[n % 2].to_owned(),
        })
        .collect()
}

/// Runs [`TRANSACTIONS`] random transactions on `db.t`: inserts, updates of random columns,
/// key changes and deletes. Returns the ids of the rows it changed (both ids of a key change),
/// which is what the cache must have forgotten.
async fn workload(c: &mut mysql_async::Conn, db: &str, rng: &mut StdRng) -> BTreeSet<u32> {
    let names: Vec<String> = TYPES.iter().map(|(n, _, _, _)| format!("`{n}`")).collect();
    let mut changed = BTreeSet::new();
    for _ in 0..TRANSACTIONS {
        let mut tx = c
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .unwrap();
        for _ in 0..rng.random_range(1..=4) {
            let id = rng.random_range(1..MAX_ID);
            let exists: Option<u32> = tx
                .query_first(format!("SELECT id FROM {db}.t WHERE id = {id}"))
                .await
                .unwrap();
            let roll = rng.random_range(0..100);
            let (sql, ids) = if exists.is_none() {
                let values = random_values(rng);
                let sql = format!(
                    "INSERT INTO {db}.t (id, {}) VALUES ({id}, {})",
                    names.join(", "),
                    values.join(", ")
                );
                (sql, vec![id])
            } else if roll < 15 {
                (format!("DELETE FROM {db}.t WHERE id = {id}"), vec![id])
            } else if roll < 30 {
                let to = rng.random_range(1..MAX_ID);
                let sql = format!("UPDATE IGNORE {db}.t SET id = {to} WHERE id = {id}");
                (sql, vec![id, to])
            } else {
                let values = random_values(rng);
                let mut sets: Vec<String> = names
                    .iter()
                    .zip(&values)
                    .filter(|_| rng.random_ratio(1, 3))
                    .map(|(n, v)| format!("{n} = {v}"))
                    .collect();
                if sets.is_empty() {
                    sets.push(format!("{} = {}", names[0], values[0]));
                }
                let sql = format!("UPDATE {db}.t SET {} WHERE id = {id}", sets.join(", "));
                (sql, vec![id])
            };
            tx.query_drop(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            // An UPDATE that changes nothing (or a key change onto a taken id) writes no row
            // event, so there is nothing to invalidate.
            if tx.affected_rows() > 0 {
                changed.extend(ids);
            }
        }
        tx.commit().await.unwrap();
    }
    changed
}

/// The source rows in the event's JSON form, by id.
async fn source_rows(
    c: &mut mysql_async::Conn,
    db: &str,
) -> BTreeMap<u32, serde_json::Map<String, Value>> {
    let exprs: Vec<String> = TYPES
        .iter()
        .map(|(_, _, e, _)| format!("IFNULL({e}, 'null')"))
        .collect();
    let sql = format!("SELECT id, {} FROM {db}.t ORDER BY id", exprs.join(", "));
    let rows: Vec<mysql_async::Row> = c.query(sql).await.unwrap();
    let mut out = BTreeMap::new();
    for row in rows {
        let id: u32 = row.get(0).unwrap();
        let mut m = serde_json::Map::new();
        m.insert("id".into(), Value::from(id));
        for (i, (name, _, _, _)) in TYPES.iter().enumerate() {
            let text: String = row.get(i + 1).unwrap();
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {text}: {e}"));
            m.insert((*name).to_owned(), v);
        }
        out.insert(id, m);
    }
    out
}

/// Equal, with FLOAT compared at its 6 significant digits (MariaDB prints floats rounded).
fn assert_row_eq(got: &Value, want: &serde_json::Map<String, Value>, what: &str) {
    let got = got.as_object().unwrap_or_else(|| panic!("{what}: {got}"));
    assert_eq!(
        got.keys().collect::<BTreeSet<_>>(),
        want.keys().collect::<BTreeSet<_>>(),
        "{what}: columns"
    );
    for (k, w) in want {
        let g = &got[k];
        if k == "f" {
            if let (Some(g), Some(w)) = (g.as_f64(), w.as_f64()) {
                assert!(
                    (g - w).abs() <= w.abs() * 1e-6,
                    "{what}.{k}: got {g}, want {w}"
                );
                continue;
            }
        }
        assert_eq!(g, w, "{what}.{k}");
    }
}

/// The end offset of partition 0 of `topic`.
fn high_watermark(topic: &str) -> i64 {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()
        .unwrap();
    consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap()
        .1
}
