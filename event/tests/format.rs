//! The event contract seen from outside: round trips and the exact JSON of each column type.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{json, Value};
use sluice_event::{
    compact_json, decode_key, write_json, write_key, Cell, ChangeEvent, DecodeError, EventHead,
    EventType, Position, Row, Source,
};

fn cell_strategy() -> impl Strategy<Value = Cell> {
    prop_oneof![
        Just(Cell::Null),
        any::<i64>().prop_map(Cell::Int),
        any::<u64>().prop_map(Cell::UInt),
        (any::<i64>(), 0u32..10).prop_map(|(m, scale)| {
            let digits = m.unsigned_abs().to_string();
            let scale = scale as usize;
            let padded = format!("{digits:0>width$}", width = scale + 1);
            let (int, frac) = padded.split_at(padded.len() - scale);
            let sign = if m < 0 { "-" } else { "" };
            Cell::Decimal(if scale == 0 {
                format!("{sign}{int}")
            } else {
                format!("{sign}{int}.{frac}")
            })
        }),
        any::<f32>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Cell::Float),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Cell::Double),
        (0u16..=9999, 0u8..=12, 0u8..=31).prop_map(|(year, month, day)| Cell::Date {
            year,
            month,
            day
        }),
        (
            0u16..=9999,
            1u8..=12,
            1u8..=28,
            0u8..24,
            0u8..60,
            0u8..60,
            0u32..1_000_000,
            0u8..=6
        )
            .prop_map(|(year, month, day, hour, minute, second, micros, fsp)| {
                Cell::DateTime {
                    year,
                    month,
                    day,
                    hour,
                    minute,
                    second,
                    micros,
                    fsp,
                }
            }),
        (0i64..=2_147_483_647, 0u32..1_000_000, 0u8..=6)
            .prop_map(|(secs, micros, fsp)| Cell::Timestamp { secs, micros, fsp }),
        (
            any::<bool>(),
            0u32..=838,
            0u8..60,
            0u8..60,
            0u32..1_000_000,
            0u8..=6
        )
            .prop_map(
                |(negative, hours, minutes, seconds, micros, fsp)| Cell::Time {
                    negative,
                    hours,
                    minutes,
                    seconds,
                    micros,
                    fsp
                }
            ),
        (1901u16..=2155).prop_map(Cell::Year),
        ".*".prop_map(Cell::Text),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Cell::Bytes),
        "[a-z]{1,8}".prop_map(Cell::Enum),
        proptest::collection::vec("[a-z]{1,5}", 0..5).prop_map(Cell::Set),
        any::<u64>().prop_map(Cell::Bit),
        json_strategy().prop_map(Cell::Json),
        json_strategy().prop_map(|v| Cell::JsonText(serde_json::to_string(&v).unwrap())),
        (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..30))
            .prop_map(|(srid, wkb)| Cell::Geometry { srid, wkb }),
    ]
}

fn json_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn row_strategy() -> impl Strategy<Value = Row> {
    proptest::collection::vec(("[a-z_][a-z0-9_]{0,10}", cell_strategy()), 1..8).prop_map(|cols| {
        let mut row = Row::new();
        for (name, cell) in cols {
            row.insert(name, cell.to_json());
        }
        row
    })
}

prop_compose! {
    fn event_strategy()(
        seq in any::<i64>(),
        snapshot in any::<bool>(),
        instance in "[a-z][a-z0-9-]{0,12}",
        database in "\\PC{1,12}",
        table in "\\PC{1,12}",
        kind in prop_oneof![Just(EventType::Insert), Just(EventType::Update), Just(EventType::Delete)],
        ts_ms in 0i64..4_000_000_000_000,
        lag in 0i64..100_000,
        file in "binlog\\.[0-9]{6}",
        offset in any::<u64>(),
        row_index in any::<u32>(),
        gtid in proptest::option::of("[0-9]{1,3}-[0-9]{1,3}-[0-9]{1,9}"),
        xid in proptest::option::of(any::<u64>()),
        txn_last in any::<bool>(),
        data in row_strategy(),
        old in row_strategy(),
    ) -> ChangeEvent {
        let pk = data.keys().take(1).cloned().collect();
        ChangeEvent {
            v: 1,
            seq,
            source: if snapshot { Source::Snapshot } else { Source::Binlog },
            instance,
            database,
            table,
            kind,
            ts_ms,
            capture_ms: ts_ms + lag,
            pos: Position { file, offset, row: row_index, gtid },
            xid,
            txn_last,
            pk,
            data,
            old: (kind == EventType::Update).then_some(old),
            sql: None,
        }
    }
}

