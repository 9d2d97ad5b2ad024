//! Binlog rows decoded as the design says: every column type's edge values through INSERT,
//! UPDATE and DELETE, compared with what SELECT renders, and DDL in the middle of a stream.

use super::{config, end_position, events_of, state_dir};
use mysql_async::prelude::Queryable;
use serde_json::Value;
use sluice_event::EventType;
use sluice_integration::mysql::{self, conn};
use std::collections::BTreeMap;

/// Column, SQL type, and the SQL expression that renders the design's JSON for it.
const ALL_TYPES: &[(&str, &str, &str)] = &[
    ("ti", "TINYINT", "CAST(ti AS CHAR)"),
    ("tiu", "TINYINT UNSIGNED", "CAST(tiu AS CHAR)"),
    ("si", "SMALLINT", "CAST(si AS CHAR)"),
    ("siu", "SMALLINT UNSIGNED", "CAST(siu AS CHAR)"),
    ("mi", "MEDIUMINT", "CAST(mi AS CHAR)"),
    ("miu", "MEDIUMINT UNSIGNED", "CAST(miu AS CHAR)"),
    ("i", "INT", "CAST(i AS CHAR)"),
    ("iu", "INT UNSIGNED", "CAST(iu AS CHAR)"),
    ("bi", "BIGINT", "CAST(bi AS CHAR)"),
    ("biu", "BIGINT UNSIGNED", "CAST(biu AS CHAR)"),
    ("d65", "DECIMAL(65,30)", "JSON_QUOTE(CAST(d65 AS CHAR))"),
    ("d10", "DECIMAL(10,2)", "JSON_QUOTE(CAST(d10 AS CHAR))"),
    ("d0", "DECIMAL(5,0)", "JSON_QUOTE(CAST(d0 AS CHAR))"),
    ("f", "FLOAT", "CAST(f AS CHAR)"),
    ("db", "DOUBLE", "CAST(db AS CHAR)"),
    ("dt", "DATE", "JSON_QUOTE(DATE_FORMAT(dt, '%Y-%m-%d'))"),
    ("dtm0", "DATETIME", "JSON_QUOTE(DATE_FORMAT(dtm0, '%Y-%m-%dT%H:%i:%s'))"),
    ("dtm3", "DATETIME(3)", "JSON_QUOTE(LEFT(DATE_FORMAT(dtm3, '%Y-%m-%dT%H:%i:%s.%f'), 23))"),
    ("dtm6", "DATETIME(6)", "JSON_QUOTE(DATE_FORMAT(dtm6, '%Y-%m-%dT%H:%i:%s.%f'))"),
    ("ts0", "TIMESTAMP NULL", "JSON_QUOTE(CONCAT(DATE_FORMAT(ts0, '%Y-%m-%dT%H:%i:%s'), 'Z'))"),
    ("ts3", "TIMESTAMP(3) NULL", "JSON_QUOTE(CONCAT(LEFT(DATE_FORMAT(ts3, '%Y-%m-%dT%H:%i:%s.%f'), 23), 'Z'))"),
    ("tm0", "TIME", "JSON_QUOTE(CAST(tm0 AS CHAR))"),
    ("tm1", "TIME(1)", "JSON_QUOTE(CAST(tm1 AS CHAR))"),
    ("tm6", "TIME(6)", "JSON_QUOTE(CAST(tm6 AS CHAR))"),
    ("yr", "YEAR", "CAST(yr + 0 AS CHAR)"),
    ("vc", "VARCHAR(300) CHARACTER SET utf8mb4", "JSON_QUOTE(vc)"),
    ("ch", "CHAR(10) CHARACTER SET utf8mb4", "JSON_QUOTE(ch)"),
    ("lat", "VARCHAR(50) CHARACTER SET latin1", "JSON_QUOTE(CONVERT(lat USING utf8mb4))"),
    ("txt", "TEXT", "JSON_QUOTE(txt)"),
    ("bin", "BINARY(6)", "JSON_QUOTE(REPLACE(TO_BASE64(bin), CHAR(10), ''))"),
    ("vb", "VARBINARY(20)", "JSON_QUOTE(REPLACE(TO_BASE64(vb), CHAR(10), ''))"),
    ("bl", "BLOB", "JSON_QUOTE(REPLACE(TO_BASE64(bl), CHAR(10), ''))"),
    ("en", "ENUM('new','paid','shipped')", "JSON_QUOTE(en)"),
    ("st", "SET('a','b','c','d')", "CONCAT('[', IF(st = '', '', CONCAT('\"', REPLACE(st, ',', '\",\"'), '\"')), ']')"),
    ("b1", "BIT(1)", "CAST(b1 + 0 AS CHAR)"),
    ("b64", "BIT(64)", "CAST(b64 + 0 AS CHAR)"),
    ("js", "JSON", "js"),
    ("geo", "GEOMETRY", "CONCAT('{\"srid\":', ST_SRID(geo), ',\"wkb\":', JSON_QUOTE(REPLACE(TO_BASE64(ST_AsBinary(geo)), CHAR(10), '')), '}')"),
    ("uu", "UUID", "JSON_QUOTE(CAST(uu AS CHAR))"),
    ("ip4", "INET4", "JSON_QUOTE(CAST(ip4 AS CHAR))"),
    ("ip6", "INET6", "JSON_QUOTE(CAST(ip6 AS CHAR))"),
];

