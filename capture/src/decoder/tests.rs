//! Unit tests of the decoder: transactions, UPDATE images, key changes, filters and masks.

use super::*;
use crate::binlog::table_map::tests::{names, table_map_bytes};
use crate::binlog::table_map::ty;
use crate::config::FilterConfig;
use serde_json::json;

fn bare_decoder(filter: FilterConfig) -> Decoder {
    let cp = Checkpoint {
        file: "binlog.000001".into(),
        pos: 4,
        gtid: None,
        ..Checkpoint::default()
    };
    Decoder::new("inst", Filter::new(&filter).unwrap(), cp)
}

/// `shop.users (id INT PRIMARY KEY, name VARCHAR(20), pw VARCHAR(20))`'s TABLE_MAP.
fn users_map() -> Vec<u8> {
    table_map_bytes(
        "shop",
        "users",
        &[
            (ty::LONG, &[]),
            (ty::VARCHAR, &[20, 0]),
            (ty::VARCHAR, &[20, 0]),
        ],
        &[(4, names(&["id", "name", "pw"])), (8, vec![0])],
    )
}

fn decoder(filter: FilterConfig) -> Decoder {
    let mut d = bare_decoder(filter);
    d.add_table(TableMap::parse(&users_map(), 6).unwrap())
        .unwrap();
    d
}

/// Every row output as the JSON the capture publishes.
fn out_bytes(out: &[Output]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for o in out {
        if let Output::Row(r) = o {
            r.write_key(&mut bytes);
            r.write_json(&mut bytes);
        }
    }
    bytes
}

fn h(event_type: u8, log_pos: u32) -> Header {
    Header {
        event_type,
        timestamp: 1_000,
        server_id: 1,
        log_pos,
        event_size: 10,
    }
}

fn gtid(seq: u64) -> Vec<u8> {
    let mut b = seq.to_le_bytes().to_vec();
    b.extend_from_slice(&0u32.to_le_bytes());
    b.push(0);
    b
}

fn update(rows: &[(u32, &str, &str, u32, &str, &str)]) -> Vec<u8> {
    let mut b = vec![42, 0, 0, 0, 0, 0, 1, 0, 3, 0xff, 0xff];
    for (id, n, p, id2, n2, p2) in rows {
        for (id, n, p) in [(id, n, p), (id2, n2, p2)] {
            b.push(0);
            b.extend_from_slice(&id.to_le_bytes());
            for s in [n, p] {
                b.push(s.len() as u8);
                b.extend_from_slice(s.as_bytes());
            }
        }
    }
    b
}

fn events(out: &[Output]) -> Vec<ChangeEvent> {
    out.iter()
        .filter_map(|o| o.clone().into_change_event())
        .collect()
}

/// The direct writer gives the bytes and key of the ChangeEvent path, for every row.
fn assert_direct_encoding_matches(out: &[Output]) {
    for o in out {
        if let Output::Row(r) = o {
            let mut direct = Vec::new();
            r.write_json(&mut direct);
            let ev = r.to_change_event();
            assert_eq!(
                String::from_utf8(direct).unwrap(),
                String::from_utf8(ev.encode()).unwrap()
            );
            assert_eq!(r.key(), ev.key());
        }
    }
}

#[test]
fn masked_columns_never_leave_the_capture_in_clear() {
    let masking =
        |kind: &str, key: Option<&str>, keep_first: Option<usize>| sluice_rules::ConvertConfig {
            kind: kind.to_owned(),
            key: key.map(sluice_config::Secret::new),
            keep_first,
            ..Default::default()
        };
    let mut d = decoder(FilterConfig {
        mask: [(
            "shop.users".to_owned(),
            [
                ("name".to_owned(), masking("mask", None, Some(1))),
                ("pw".to_owned(), masking("hash", Some("k"), None)),
            ]
            .into(),
        )]
        .into(),
        ..Default::default()
    });
    let mut out = Vec::new();
    d.handle(h(code::MARIADB_GTID, 100), &gtid(5), 0, &mut out)
        .unwrap();
    d.handle(
        h(24, 200),
        &update(&[(1, "alice", "x", 1, "bob", "y")]),
        0,
        &mut out,
    )
    .unwrap();
    d.handle(h(code::XID, 300), &9u64.to_le_bytes(), 0, &mut out)
        .unwrap();
    let evs = events(&out);
    let hashed = |v: &str| sluice_rules::Masking::Hash(b"k".to_vec()).apply(&json!(v));
    assert_eq!(evs[0].data["name"], json!("b**"));
    assert_eq!(evs[0].data["pw"], hashed("y"));
    let old = evs[0].old.as_ref().unwrap();
    assert_eq!(old["name"], json!("a****"));
    assert_eq!(old["pw"], hashed("x"));
    let bytes = String::from_utf8_lossy(&out_bytes(&out)).into_owned();
    assert!(
        !bytes.contains("alice") && !bytes.contains("\"bob\""),
        "{bytes}"
    );

    // A key column masked other than by hash would give rows the same key.
    let mut d = bare_decoder(FilterConfig {
        mask: [(
            "shop.users".to_owned(),
            [("id".to_owned(), masking("null", None, None))].into(),
        )]
        .into(),
        ..Default::default()
    });
    let err = d
        .add_table(TableMap::parse(&users_map(), 6).unwrap())
        .unwrap_err();
    assert!(
        err.to_string().contains("masks a primary-key column"),
        "{err}"
    );
}