proptest! {
    #[test]
    fn value_round_trips(event in event_strategy()) {
        let bytes = event.encode();
        prop_assert!(std::str::from_utf8(&bytes).is_ok());
        let back = ChangeEvent::decode(&bytes).unwrap();
        prop_assert_eq!(back, event);
    }

    #[test]
    fn key_round_trips(event in event_strategy()) {
        let (db, table, pk) = decode_key(&event.key()).unwrap();
        prop_assert_eq!(db, event.database.clone());
        prop_assert_eq!(table, event.table.clone());
        let want: Vec<Value> = event.pk.iter().map(|c| event.data[c].clone()).collect();
        prop_assert_eq!(pk, want);
    }

    #[test]
    fn decode_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = ChangeEvent::decode(&bytes);
        let _ = decode_key(&bytes);
    }
}

/// Columns with distinct names (any printable text, so names need escaping too), in order.
fn cells_strategy() -> impl Strategy<Value = Vec<(String, Cell)>> {
    proptest::collection::vec(
        (
            prop_oneof!["[a-z_][a-z0-9_]{0,10}", "\\PC{1,6}"],
            cell_strategy(),
        ),
        0..8,
    )
    .prop_map(|mut cols| {
        let mut seen = std::collections::HashSet::new();
        cols.retain(|(name, _)| seen.insert(name.clone()));
        cols
    })
}

fn to_row(cells: &[(String, Cell)]) -> Row {
    cells
        .iter()
        .map(|(n, c)| (n.clone(), c.to_json()))
        .collect()
}

fn pairs(cells: &[(String, Cell)]) -> impl Iterator<Item = (&str, &Cell)> {
    cells.iter().map(|(n, c)| (n.as_str(), c))
}

proptest! {
    /// The direct writer and ChangeEvent's serde path give the same bytes, key included.
    #[test]
    fn direct_writer_matches_change_event(
        mut event in event_strategy(),
        data in cells_strategy(),
        old in cells_strategy(),
        sql in proptest::option::of("\\PC{0,20}"),
    ) {
        event.data = to_row(&data);
        event.old = (event.kind == EventType::Update).then(|| to_row(&old));
        event.pk = data.iter().take(2).map(|(n, _)| n.clone()).chain(["missing".to_owned()]).collect();
        event.sql = sql;
        let head = EventHead {
            seq: event.seq,
            source: event.source,
            instance: &event.instance,
            database: &event.database,
            table: &event.table,
            kind: event.kind,
            ts_ms: event.ts_ms,
            capture_ms: event.capture_ms,
            file: &event.pos.file,
            offset: event.pos.offset,
            row: event.pos.row,
            gtid: event.pos.gtid.as_deref(),
            xid: event.xid,
            txn_last: event.txn_last,
            pk: &event.pk,
            sql: event.sql.as_deref(),
        };
        let mut direct = Vec::new();
        write_json(&mut direct, &head, pairs(&data), event.old.as_ref().map(|_| pairs(&old)));
        prop_assert_eq!(String::from_utf8(direct).unwrap(), String::from_utf8(event.encode()).unwrap());
        let mut key = Vec::new();
        write_key(
            &mut key,
            &event.database,
            &event.table,
            event.pk.iter().map(|p| data.iter().find(|(n, _)| n == p).map(|(_, c)| c)),
        );
        prop_assert_eq!(key, event.key());
    }

    /// Pretty-printed JSON compacts to exactly what serde_json prints for the same value.
    #[test]
    fn compact_json_equals_serde_compact(v in json_strategy()) {
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        prop_assert_eq!(compact_json(pretty.as_bytes()), Some(serde_json::to_string(&v).unwrap()));
    }

    /// compact_json accepts exactly the texts serde_json reads, and keeps their value.
    #[test]
    fn compact_json_accepts_what_serde_json_reads(text in "[\\[\\]{}\":, 0-9.eE+\\-a-z\\\\\t\n]{0,24}") {
        let parsed = serde_json::from_str::<Value>(&text);
        match compact_json(text.as_bytes()) {
            Some(c) => {
                prop_assert_eq!(serde_json::from_str::<Value>(&c).unwrap(), parsed.unwrap());
            }
            None => prop_assert!(parsed.is_err(), "refused {:?}", text),
        }
    }
}

/// The example event of the design document, field for field.
fn sample(cell: Cell) -> ChangeEvent {
    let mut data = Row::new();
    data.insert("id".into(), json!(7));
    data.insert("value".into(), cell.to_json());
    ChangeEvent {
        v: 1,
        seq: 1_892_834_711_231_234_048,
        source: Source::Binlog,
        instance: "shop-main".into(),
        database: "shop".into(),
        table: "orders".into(),
        kind: EventType::Insert,
        ts_ms: 1_763_716_502_000,
        capture_ms: 1_763_716_502_013,
        pos: Position {
            file: "binlog.000003".into(),
            offset: 4711,
            row: 0,
            gtid: Some("0-1-42".into()),
        },
        xid: Some(9876),
        txn_last: true,
        pk: vec!["id".into()],
        data,
        old: None,
        sql: None,
    }
}