/// Edge-value rows: (id, values in ALL_TYPES order as SQL literals).
fn edge_rows() -> Vec<(u32, Vec<&'static str>)> {
    vec![
        (1, vec![
            "-128", "255", "-32768", "65535", "-8388608", "16777215", "-2147483648", "4294967295",
            "-9223372036854775808", "18446744073709551615",
            "'99999999999999999999999999999999999.999999999999999999999999999999'", "'-12.30'", "'-0'",
            "1.1", "-2.5e-300", "'2026-11-21'", "'1000-01-01 00:00:00'", "'2026-11-21 09:15:02.123'",
            "'9999-12-31 23:59:59.999999'", "'1970-01-01 00:00:01'", "'2038-01-19 03:14:07.999'",
            "'-838:59:59'", "'-00:00:00.5'", "'838:59:59.000001'", "2155",
            "'héllo 🌊 \"quoted\" \\\\ back'", "'ab'", "CONVERT(_utf8mb4'café €' USING latin1)", "REPEAT('t', 1000)",
            "x'000100000000'", "x'00ff00'", "x'00000000ff'", "'new'", "'a,b,c,d'", "b'1'",
            "b'1111111111111111111111111111111111111111111111111111111111111111'",
            "'{\"a\":[1,{\"b\":null}],\"c\":\"ü\",\"n\":1.5e300,\"deep\":{\"x\":{\"y\":[true,false]}}}'",
            "ST_GeomFromText('POINT(1 2)', 4326)",
            "'550e8400-e29b-41d4-a716-446655440000'", "'192.168.0.1'", "'::ffff:1.2.3.4'",
        ]),
        (2, vec![
            "127", "0", "32767", "0", "8388607", "0", "2147483647", "0", "9223372036854775807", "0",
            "'-99999999999999999999999999999999999.999999999999999999999999999999'", "'0.01'", "'99999'",
            "-3.40282e38", "1.7976931348623157e308", "'0000-00-00'", "'2000-02-29 12:00:00'", "'2000-01-01 00:00:00.000'",
            "'2000-01-01 00:00:00.000001'", "NULL", "NULL", "'00:00:00'", "'12:34:56.7'", "'-01:02:03.040506'", "0",
            "''", "''", "''", "''", "x'00'", "x''", "x''", "'shipped'", "''", "b'0'", "b'0'", "'[]'",
            "ST_GeomFromText('LINESTRING(0 0, 1 1, 2 5)')",
            "'00000000-0000-0000-0000-000000000000'", "'0.0.0.0'", "'::'",
        ]),
        (3, vec!["NULL"; ALL_TYPES.len()]),
    ]
}

