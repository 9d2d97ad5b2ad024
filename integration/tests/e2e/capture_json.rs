//! End-to-end: the capture's direct JSON writer (what `run` publishes and `tail` prints) gives
//! the same bytes and keys as the `ChangeEvent` path, for real MariaDB binlog rows of every
//! kind of value, and MariaDB's JSON text arrives compacted with its value unchanged.

use mysql_async::prelude::Queryable;
use serde_json::Value;
use sluice_capture::config::{CaptureConfig, StartAt};
use sluice_capture::decoder::Output;
use sluice_event::{ChangeEvent, EventType};
use sluice_integration::capture::CaptureToml;

fn config(instance: &str) -> CaptureConfig {
    let state = std::env::temp_dir().join(instance);
    CaptureToml::new(instance, &state).parse()
}

#[tokio::test]
async fn direct_json_equals_change_event_json_for_real_rows() {
    let db = sluice_integration::unique_name("cap_json");
    let mut c = mysql_async::Conn::new(
        mysql_async::Opts::from_url(&sluice_integration::mysql_url()).unwrap(),
    )
    .await
    .unwrap();
    c.query_drop("SET time_zone = '+00:00', sql_mode = ''")
        .await
        .unwrap();
    c.query_drop(format!("CREATE DATABASE {db}")).await.unwrap();
    c.query_drop(format!(
        "CREATE TABLE {db}.t (id BIGINT UNSIGNED, region VARCHAR(8), amount DECIMAL(12,2), \
         f FLOAT, d DOUBLE, note TEXT, bin VARBINARY(16), ts TIMESTAMP(3) NULL, tm TIME(2), \
         en ENUM('a','b'), st SET('x','y'), bits BIT(12), js JSON, geo GEOMETRY, \
         PRIMARY KEY (id, region))"
    ))
    .await
    .unwrap();
    let start: mysql_async::Row = c.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
    let start = StartAt::File {
        file: start.get(0).unwrap(),
        pos: start.get(1).unwrap(),
    };
    // JSON as MariaDB stores it: as written, whitespace and all.
    let docs = [
        r#"{"sku": "A-1", "qty": 1, "tags": ["x", "y"]}"#,
        "  [ 1.50 , -0, 2e3, 12345678901234567890123, \"\\u00e9\\/\\n\" , {} , [ ] , null ]  ",
        r#"{"a" : {"b" : {"c" : [true, false]}}, "a" : 2}"#,
        r#""just a string""#,
        "1e400",
    ];
    for (i, doc) in docs.iter().enumerate() {
        c.exec_drop(
            format!(
                "INSERT INTO {db}.t VALUES (?, ?, -12.30, 1.1, 2.718281828459045, ?, x'00ff10', \
                 '2026-11-21 09:15:02.123', '-01:02:03.45', 'b', 'x,y', b'101', ?, \
                 ST_GeomFromText('POINT(1 2)'))"
            ),
            (
                i as u64 + 1,
                "eu\"\\",
                format!("naïve 🌊 \"quoted\"\n\t{}", char::from(1)),
                *doc,
            ),
        )
        .await
        .unwrap();
    }
    c.query_drop(format!(
        "INSERT INTO {db}.t (id, region) VALUES (18446744073709551615, '')"
    ))
    .await
    .unwrap();
    c.query_drop(format!(
        "UPDATE {db}.t SET note = 'changed', js = JSON_OBJECT('k', 1) WHERE id = 1"
    ))
    .await
    .unwrap();
    c.query_drop(format!("UPDATE {db}.t SET region = 'us' WHERE id = 2"))
        .await
        .unwrap();
    c.query_drop(format!("DELETE FROM {db}.t WHERE id = 3"))
        .await
        .unwrap();

    let outputs = sluice_capture::run::collect_raw(&config(&db), start)
        .await
        .unwrap();
    let rows: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Row(r) if r.database() == db => Some(r),
            _ => None,
        })
        .collect();
    let kinds: Vec<EventType> = rows.iter().map(|r| r.kind).collect();
    use EventType::*;
    assert_eq!(
        kinds,
        [Insert, Insert, Insert, Insert, Insert, Insert, Update, Delete, Insert, Delete]
    );
    for r in &rows {
        let mut direct = Vec::new();
        r.write_json(&mut direct);
        let via_serde = r.to_change_event();
        // The same JSON value always; the same bytes too, except where MariaDB's JSON text
        // has what a serde round trip rewrites: numbers and escapes as written (row 2: `1.50`
        // stays `1.50`), a repeated key (row 3: kept, where serde keeps the last value only).
        assert_eq!(
            serde_json::from_slice::<Value>(&direct).unwrap(),
            serde_json::from_slice::<Value>(&via_serde.encode()).unwrap()
        );
        if via_serde.data["id"] != 2 && via_serde.data["id"] != 3 {
            assert_eq!(
                String::from_utf8(direct.clone()).unwrap(),
                String::from_utf8(via_serde.encode()).unwrap()
            );
        }
        assert_eq!(r.key(), via_serde.key());
        assert_eq!(ChangeEvent::decode(&direct).unwrap(), via_serde);
    }
    // MariaDB's JSON text: compacted, numbers and escapes as written; what no strict parser
    // reads (1e400) is left to the parser, which refuses it, so it stays a string.
    let js = |i: usize| -> String {
        let ev = ChangeEvent::decode(&{
            let mut b = Vec::new();
            rows[i].write_json(&mut b);
            b
        })
        .unwrap();
        ev.data["js"].to_string()
    };
    assert_eq!(js(0), r#"{"sku":"A-1","qty":1,"tags":["x","y"]}"#);
    let mut raw = Vec::new();
    rows[1].write_json(&mut raw);
    let raw = String::from_utf8(raw).unwrap();
    assert!(
        raw.contains(r#""js":[1.50,-0,2e3,12345678901234567890123,"\u00e9\/\n",{},[],null]"#),
        "{raw}"
    );
    let mut dup = Vec::new();
    rows[2].write_json(&mut dup);
    let dup = String::from_utf8(dup).unwrap();
    assert!(
        dup.contains(r#""js":{"a":{"b":{"c":[true,false]}},"a":2}"#),
        "{dup}"
    );
    assert_eq!(js(3), r#""just a string""#);
    assert_eq!(js(4), r#""1e400""#);
    assert_eq!(
        ChangeEvent::decode(raw.as_bytes()).unwrap().data["js"][4],
        Value::String("é/\n".into())
    );
}
