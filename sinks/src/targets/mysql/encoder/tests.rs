//! Unit tests of the encoder: every column type, key moves, versions, soft deletes and splits.

use super::super::config::TableName;
use super::op::push_key_id;
use super::statement::push_literal;
use super::*;
use base64::Engine as _;
use serde_json::{json, Value};
use sluice_event::{EventType, Row};
use sluice_rules::Mapped;
use std::borrow::Cow;

fn rule(soft: Option<&str>, version: Option<&str>) -> MysqlRule {
    MysqlRule {
        name: "r".into(),
        database: None,
        table: TableName::Fixed("t".into()),
        key: None,
        soft_delete: soft.map(Into::into),
        version_column: version.map(Into::into),
    }
}

fn meta() -> TableMeta {
    use ColumnKind::*;
    TableMeta::new(
        "db",
        "t",
        vec![
            ("id".into(), Integer),
            ("name".into(), Other),
            ("bin".into(), Binary),
            ("at".into(), DateTime),
            ("doc".into(), Json),
            ("geo".into(), Geometry),
            ("tags".into(), Other),
            ("deleted_at".into(), DateTime),
            ("gone".into(), Integer),
            ("version".into(), Integer),
        ],
        vec!["id".into()],
    )
}

fn row(v: Value) -> Row {
    v.as_object().cloned().unwrap_or_default()
}

fn mapped(kind: EventType, seq: i64, doc: Value, old: Option<Value>) -> Mapped {
    Mapped {
        kind,
        seq,
        id: String::new(),
        doc: row(doc),
        old_doc: old.map(row),
        changed: Vec::new(),
    }
}

fn key() -> Vec<String> {
    vec!["id".into()]
}

fn sql_of(r: &MysqlRule, items: &[Mapped]) -> Vec<(String, Vec<SqlValue<'static>>)> {
    let all: Vec<Op> = items
        .iter()
        .flat_map(|m| ops(r, &meta(), &key(), m).unwrap())
        .collect();
    let refs: Vec<&Op> = all.iter().collect();
    plan(r, &meta(), &key(), &refs)
        .into_iter()
        .map(|s| (s.sql, s.args.iter().map(|v| owned(v)).collect()))
        .collect()
}