async fn expected_rows(
    c: &mut mysql_async::Conn,
    db: &str,
) -> BTreeMap<u64, serde_json::Map<String, Value>> {
    let exprs: Vec<String> = ALL_TYPES
        .iter()
        .map(|(_, _, e)| format!("IFNULL({e}, 'null')"))
        .collect();
    let sql = format!("SELECT id, {} FROM {db}.t ORDER BY id", exprs.join(", "));
    let rows: Vec<mysql_async::Row> = c.query(sql).await.unwrap();
    let mut out = BTreeMap::new();
    for row in rows {
        let id: u64 = row.get(0).unwrap();
        let mut m = serde_json::Map::new();
        m.insert("id".into(), Value::from(id));
        for (i, (name, _, _)) in ALL_TYPES.iter().enumerate() {
            let text: String = row.get(i + 1).unwrap();
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {text}: {e}"));
            m.insert((*name).to_owned(), v);
        }
        out.insert(id, m);
    }
    out
}

/// `columns` of every row of `{db}.t` by id, as the snapshot reader turns them into JSON.
async fn snapshot_cells(
    c: &mut mysql_async::Conn,
    db: &str,
    columns: &[&str],
) -> BTreeMap<u64, BTreeMap<String, Value>> {
    use sluice_capture::snapshot::value::{cell, Kind};
    let mut kinds = Vec::new();
    for col in columns {
        let (data_type, charset): (String, Option<String>) = c
            .exec_first(
                "SELECT DATA_TYPE, CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't' AND COLUMN_NAME = ?",
                (db, col),
            )
            .await
            .unwrap()
            .unwrap();
        kinds.push(Kind::of(&data_type, charset.as_deref(), None, false));
    }
    let sql = format!("SELECT id, {} FROM {db}.t ORDER BY id", columns.join(", "));
    let rows: Vec<mysql_async::Row> = c.exec(sql, ()).await.unwrap();
    let mut out = BTreeMap::new();
    for mut row in rows {
        let id: u64 = row.get(0).unwrap();
        let mut m = BTreeMap::new();
        for (i, (col, kind)) in columns.iter().zip(&kinds).enumerate() {
            let mut json = Vec::new();
            sluice_event::write_cell(&mut json, &cell(*kind, row.take(i + 1).unwrap()));
            m.insert((*col).to_owned(), serde_json::from_slice(&json).unwrap());
        }
        out.insert(id, m);
    }
    out
}

/// Equal, with FLOAT compared at its 6 significant digits (MySQL prints floats rounded).
fn assert_row_eq(
    got: &serde_json::Map<String, Value>,
    want: &serde_json::Map<String, Value>,
    what: &str,
) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
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