#[test]
fn update_old_has_changed_columns_and_key_change_splits() {
    let mut d = decoder(FilterConfig {
        drop_columns: [("shop.users".to_owned(), vec!["pw".to_owned()])].into(),
        ..Default::default()
    });
    let mut out = Vec::new();
    d.handle(h(code::MARIADB_GTID, 100), &gtid(5), 0, &mut out)
        .unwrap();
    d.handle(
        h(24, 200),
        &update(&[(1, "a", "x", 1, "b", "y"), (1, "b", "y", 2, "b", "y")]),
        0,
        &mut out,
    )
    .unwrap();
    d.handle(h(code::XID, 300), &9u64.to_le_bytes(), 0, &mut out)
        .unwrap();
    assert_direct_encoding_matches(&out);
    let evs = events(&out);
    assert_eq!(evs.len(), 3);
    assert_eq!(evs[0].kind, EventType::Update);
    assert_eq!(
        evs[0].data,
        json!({"id":1,"name":"b"}).as_object().unwrap().clone()
    );
    assert_eq!(
        evs[0].old,
        Some(json!({"name":"a"}).as_object().unwrap().clone())
    );
    assert_eq!(
        (evs[1].kind, evs[2].kind),
        (EventType::Delete, EventType::Insert)
    );
    assert_eq!(evs[1].key(), br#"["shop","users",1]"#.to_vec());
    assert_eq!(evs[2].key(), br#"["shop","users",2]"#.to_vec());
    assert!(evs[2].txn_last && !evs[1].txn_last);
    assert_eq!(evs[2].xid, Some(9));
    assert_eq!(evs[0].pos.gtid.as_deref(), Some("0-1-5"));
    assert!(evs.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(evs[0].seq, 1_000_000 << 20);
    match out.last() {
        Some(Output::Commit(cp)) => {
            assert_eq!(
                (cp.pos, cp.seq, cp.gtid.as_deref()),
                (300, evs[2].seq, Some("0-1-5"))
            );
        }
        other => panic!("expected a commit, got {other:?}"),
    }
}

#[test]
fn rewind_repeats_seq_and_filtered_tables_still_commit() {
    let mut d = decoder(FilterConfig::default());
    let mut first = Vec::new();
    d.handle(h(code::MARIADB_GTID, 100), &gtid(5), 0, &mut first)
        .unwrap();
    d.handle(
        h(24, 200),
        &update(&[(1, "a", "x", 1, "b", "y")]),
        0,
        &mut first,
    )
    .unwrap();
    d.handle(
        h(24, 250),
        &update(&[(1, "b", "x", 1, "c", "y")]),
        0,
        &mut first,
    )
    .unwrap();
    d.rewind();
    let tm = table_map_bytes(
        "shop",
        "users",
        &[
            (ty::LONG, &[]),
            (ty::VARCHAR, &[20, 0]),
            (ty::VARCHAR, &[20, 0]),
        ],
        &[(4, names(&["id", "name", "pw"])), (8, vec![0])],
    );
    d.add_table(TableMap::parse(&tm, 6).unwrap()).unwrap();
    let mut again = Vec::new();
    d.handle(h(code::MARIADB_GTID, 100), &gtid(5), 0, &mut again)
        .unwrap();
    d.handle(
        h(24, 200),
        &update(&[(1, "a", "x", 1, "b", "y")]),
        0,
        &mut again,
    )
    .unwrap();
    d.handle(
        h(24, 250),
        &update(&[(1, "b", "x", 1, "c", "y")]),
        0,
        &mut again,
    )
    .unwrap();
    assert_eq!(events(&first)[0].seq, events(&again)[0].seq);

    let mut f = decoder(FilterConfig {
        exclude: vec!["users".into()],
        ..Default::default()
    });
    let mut out = Vec::new();
    f.handle(
        h(24, 200),
        &update(&[(1, "a", "x", 1, "b", "y")]),
        0,
        &mut out,
    )
    .unwrap();
    f.handle(h(code::XID, 300), &1u64.to_le_bytes(), 0, &mut out)
        .unwrap();
    assert!(events(&out).is_empty());
    assert!(matches!(out.last(), Some(Output::Commit(cp)) if cp.pos == 300));
}

#[test]
fn ddl_events_and_corrupt_rows() {
    let mut d = decoder(FilterConfig {
        ddl: true,
        ..Default::default()
    });
    let mut q = vec![1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0];
    q.extend_from_slice(b"shop\0ALTER TABLE `users` ADD COLUMN age INT");
    let mut out = Vec::new();
    d.handle(h(code::QUERY, 500), &q, 0, &mut out).unwrap();
    let evs = events(&out);
    assert_eq!(evs.len(), 1);
    assert_eq!(
        (evs[0].kind, evs[0].table.as_str()),
        (EventType::Ddl, "users")
    );
    assert!(evs[0].txn_last);
    assert!(d.schema_changed);
    let err = d
        .handle(
            h(24, 600),
            &[42, 0, 0, 0, 0, 0, 1, 0, 3, 0xff, 0xff, 0, 1],
            0,
            &mut out,
        )
        .unwrap_err();
    assert!(err.to_string().contains("binlog.000001:590"), "{err}");
}

#[test]
fn a_gtid_start_checkpoints_exact_boundaries_only_with_server_and_commit_time() {
    let mut rotate = 4u64.to_le_bytes().to_vec();
    rotate.extend_from_slice(b"binlog.000007");
    let from = Checkpoint {
        gtid: Some("0-1-5".into()),
        seq: 40,
        server: Some("mariadb:2@b:3306".into()),
        ..Checkpoint::default()
    };
    let mut d = Decoder::new("inst", Filter::new(&FilterConfig::default()).unwrap(), from);
    let mut out = Vec::new();
    // The server's artificial ROTATE names the start of the file the GTID is in.
    d.handle(h(code::ROTATE, 0), &rotate, 0, &mut out).unwrap();
    assert!(out.is_empty(), "no checkpoint at the file's start");
    assert_eq!(d.resume_point().file, "", "a reconnect still goes by GTID");
    d.handle(h(code::MARIADB_GTID, 900), &gtid(6), 0, &mut out)
        .unwrap();
    let commit = Header {
        timestamp: 1_700_000_123,
        ..h(code::XID, 1000)
    };
    d.handle(commit, &1u64.to_le_bytes(), 0, &mut out).unwrap();
    let Some(Output::Commit(cp)) = out.last() else {
        panic!("a checkpoint at the transaction's end")
    };
    assert_eq!(
        (cp.file.as_str(), cp.pos, cp.gtid.as_deref(), cp.seq),
        ("binlog.000007", 1000, Some("0-1-6"), 40)
    );
    assert_eq!(cp.server.as_deref(), Some("mariadb:2@b:3306"));
    assert_eq!(cp.commit_ms, Some(1_700_000_123_000));

    // From a file and position the artificial ROTATE is exact.
    let mut f = bare_decoder(FilterConfig::default());
    let mut out = Vec::new();
    f.handle(h(code::ROTATE, 0), &rotate, 0, &mut out).unwrap();
    assert!(
        matches!(out.last(), Some(Output::Commit(cp)) if cp.file == "binlog.000007" && cp.pos == 4)
    );
}

/// Found by fuzzing (fuzz/seeds/binlog_events/rows-without-columns): a TABLE_MAP of a table
/// without columns, then a rows event for it. Each row image took no bytes, so the rows never
/// ended and the decoder filled memory; now the event is an error.
#[test]
fn a_rows_event_whose_images_take_no_bytes_is_an_error_not_an_endless_loop() {
    let input: &[u8] = include_bytes!("../../../fuzz/seeds/binlog_events/rows-without-columns");
    let mut d = bare_decoder(FilterConfig::default());
    let mut out = Vec::new();
    let mut rest = input;
    let mut failed = None;
    while rest.len() >= 3 {
        let kind = rest[0];
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let body = &rest[3..3 + len];
        rest = &rest[3 + len..];
        if kind == 19 {
            if let Ok(map) = TableMap::parse(body, 6) {
                let _ = d.add_table(map);
            }
            continue;
        }
        if let Err(e) = d.handle(h(kind, 100), body, 0, &mut out) {
            failed = Some(e.to_string());
            break;
        }
    }
    let failed = failed.expect("the rows event is refused");
    assert!(failed.contains("row image with no columns"), "{failed}");
    assert!(out.len() < 10, "{} outputs", out.len());
}