fn owned(v: &SqlValue<'_>) -> SqlValue<'static> {
    match v {
        SqlValue::Null => SqlValue::Null,
        SqlValue::Int(i) => SqlValue::Int(*i),
        SqlValue::UInt(u) => SqlValue::UInt(*u),
        SqlValue::Float(f) => SqlValue::Float(*f),
        SqlValue::Text(t) => SqlValue::Text(Cow::Owned(t.to_string())),
        SqlValue::Bytes(b) => SqlValue::Bytes(Cow::Owned(b.to_vec())),
    }
}

#[test]
fn binds_every_column_type() {
    use ColumnKind::*;
    use SqlValue::*;
    let cases: Vec<(ColumnKind, Value, Bound)> = vec![
        (Integer, json!(null), Bound::Value(Null)),
        (
            Integer,
            json!(-9223372036854775808i64),
            Bound::Value(Int(i64::MIN)),
        ),
        (
            Integer,
            json!(18446744073709551615u64),
            Bound::Value(UInt(u64::MAX)),
        ),
        (Other, json!(3.25), Bound::Value(Float(3.25))),
        (Other, json!("12.30"), Bound::Value(Text("12.30".into()))),
        (Other, json!(true), Bound::Value(Int(1))),
        (
            DateTime,
            json!("2026-11-21T09:15:02.123456"),
            Bound::Value(Text("2026-11-21 09:15:02.123456".into())),
        ),
        (
            DateTime,
            json!("2026-11-21T09:15:02.123Z"),
            Bound::Value(Text("2026-11-21 09:15:02.123".into())),
        ),
        (
            DateTime,
            json!("0000-00-00T00:00:00Z"),
            Bound::Value(Text("0000-00-00 00:00:00".into())),
        ),
        (
            Other,
            json!("-838:59:59.000000"),
            Bound::Value(Text("-838:59:59.000000".into())),
        ),
        (
            Binary,
            json!("AAECAP8="),
            Bound::Value(Bytes(vec![0, 1, 2, 0, 255].into())),
        ),
        (
            Other,
            json!(["red", "blue"]),
            Bound::Value(Text("red,blue".into())),
        ),
        (Other, json!([]), Bound::Value(Text("".into()))),
        (
            Json,
            json!({"tags": ["a", "b"]}),
            Bound::Value(Text(r#"{"tags":["a","b"]}"#.into())),
        ),
        (Json, json!("text"), Bound::Value(Text(r#""text""#.into()))),
        (Json, json!(1.5), Bound::Value(Text("1.5".into()))),
        (
            Other,
            json!({"a": 1}),
            Bound::Value(Text(r#"{"a":1}"#.into())),
        ),
        (
            Geometry,
            json!({"srid": 4326, "wkb": "AQEAAAAAAAAAAADwPwAAAAAAAABA"}),
            Bound::Geometry {
                wkb: base64::engine::general_purpose::STANDARD
                    .decode("AQEAAAAAAAAAAADwPwAAAAAAAABA")
                    .unwrap(),
                srid: 4326,
            },
        ),
        (Integer, json!(11), Bound::Value(Int(11))),
    ];
    for (kind, value, want) in cases {
        assert_eq!(bind(kind, &value).unwrap(), want, "{kind:?} {value}");
    }
    let bad = [
        (
            Binary,
            json!("not base64!"),
            "binary column value is not base64",
        ),
        (
            Geometry,
            json!({"srid": 0}),
            "expected {\"srid\":n,\"wkb\":\"<base64>\"}",
        ),
    ];
    for (kind, value, want) in bad {
        let err = bind(kind, &value).unwrap_err();
        assert!(err.starts_with(want), "{err}");
    }
}

#[test]
fn upserts_and_deletes_by_key() {
    let r = rule(None, None);
    let got = sql_of(
        &r,
        &[
            mapped(EventType::Insert, 1, json!({"id": 1, "name": "a"}), None),
            mapped(
                EventType::Update,
                2,
                json!({"id": 2, "name": "b"}),
                Some(json!({"id": 2, "name": "x"})),
            ),
            mapped(EventType::Delete, 3, json!({"id": 3, "name": "c"}), None),
        ],
    );
    assert_eq!(
        got,
        vec![
            ("DELETE FROM `db`.`t` WHERE `id` IN (?)".into(), vec![SqlValue::Int(3)]),
            (
                "INSERT INTO `db`.`t` (`id`,`name`) VALUES (?,?),(?,?) ON DUPLICATE KEY UPDATE `name` = VALUES(`name`)".into(),
                vec![SqlValue::Int(1), SqlValue::Text("a".into()), SqlValue::Int(2), SqlValue::Text("b".into())]
            ),
        ]
    );
}

#[test]
fn last_event_per_key_wins() {
    let r = rule(None, None);
    // insert 1, delete 1, insert 1 again: the row exists with the last values.
    let got = sql_of(
        &r,
        &[
            mapped(EventType::Insert, 1, json!({"id": 1, "name": "a"}), None),
            mapped(EventType::Delete, 2, json!({"id": 1, "name": "a"}), None),
            mapped(EventType::Insert, 3, json!({"id": 1, "name": "b"}), None),
            mapped(EventType::Insert, 4, json!({"id": 2, "name": "c"}), None),
            mapped(EventType::Delete, 5, json!({"id": 2, "name": "c"}), None),
        ],
    );
    assert_eq!(
        got,
        vec![
            ("DELETE FROM `db`.`t` WHERE `id` IN (?)".into(), vec![SqlValue::Int(2)]),
            (
                "INSERT INTO `db`.`t` (`id`,`name`) VALUES (?,?) ON DUPLICATE KEY UPDATE `name` = VALUES(`name`)".into(),
                vec![SqlValue::Int(1), SqlValue::Text("b".into())]
            ),
        ]
    );
}

#[test]
fn update_that_moves_the_key_deletes_the_old_one() {
    let r = rule(None, None);
    let m = mapped(
        EventType::Update,
        9,
        json!({"id": 2, "name": "a"}),
        Some(json!({"id": 1, "name": "a"})),
    );
    let got = ops(&r, &meta(), &key(), &m).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].kind, got[0].key.clone()),
        (OpKind::Delete, vec![SqlValue::Int(1)])
    );
    assert_eq!(
        (got[1].kind, got[1].key.clone()),
        (OpKind::Upsert, vec![SqlValue::Int(2)])
    );
}

#[test]
fn key_ids_tell_apart_keys_that_print_alike() {
    let id = |values: &[SqlValue<'_>]| {
        let mut id = String::new();
        for v in values {
            push_key_id(&mut id, v);
        }
        id
    };
    let keys: Vec<Vec<SqlValue>> = vec![
        vec![SqlValue::Text("a;".into()), SqlValue::Text("b".into())],
        vec![SqlValue::Text("a".into()), SqlValue::Text(";b".into())],
        vec![SqlValue::Text("i1;".into())],
        vec![SqlValue::Int(1)],
        vec![SqlValue::UInt(1)],
        vec![SqlValue::Text("1".into())],
        vec![SqlValue::Bytes(b"1".to_vec().into())],
        vec![SqlValue::Null],
    ];
    let ids: std::collections::HashSet<String> = keys.iter().map(|k| id(k)).collect();
    assert_eq!(ids.len(), keys.len(), "{ids:?}");
    // An UPDATE that keeps its key writes one op, whatever else changed.
    let r = rule(None, None);
    let m = mapped(
        EventType::Update,
        9,
        json!({"id": 2, "name": "b"}),
        Some(json!({"id": 2, "name": "a"})),
    );
    assert_eq!(ops(&r, &meta(), &key(), &m).unwrap().len(), 1);
}

#[test]
fn versioned_writes_never_regress() {
    let r = rule(None, Some("version"));
    let got = sql_of(
        &r,
        &[
            mapped(EventType::Insert, 7, json!({"id": 1, "name": "a"}), None),
            mapped(EventType::Delete, 8, json!({"id": 2, "name": "b"}), None),
        ],
    );
    assert_eq!(
        got,
        vec![
            (
                "DELETE FROM `db`.`t` WHERE (`id` = ? AND (`version` IS NULL OR `version` <= ?))".into(),
                vec![SqlValue::Int(2), SqlValue::Int(8)]
            ),
            (
                "INSERT INTO `db`.`t` (`id`,`name`,`version`) VALUES (?,?,?) ON DUPLICATE KEY UPDATE `name` = IF(`version` IS NULL OR VALUES(`version`) >= `version`, VALUES(`name`), `name`),`version` = IF(`version` IS NULL OR VALUES(`version`) >= `version`, VALUES(`version`), `version`)".into(),
                vec![SqlValue::Int(1), SqlValue::Text("a".into()), SqlValue::Int(7)]
            ),
        ]
    );
}

#[test]
fn soft_delete_marks_the_row_and_upserts_clear_the_mark() {
    let seq = 1_763_716_502_123i64 << 20;
    let r = rule(Some("deleted_at"), None);
    let got = sql_of(
        &r,
        &[
            mapped(EventType::Delete, seq, json!({"id": 1, "name": "a"}), None),
            mapped(
                EventType::Insert,
                seq + 1,
                json!({"id": 2, "name": "b"}),
                None,
            ),
        ],
    );
    assert_eq!(
        got,
        vec![(
            "INSERT INTO `db`.`t` (`id`,`name`,`deleted_at`) VALUES (?,?,?),(?,?,?) ON DUPLICATE KEY UPDATE `name` = VALUES(`name`),`deleted_at` = VALUES(`deleted_at`)".into(),
            vec![
                SqlValue::Int(1),
                SqlValue::Text("a".into()),
                SqlValue::Text("2025-11-21 09:15:02.123".into()),
                SqlValue::Int(2),
                SqlValue::Text("b".into()),
                SqlValue::Null,
            ]
        )]
    );
    let flag = rule(Some("gone"), None);
    let deleted = mapped(EventType::Delete, 5, json!({"id": 1}), None);
    let op = ops(&flag, &meta(), &key(), &deleted).unwrap();
    assert_eq!(op[0].values.last(), Some(&Bound::Value(SqlValue::Int(1))));
}

#[test]
fn geometry_and_composite_keys() {
    let r = rule(None, None);
    let m = TableMeta::new(
        "db",
        "t",
        vec![
            ("a".into(), ColumnKind::Integer),
            ("b".into(), ColumnKind::Other),
            ("g".into(), ColumnKind::Geometry),
        ],
        vec!["a".into(), "b".into()],
    );
    let k = vec!["a".to_string(), "b".to_string()];
    let inserted = mapped(
        EventType::Insert,
        1,
        json!({"a": 1, "b": "x", "g": {"srid": 0, "wkb": "AQ=="}}),
        None,
    );
    let deleted = mapped(
        EventType::Delete,
        2,
        json!({"a": 2, "b": "y", "g": null}),
        None,
    );
    let up = ops(&r, &m, &k, &inserted).unwrap();
    let del = ops(&r, &m, &k, &deleted).unwrap();
    let refs: Vec<&Op> = up.iter().chain(del.iter()).collect();
    let got: Vec<String> = plan(&r, &m, &k, &refs).into_iter().map(|s| s.sql).collect();
    assert_eq!(
        got,
        vec![
            "DELETE FROM `db`.`t` WHERE (`a` = ? AND `b` = ?)".to_string(),
            "INSERT INTO `db`.`t` (`a`,`b`,`g`) VALUES (?,?,ST_GeomFromWKB(?, ?)) ON DUPLICATE KEY UPDATE `g` = VALUES(`g`)".to_string(),
        ]
    );
}

#[test]
fn rows_that_cannot_be_written_are_errors() {
    let r = rule(None, None);
    let cases = [
        (json!({"id": 1, "nope": 2}), "column `nope` of rule `r` is not in replica table `db`.`t` (columns: id, name, bin, at, doc, geo, tags, deleted_at, gone, version); add the column to the table or leave it out with [rules.fields] exclude"),
        (json!({"name": "a"}), "key column `id` is not in the mapped row of rule `r` (it has: name); keep it in [rules.fields] or set rules.mysql.key"),
        (json!({"id": null}), "key column `id` is null; rows of `db`.`t` need a value in every key column"),
        (json!({"id": 1, "bin": "%%"}), "column `bin`: binary column value is not base64 (Invalid symbol 37, offset 0.); events carry BINARY/BLOB values as standard base64"),
    ];
    for (doc, want) in cases {
        let err = ops(
            &r,
            &meta(),
            &key(),
            &mapped(EventType::Insert, 1, doc.clone(), None),
        )
        .unwrap_err();
        assert_eq!(err, want, "{doc}");
    }
}

#[test]
fn different_column_sets_are_different_statements() {
    let r = rule(None, None);
    let got = sql_of(
        &r,
        &[
            mapped(EventType::Insert, 1, json!({"id": 1, "name": "a"}), None),
            mapped(EventType::Insert, 2, json!({"id": 2}), None),
        ],
    );
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[1].0,
        "INSERT INTO `db`.`t` (`id`) VALUES (?) ON DUPLICATE KEY UPDATE `id` = VALUES(`id`)"
    );
}

#[test]
fn inlined_values_are_literals_that_need_no_escaping() {
    let s = Statement {
        sql: "INSERT INTO `d?b`.`t``?` (`a`,`b`,`c`,`d`,`e`,`f`,`g`) VALUES (?,?,?,?,?,?,?,ST_GeomFromWKB(?, ?))"
            .into(),
        args: vec![
            Cow::Owned(SqlValue::Null),
            Cow::Owned(SqlValue::Int(-7)),
            Cow::Owned(SqlValue::UInt(u64::MAX)),
            Cow::Owned(SqlValue::Float(0.1)),
            Cow::Owned(SqlValue::Text("it's \\ é".into())),
            Cow::Owned(SqlValue::Text("".into())),
            Cow::Owned(SqlValue::Text("plain é".into())),
            Cow::Owned(SqlValue::Bytes(vec![0, 255].into())),
            Cow::Owned(SqlValue::UInt(4326)),
        ],
    };
    assert_eq!(
        s.inline(),
        "INSERT INTO `d?b`.`t``?` (`a`,`b`,`c`,`d`,`e`,`f`,`g`) VALUES (NULL,-7,18446744073709551615,1e-1,\
         _utf8mb4 X'69742773205C20C3A9','','plain é',ST_GeomFromWKB(X'00FF', 4326))"
    );
    assert!(s.inline_len() >= s.inline().len());
    for (v, want) in [
        (SqlValue::Float(-1.5e300), "-1.5e300"),
        (SqlValue::Text("a\0".into()), "_utf8mb4 X'6100'"),
        (SqlValue::Text("a\"b".into()), "'a\"b'"),
    ] {
        let mut out = String::new();
        push_literal(&mut out, &v);
        assert_eq!(out, want);
    }
}

#[test]
fn large_rows_are_split_by_bytes() {
    let r = rule(None, None);
    let text = "x".repeat(MAX_STATEMENT_BYTES / 5);
    let items: Vec<Mapped> = (0..6)
        .map(|i| mapped(EventType::Insert, i, json!({"id": i, "name": text}), None))
        .collect();
    let got = sql_of(&r, &items);
    // Each value is about 2/5 of the cap as hex: two rows per statement.
    assert_eq!(
        got.iter().map(|(_, a)| a.len() / 2).collect::<Vec<_>>(),
        [2, 2, 2]
    );
}