#[tokio::test]
async fn all_types_insert_update_delete_match_select() {
    let db = sluice_integration::unique_name("cap_types");
    let mut c = conn().await;
    c.query_drop("SET time_zone = '+00:00', sql_mode = ''")
        .await
        .unwrap();
    let cols: Vec<String> = ALL_TYPES
        .iter()
        .map(|(n, t, _)| format!("{n} {t}"))
        .collect();
    let t = format!("t (id INT UNSIGNED PRIMARY KEY, {})", cols.join(", "));
    mysql::create_database(&mut c, &db, &[&t]).await;
    let start = end_position(&mut c).await;
    let names: Vec<&str> = ALL_TYPES.iter().map(|(n, _, _)| *n).collect();
    for (id, values) in edge_rows() {
        c.query_drop(format!(
            "INSERT INTO {db}.t (id, {}) VALUES ({id}, {})",
            names.join(", "),
            values.join(", ")
        ))
        .await
        .unwrap();
    }
    let inserted = expected_rows(&mut c, &db).await;
    let snapshot = snapshot_cells(&mut c, &db, &["uu", "ip4", "ip6"]).await;
    c.query_drop(format!("UPDATE {db}.t SET vc = CONCAT('v2-', IFNULL(vc, '')), d10 = 7.5, st = 'b', js = '{{\"k\":[1,2]}}', uu = '6ccd780c-baba-1026-9564-5b8c656024db', ip4 = '255.255.255.255', ip6 = IF(id = 1, '::1', '2001:db8::ff00:42:8329') WHERE id IN (1, 3)"))
        .await
        .unwrap();
    let updated = expected_rows(&mut c, &db).await;
    c.query_drop(format!("DELETE FROM {db}.t")).await.unwrap();

    let cfg = config(&db, &state_dir(&db));
    let events = events_of(
        sluice_capture::run::collect(&cfg, start).await.unwrap(),
        &db,
    );
    let kinds: Vec<EventType> = events.iter().map(|e| e.kind).collect();
    use EventType::*;
    assert_eq!(
        kinds,
        [Insert, Insert, Insert, Update, Update, Delete, Delete, Delete]
    );
    for e in &events[0..3] {
        let id = e.data["id"].as_u64().unwrap();
        assert_row_eq(&e.data, &inserted[&id], &format!("INSERT id={id}"));
        assert_eq!(e.pk, vec!["id".to_owned()]);
        assert_eq!(e.key(), format!("[\"{db}\",\"t\",{id}]").into_bytes());
    }
    // Read as the snapshot reads rows (a prepared SELECT, each column's kind from
    // information_schema), UUID and INET values are the binlog's text.
    for e in &events[0..3] {
        let id = e.data["id"].as_u64().unwrap();
        for (col, v) in &snapshot[&id] {
            assert_eq!(&e.data[col], v, "snapshot and binlog of id={id}.{col}");
        }
    }
    for e in &events[3..5] {
        let id = e.data["id"].as_u64().unwrap();
        assert_row_eq(&e.data, &updated[&id], &format!("UPDATE id={id}"));
        let old = e.old.as_ref().unwrap();
        let changed: Vec<&String> = updated[&id]
            .keys()
            .filter(|k| updated[&id][*k] != inserted[&id][*k])
            .collect();
        assert_eq!(
            old.keys().collect::<Vec<_>>(),
            changed,
            "UPDATE id={id}: old has exactly the changed columns"
        );
        for k in old.keys() {
            assert_eq!(old[k], inserted[&id][k], "old.{k}");
        }
    }
    for e in &events[5..] {
        let id = e.data["id"].as_u64().unwrap();
        assert_row_eq(&e.data, &updated[&id], &format!("DELETE id={id}"));
    }
    assert!(
        events.windows(2).all(|w| w[0].seq < w[1].seq),
        "seq strictly increasing"
    );
    c.query_drop(format!("DROP DATABASE {db}")).await.unwrap();
}

#[tokio::test]
async fn ddl_mid_stream_decodes_before_and_after() {
    let db = sluice_integration::unique_name("cap_ddl");
    let mut c = conn().await;
    let t = "t (id INT PRIMARY KEY, a VARCHAR(10), b INT)";
    mysql::create_database(&mut c, &db, &[t]).await;
    let start = end_position(&mut c).await;
    let statements = [
        "INSERT INTO {db}.t VALUES (1, 'x', 10)",
        "ALTER TABLE {db}.t ADD COLUMN c DECIMAL(6,2) AFTER a",
        "INSERT INTO {db}.t VALUES (2, 'y', 1.25, 20)",
        "ALTER TABLE {db}.t DROP COLUMN b",
        "INSERT INTO {db}.t VALUES (3, 'z', 2.50)",
        "ALTER TABLE {db}.t RENAME COLUMN a TO name",
        "UPDATE {db}.t SET name = 'zz' WHERE id = 3",
        "CREATE TABLE {db}.u (k VARCHAR(5) PRIMARY KEY, v JSON)",
        "INSERT INTO {db}.u VALUES ('k1', '[1]')",
    ];
    mysql::exec_all(&mut c, statements.map(|sql| sql.replace("{db}", &db))).await;
    let mut cfg = config(&db, &state_dir(&db));
    cfg.filter.ddl = true;
    let events = events_of(
        sluice_capture::run::collect(&cfg, start).await.unwrap(),
        &db,
    );
    let summary: Vec<String> = events
        .iter()
        .map(|e| match e.kind {
            EventType::Ddl => format!("DDL {}", e.table),
            k => format!("{k} {}", Value::Object(e.data.clone())),
        })
        .collect();
    assert_eq!(
        summary,
        [
            r#"INSERT {"id":1,"a":"x","b":10}"#.to_owned(),
            "DDL t".into(),
            r#"INSERT {"id":2,"a":"y","c":"1.25","b":20}"#.into(),
            "DDL t".into(),
            r#"INSERT {"id":3,"a":"z","c":"2.50"}"#.into(),
            "DDL t".into(),
            r#"UPDATE {"id":3,"name":"zz","c":"2.50"}"#.into(),
            "DDL u".into(),
            r#"INSERT {"k":"k1","v":[1]}"#.into(),
        ]
    );
    assert!(events[1].sql.as_deref().unwrap().contains("ADD COLUMN c"));
    c.query_drop(format!("DROP DATABASE {db}")).await.unwrap();
}