fn snapshot_json(event: &ChangeEvent) -> String {
    String::from_utf8(event.encode()).unwrap()
}

#[test]
fn one_event_per_column_type() {
    let cases: Vec<(&str, Cell)> = vec![
        ("null", Cell::Null),
        ("int_signed_min", Cell::Int(-9_223_372_036_854_775_808)),
        ("int_unsigned_max", Cell::UInt(18_446_744_073_709_551_615)),
        (
            "decimal",
            Cell::Decimal(
                "-12345678901234567890123456789012345.123456789012345678901234567890".into(),
            ),
        ),
        ("float", Cell::Float(2.5e-3)),
        ("double", Cell::Double(1_234.000_000_001)),
        (
            "date",
            Cell::Date {
                year: 2026,
                month: 11,
                day: 21,
            },
        ),
        (
            "date_zero",
            Cell::Date {
                year: 0,
                month: 0,
                day: 0,
            },
        ),
        (
            "datetime_6",
            Cell::DateTime {
                year: 2026,
                month: 11,
                day: 21,
                hour: 9,
                minute: 15,
                second: 2,
                micros: 123_456,
                fsp: 6,
            },
        ),
        (
            "datetime_0",
            Cell::DateTime {
                year: 2026,
                month: 11,
                day: 21,
                hour: 9,
                minute: 15,
                second: 2,
                micros: 0,
                fsp: 0,
            },
        ),
        (
            "timestamp_3",
            Cell::Timestamp {
                secs: 1_763_716_502,
                micros: 123_000,
                fsp: 3,
            },
        ),
        (
            "time_negative",
            Cell::Time {
                negative: true,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 0,
                fsp: 6,
            },
        ),
        ("year", Cell::Year(2026)),
        ("text", Cell::Text("naïve 🌊 \"quoted\"\n".into())),
        ("binary", Cell::Bytes(vec![0, 1, 2, 0, 255])),
        ("enum", Cell::Enum("paid".into())),
        ("set", Cell::Set(vec!["red".into(), "blue".into()])),
        ("bit", Cell::Bit(0b1011)),
        (
            "json",
            Cell::Json(json!({"tags":["a","b"],"n":1.5,"nested":{"ok":true}})),
        ),
        (
            "geometry",
            Cell::Geometry {
                srid: 0,
                wkb: vec![
                    1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 240, 63, 0, 0, 0, 0, 0, 0, 0, 64,
                ],
            },
        ),
    ];
    for (name, cell) in cases {
        insta::assert_snapshot!(name, snapshot_json(&sample(cell)));
    }
}

#[test]
fn update_and_ddl_shapes() {
    let mut update = sample(Cell::Enum("paid".into()));
    update.kind = EventType::Update;
    let mut old = Row::new();
    old.insert("value".into(), json!("new"));
    update.old = Some(old);
    insta::assert_snapshot!("update", snapshot_json(&update));
    assert_eq!(
        update.headers(),
        [
            ("sluice-seq", "1892834711231234048".to_owned()),
            ("sluice-type", "UPDATE".to_owned()),
            ("sluice-table", "shop.orders".to_owned()),
        ]
    );
    assert_eq!(update.key(), br#"["shop","orders",7]"#.to_vec());

    let mut ddl = sample(Cell::Null);
    ddl.kind = EventType::Ddl;
    ddl.pk.clear();
    ddl.data.clear();
    ddl.xid = None;
    ddl.sql = Some("ALTER TABLE orders ADD COLUMN note TEXT".into());
    insta::assert_snapshot!("ddl", snapshot_json(&ddl));
    assert_eq!(ddl.key(), br#"["shop","orders"]"#.to_vec());
}

#[test]
fn decode_errors_say_what_to_do() {
    let v2 = br#"{"v":2,"seq":1}"#;
    match ChangeEvent::decode(v2) {
        Err(e @ DecodeError::UnsupportedVersion { found: 2 }) => assert_eq!(
            e.to_string(),
            "event version 2 is not supported (this build reads v1); upgrade sluice-sink or send v1 events"
        ),
        other => panic!("{other:?}"),
    }
    let mut full: Value = serde_json::from_slice(&sample(Cell::Null).encode()).unwrap();
    full["v"] = json!(3);
    assert!(matches!(
        ChangeEvent::decode(full.to_string().as_bytes()),
        Err(DecodeError::UnsupportedVersion { found: 3 })
    ));
    let err = ChangeEvent::decode(b"{\"v\":1}").unwrap_err().to_string();
    assert!(
        err.starts_with("message is not a Sluice change event: missing field `seq`"),
        "{err}"
    );
    assert!(ChangeEvent::decode(b"").is_err());
    // Unknown fields are ignored, so additive changes within v1 do not break older sinks.
    full["v"] = json!(1);
    full["future_field"] = json!({"x": 1});
    assert!(ChangeEvent::decode(full.to_string().as_bytes()).is_ok());
}
