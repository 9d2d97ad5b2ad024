//! Debezium messages (fixtures in tests/fixtures/debezium) read as the Sluice events
//! sluice-capture writes for the same rows (docs/event-format.md, docs/formats.md).

use serde_json::{json, Value};
use sluice_formats::{decode, Format};

/// The value bytes of a fixture `{"key":…,"value":…}`.
fn value_of(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/debezium/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let fixture: Value = serde_json::from_str(&text).expect("fixtures are JSON");
    serde_json::to_vec(&fixture["value"]).expect("a JSON value serialises")
}

fn events(name: &str) -> Vec<Value> {
    decode(Format::Debezium, &value_of(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .iter()
        .map(|e| serde_json::from_slice(&e.encode()).expect("events are JSON"))
        .collect()
}

#[test]
fn update_with_schema_converts_every_encoding() {
    let expected = json!({
        "v": 1, "seq": (3_i64 << 32) | 4711, "source": "binlog", "instance": "shop",
        "database": "shop", "table": "orders", "type": "UPDATE",
        "ts_ms": 1763716502000_i64, "capture_ms": 1763716502013_i64,
        "pos": {"file": "mysql-bin.000003", "offset": 4711, "row": 0, "gtid": "0-1-42"},
        "txn_last": false, "pk": [],
        "data": {
            "id": 7, "price": "-0.50", "d": "2025-11-21", "dt": "2025-11-21T09:15:02.123456",
            "dt0": "2025-11-21T09:15:02.250", "ts": "0000-00-00T00:00:00.000Z", "t": "01:02:03",
            "y": 2026, "b": 11, "b1": 0, "status": "paid", "colors": [],
            "j": {"tags": ["a", "b"]}, "bin": "AAECAP8=",
            "g": {"srid": 0, "wkb": "AQEAAAAAAAAAAADwPwAAAAAAAABA"},
            "big": 18446744073709551615_u64, "note": "naïve 🌊"
        },
        "old": {
            "price": "12.30", "dt0": "2025-11-21T09:15:02", "ts": "2025-11-21T09:15:02.100Z",
            "t": "-838:59:59", "b1": 1, "status": "new", "colors": ["red", "blue"]
        }
    });
    assert_eq!(events("hand-update-schema.json"), vec![expected]);
}

#[test]
fn without_schema_values_stay_as_written() {
    let [event] = &events("hand-keychange-noschema.json")[..] else {
        panic!("one event expected")
    };
    // Without the key no column is known to be the key: a plain UPDATE.
    assert_eq!(event["type"], "UPDATE");
    assert_eq!(
        event["data"],
        json!({"id": 8, "price": "12.30", "note": "x"})
    );
    assert_eq!(event["old"], json!({"id": 7}));
    assert_eq!(event["seq"], json!((3_i64 << 32) | 5002));
    assert_eq!(event["pos"]["row"], 2);
}

#[test]
fn snapshot_rows_and_deletes() {
    let snapshot = &events("hand-snapshot-noschema.json")[0];
    assert_eq!(snapshot["source"], "snapshot");
    assert_eq!(snapshot["type"], "INSERT");
    assert_eq!(snapshot["data"], json!({"id": 9, "price": "1.00", "b1": 1}));
    assert!(snapshot.get("pos").unwrap().get("gtid").is_none());
    let delete = &events("hand-delete-noschema.json")[0];
    assert_eq!(delete["type"], "DELETE");
    assert_eq!(delete["source"], "binlog");
    assert_eq!(delete["data"], json!({"id": 9, "price": "1.00", "b1": 1}));
    // The snapshot's position is before every change streamed after it.
    assert!(snapshot["seq"].as_i64() < delete["seq"].as_i64());
}

#[test]
fn tombstones_and_heartbeats_give_no_events() {
    for body in [
        &b""[..],
        b"  ",
        b"null",
        br#"{"schema":{"type":"struct"},"payload":null}"#,
        br#"{"ts_ms":1}"#,
    ] {
        assert_eq!(decode(Format::Debezium, body), Ok(vec![]), "{body:?}");
    }
}

#[test]
fn truncate_and_broken_messages_are_refused_with_a_reason() {
    let truncate = br#"{"before":null,"after":null,"source":{"name":"shop","db":"shop","table":"orders","file":"b.000001","pos":4,"ts_ms":1},"op":"t","ts_ms":2}"#;
    let e = decode(Format::Debezium, truncate).unwrap_err();
    assert!(e.reason.contains("TRUNCATE of shop.orders"), "{e}");
    for (body, says) in [
        (&b"{"[..], "not JSON"),
        (b"[1]", "not Debezium's envelope"),
        (br#"{"id":1,"name":"x"}"#, "no `op`"),
        (br#"{"op":"x","source":{}}"#, "unknown op"),
        (br#"{"op":"c","after":{"id":1}}"#, "no `source`"),
        (br#"{"op":"c","after":{"id":1},"source":{"name":"s","db":"d","table":"t","file":"nofile","pos":4,"ts_ms":1}}"#, "binlog file number"),
        (br#"{"op":"c","after":null,"source":{"name":"s","db":"d","table":"t","file":"b.1","pos":4,"ts_ms":1}}"#, "without `after`"),
    ] {
        let e = decode(Format::Debezium, body).unwrap_err();
        assert!(e.reason.contains(says), "{e} should say {says}");
        assert_eq!(e.format, "debezium");
    }
}

#[test]
fn no_input_panics() {
    let base = value_of("hand-update-schema.json");
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    // Every prefix, and every byte flipped, of a full message.
    for i in 0..base.len() {
        inputs.push(base[..i].to_vec());
        let mut flipped = base.clone();
        flipped[i] ^= 0x20;
        inputs.push(flipped);
    }
    // Each column value replaced by values of other types.
    let v: Value = serde_json::from_slice(&base).unwrap();
    let odd = [
        json!(null),
        json!(-1),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1e300),
        json!("x"),
        json!("////"),
        json!(""),
        json!([]),
        json!({}),
        json!(true),
        json!("9999-99-99T99:99:99Z"),
        json!("/////////////////////w=="),
        json!({"wkb": 1}),
    ];
    for col in v["payload"]["after"].as_object().unwrap().keys() {
        for o in &odd {
            let mut m = v.clone();
            m["payload"]["after"][col] = o.clone();
            inputs.push(serde_json::to_vec(&m).unwrap());
        }
    }
    for field in ["op", "source", "before", "after", "ts_ms"] {
        for o in &odd {
            let mut m = v.clone();
            m["payload"][field] = o.clone();
            inputs.push(serde_json::to_vec(&m).unwrap());
        }
    }
    for input in &inputs {
        let _ = decode(Format::Debezium, input);
    }
}

/// Each record of a `{"key":…,"value":…}` lines file decoded on its value.
fn real(name: &str) -> Vec<Vec<Value>> {
    let path = format!(
        "{}/tests/fixtures/debezium/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).expect("fixture lines are JSON");
            let value = match &record["value"] {
                Value::Null => Vec::new(),
                v => serde_json::to_vec(v).expect("a JSON value serialises"),
            };
            decode(Format::Debezium, &value)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .iter()
                .map(|e| serde_json::from_slice(&e.encode()).expect("events are JSON"))
                .collect()
        })
        .collect()
}

#[test]
// The values the fixture was written with, not approximations of π and e.
#[allow(clippy::approx_constant)]
fn real_debezium_with_schemas_reads_as_sluice_capture_writes() {
    // Captured by formats/tests/debezium-capture/capture.sh true precise: an INSERT of every
    // column type, an UPDATE, a key change (Debezium itself sends DELETE, tombstone, INSERT) and a
    // DELETE with its tombstone.
    let records = real("real-schemas-precise.jsonl");
    let kinds: Vec<Vec<&str>> = records
        .iter()
        .map(|r| r.iter().map(|e| e["type"].as_str().unwrap()).collect())
        .collect();
    assert_eq!(
        kinds,
        [
            vec!["INSERT"],
            vec!["UPDATE"],
            vec!["DELETE"],
            vec![],
            vec!["INSERT"],
            vec!["DELETE"],
            vec![]
        ]
    );
    let insert = &records[0][0];
    // What sluice-capture writes for the row, except `j`: MariaDB's JSON is LONGTEXT to
    // Debezium, so it arrives as text (docs/formats.md).
    assert_eq!(
        insert["data"],
        json!({
            "id": 1, "dec_c": "-12.30", "d": "2026-11-21", "dt": "2026-11-21T09:15:02.123456",
            "dt0": "2026-11-21T09:15:02", "dt3": "2026-11-21T09:15:02.000",
            "ts": "2026-11-21T09:15:02.120Z", "t": "-838:59:59.000000", "y": 2026, "b": 11, "b1": 1,
            "e": "paid", "s": ["red", "blue"], "j": "{\"tags\": [\"a\", \"b\"], \"n\": 1.50}",
            "bin": "AAEC", "g": {"srid": 0, "wkb": "AQEAAAAAAAAAAADwPwAAAAAAAABA"},
            "big": 18446744073709551615_u64, "f": 3.14, "dbl": 2.718281828459045, "txt": "naïve 🌊"
        })
    );
    assert_eq!(
        insert["pos"],
        json!({"file": "binlog.000007", "offset": 3277, "row": 0, "gtid": "0-1-546720"})
    );
    assert_eq!(insert["seq"], json!((7_i64 << 32) | 3277));
    assert_eq!(
        records[1][0]["old"],
        json!({"dec_c": "-12.30", "e": "paid", "s": ["red", "blue"]})
    );
    assert_eq!(records[1][0]["data"]["dec_c"], "0.01");
    let seqs: Vec<i64> = records
        .iter()
        .flatten()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "{seqs:?}");
}

#[test]
fn real_debezium_without_schemas_keeps_what_it_cannot_know() {
    // capture.sh false string: the same rows, no schema, DECIMAL as text.
    let records = real("real-noschemas-string.jsonl");
    let insert = &records[0][0];
    assert_eq!(insert["type"], "INSERT");
    // Known from the value alone: DECIMAL text, booleans, strings, floats.
    assert_eq!(insert["data"]["dec_c"], "-12.30");
    assert_eq!(insert["data"]["b1"], 1);
    assert_eq!(insert["data"]["txt"], "naïve 🌊");
    // Not known without the schema: the date stays Debezium's epoch days.
    assert_eq!(insert["data"]["d"], 20778);
    assert_eq!(records.iter().map(Vec::len).sum::<usize>(), 5);
}