/// `[filter.mask]`: clear values of masked columns never leave the capture, in `data` or `old`.
#[tokio::test]
async fn masked_columns_leave_the_capture_hashed_or_masked() {
    let db = sluice_integration::unique_name("cap_mask");
    let mut c = conn().await;
    let t = "users (id INT PRIMARY KEY, email VARCHAR(64), phone VARCHAR(20), note TEXT)";
    mysql::create_database(&mut c, &db, &[t]).await;
    let start = end_position(&mut c).await;
    let statements = [
        "INSERT INTO {db}.users VALUES (1, 'ann@example.com', '13812345678', 'vip')",
        "UPDATE {db}.users SET email = 'ann@new.example', phone = '13900001111' WHERE id = 1",
        "DELETE FROM {db}.users WHERE id = 1",
    ];
    mysql::exec_all(&mut c, statements.map(|sql| sql.replace("{db}", &db))).await;
    let mut cfg = config(&db, &state_dir(&db));
    let spec = |kind: &str, key: Option<&str>, keep: (usize, usize)| sluice_rules::ConvertConfig {
        kind: kind.to_owned(),
        key: key.map(sluice_config::Secret::new),
        keep_first: Some(keep.0),
        keep_last: Some(keep.1),
        ..Default::default()
    };
    cfg.filter.mask.insert(
        format!("{db}.users"),
        [
            ("email".to_owned(), spec("hash", Some("test-key"), (0, 0))),
            ("phone".to_owned(), spec("mask", None, (3, 2))),
            ("note".to_owned(), spec("null", None, (0, 0))),
        ]
        .into(),
    );
    let outputs = sluice_capture::run::collect(&cfg, start).await.unwrap();
    let events = events_of(outputs, &db);
    let hash = |v: &str| sluice_rules::Masking::Hash(b"test-key".to_vec()).apply(&Value::from(v));
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].data["email"], hash("ann@example.com"));
    assert_eq!(events[0].data["phone"], Value::from("138******78"));
    assert_eq!(events[0].data["note"], Value::Null);
    assert_eq!(events[1].data["email"], hash("ann@new.example"));
    let old = events[1].old.as_ref().unwrap();
    assert_eq!(old["email"], hash("ann@example.com"));
    assert_eq!(old["phone"], Value::from("138******78"));
    assert!(
        !old.contains_key("note"),
        "an unchanged column stays out of old"
    );
    assert_eq!(events[2].data["phone"], Value::from("139******11"));
    let all: String = events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.encode()).into_owned())
        .collect();
    for clear in ["ann@", "13812345678", "13900001111", "vip"] {
        assert!(!all.contains(clear), "{clear} left the capture: {all}");
    }
    c.query_drop(format!("DROP DATABASE {db}")).await.unwrap();
}
