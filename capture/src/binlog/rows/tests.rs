//! Unit tests of the rows-event parser: every image layout, partial JSON updates, and the rendering against the reference cells.

use super::*;
use crate::binlog::table_map::tests::{names, table_map_bytes};
use crate::binlog::table_map::ty;
use proptest::prelude::*;

fn table() -> TableMap {
    let bytes = table_map_bytes(
        "d",
        "t",
        &[
            (ty::LONG, &[]),
            (ty::VARCHAR, &[20, 0]),
            (ty::NEWDECIMAL, &[10, 2]),
        ],
        &[(4, names(&["id", "name", "amount"])), (8, vec![0])],
    );
    TableMap::parse(&bytes, 6).unwrap()
}

fn rows_header(kind: u8, cols: u8) -> Vec<u8> {
    let mut b = vec![42, 0, 0, 0, 0, 0, 1, 0];
    if kind >= code::WRITE_V2 {
        b.extend_from_slice(&[2, 0]);
    }
    b.push(cols);
    let bitmap = usize::from(cols).div_ceil(8);
    b.extend(std::iter::repeat_n(0xff, bitmap));
    if matches!(
        kind,
        code::UPDATE_V1 | code::UPDATE_V2 | code::PARTIAL_UPDATE
    ) {
        b.extend(std::iter::repeat_n(0xff, bitmap));
    }
    b
}

/// id INT, doc JSON, tag VARCHAR(20).
fn json_table() -> TableMap {
    let bytes = table_map_bytes(
        "d",
        "t",
        &[(ty::LONG, &[]), (ty::JSON, &[4]), (ty::VARCHAR, &[20, 0])],
        &[(4, names(&["id", "doc", "tag"]))],
    );
    TableMap::parse(&bytes, 6).unwrap()
}

/// A JSON column's value as stored in a row: 4-byte length, then the bytes.
fn json_value(bytes: &[u8]) -> Vec<u8> {
    [&(bytes.len() as u32).to_le_bytes()[..], bytes].concat()
}

/// `{"a":1}` in binary JSON: small object, one key entry, the int16 inline, the key.
const DOC_A1: &[u8] = &[0x00, 1, 0, 12, 0, 11, 0, 1, 0, 0x05, 1, 0, b'a'];

/// Every row of a PARTIAL_UPDATE_ROWS event over [`json_table`], rendered as
/// `(data, old)` the way the decoder does, and checked against the cells.
fn partial_rows(body: &[u8]) -> Result<Vec<(String, String)>, Malformed> {
    let t = json_table();
    let mut b = rows_header(code::PARTIAL_UPDATE, 3);
    b.extend_from_slice(body);
    let (kind, layout) = RowsEvent::kind_of(code::PARTIAL_UPDATE).unwrap();
    assert_eq!(layout, Layout::PartialUpdate);
    let mut by_cells = RowsEvent::parse(kind, layout, &b)?;
    let mut ev = RowsEvent::parse(kind, layout, &b)?;
    let keys: Vec<Box<[u8]>> = t
        .columns
        .iter()
        .map(|c| sluice_event::json_key(&c.name))
        .collect();
    let cols = Columns {
        masks: &[],
        map: &t,
        keys: &keys,
        dropped: &[false; 3],
    };
    let mut rows = Vec::new();
    while ev.has_row(&t)? {
        let (mut before, mut after) = (Vec::new(), Vec::new());
        let (mut bs, mut slots) = (Vec::new(), Vec::new());
        ev.render(Side::Before, &cols, &mut before, &mut bs)?;
        ev.render(Side::After, &cols, &mut after, &mut slots)?;
        let (_, cells) = by_cells.next_row(&t)?.unwrap();
        assert_eq!(after, reference_json(&t, &cells.unwrap()));
        let old: Vec<String> = bs
            .iter()
            .zip(&slots)
            .filter(|(b, a)| !ev.same(b, a))
            .map(|(b, _)| String::from_utf8_lossy(&before[b.pair.0..b.pair.1]).into_owned())
            .collect();
        rows.push((String::from_utf8(after).unwrap(), old.join(",")));
    }
    assert!(by_cells.next_row(&t)?.is_none());
    Ok(rows)
}

#[test]
fn update_v2_with_null() {
    let t = table();
    let mut b = rows_header(code::UPDATE_V2, 3);
    // before: id=7, name='ab', amount NULL
    b.extend_from_slice(&[0b100, 7, 0, 0, 0, 2, b'a', b'b']);
    // after: id=7, name NULL, amount 12.30
    b.extend_from_slice(&[0b010, 7, 0, 0, 0]);
    b.extend_from_slice(&[0x80, 0, 0, 12, 30]);
    let (kind, layout) = RowsEvent::kind_of(code::UPDATE_V2).unwrap();
    let mut ev = RowsEvent::parse(kind, layout, &b).unwrap();
    let (before, after) = ev.next_row(&t).unwrap().unwrap();
    let before = before.unwrap();
    let after = after.unwrap();
    assert_eq!(before[1], Some(Cell::Text("ab".into())));
    assert_eq!(before[2], Some(Cell::Null));
    assert_eq!(after[1], Some(Cell::Null));
    assert_eq!(after[2], Some(Cell::Decimal("12.30".into())));
    assert!(ev.next_row(&t).unwrap().is_none());
}

#[test]
fn partial_update_applies_json_diffs_to_the_before_image() {
    use crate::binlog::json_diff::tests::{diff, jstr};
    let mut body = Vec::new();
    // Row 1, before: id=7, doc={"a":1}, tag='hi'.
    body.extend_from_slice(&[0b000, 7, 0, 0, 0]);
    body.extend(json_value(DOC_A1));
    body.extend_from_slice(&[2, b'h', b'i']);
    // After: value options PARTIAL_JSON_UPDATES, partial bits (doc is the first JSON
    // column), then the image: id=7, doc as diffs, tag='yo'.
    body.extend_from_slice(&[0x01, 0b1, 0b000, 7, 0, 0, 0]);
    let diffs = [
        diff(0, "$.a", Some(&jstr("x"))),
        diff(1, "$.b", Some(&[0x04, 1])),
    ]
    .concat();
    body.extend(json_value(&diffs));
    body.extend_from_slice(&[2, b'y', b'o']);
    // Row 2: no value options set, so the after image holds doc whole.
    body.extend_from_slice(&[0b000, 8, 0, 0, 0]);
    body.extend(json_value(DOC_A1));
    body.extend_from_slice(&[1, b'z']);
    body.extend_from_slice(&[0x00, 0b000, 8, 0, 0, 0]);
    body.extend(json_value(&[0x04, 2]));
    body.extend_from_slice(&[1, b'z']);
    // Row 3: partial bits set but doc NULL after: nothing to apply.
    body.extend_from_slice(&[0b000, 9, 0, 0, 0]);
    body.extend(json_value(DOC_A1));
    body.extend_from_slice(&[1, b'z']);
    body.extend_from_slice(&[0x01, 0b1, 0b010, 9, 0, 0, 0, 1, b'z']);
    let rows = partial_rows(&body).unwrap();
    assert_eq!(
        rows,
        vec![
            (
                r#"{"id":7,"doc":{"a":"x","b":true},"tag":"yo"}"#.to_owned(),
                r#""doc":{"a":1},"tag":"hi""#.to_owned()
            ),
            (
                r#"{"id":8,"doc":false,"tag":"z"}"#.to_owned(),
                r#""doc":{"a":1}"#.to_owned()
            ),
            (
                r#"{"id":9,"doc":null,"tag":"z"}"#.to_owned(),
                r#""doc":{"a":1}"#.to_owned()
            ),
        ]
    );
}

#[test]
fn partial_update_that_does_not_fit_is_an_error_not_a_misread_row() {
    use crate::binlog::json_diff::tests::{diff, jstr};
    let before = [
        &[0b000, 7, 0, 0, 0][..],
        &json_value(DOC_A1),
        &[2, b'h', b'i'],
    ]
    .concat();
    let after = |d: Vec<u8>| {
        [
            &[0x01, 0b1, 0b000, 7, 0, 0, 0][..],
            &json_value(&d),
            &[2, b'y', b'o'],
        ]
        .concat()
    };
    // A path the before image does not have.
    let err = partial_rows(&[before.clone(), after(diff(0, "$.zz", Some(&jstr("x"))))].concat())
        .unwrap_err();
    assert!(
        err.0.contains("column 2 (doc)") && err.0.contains("REPLACE $.zz"),
        "{err}"
    );
    // The before image without the JSON value (binlog_row_image=MINIMAL): named, with the fix.
    let null_before = [&[0b010, 7, 0, 0, 0][..], &[2, b'h', b'i']].concat();
    let err = partial_rows(&[null_before, after(diff(2, "$.a", None))].concat()).unwrap_err();
    assert!(
        err.0.contains("binlog_row_value_options=PARTIAL_JSON")
            && err.0.contains("SET GLOBAL binlog_row_value_options=''"),
        "{err}"
    );
    // Diff bytes that stop short.
    let mut short = after(diff(0, "$.a", Some(&jstr("x"))));
    short[7] = 99;
    assert!(partial_rows(&[before, short].concat()).is_err());
}

#[test]
fn truncated_row_is_an_error() {
    let t = table();
    let mut b = rows_header(code::WRITE_V1, 3);
    b.extend_from_slice(&[0b000, 7, 0, 0, 0, 5, b'a']);
    let mut ev = RowsEvent::parse(RowsKind::Insert, Layout::V1, &b).unwrap();
    let err = ev.next_row(&t).unwrap_err();
    assert!(err.0.contains("column 2 (name)"), "{err}");
}

/// The JSON object [`RowsEvent::render`] must write for an image, from the cells.
fn reference_json(table: &TableMap, image: &Image) -> Vec<u8> {
    let mut out = vec![b'{'];
    let mut first = true;
    for (col, cell) in table.columns.iter().zip(image) {
        if let Some(cell) = cell {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(&sluice_event::json_key(&col.name));
            sluice_event::write_cell(&mut out, cell);
        }
    }
    out.push(b'}');
    out
}

/// Renders every row of an INSERT event over `table` and decodes them into cells too: the
/// two must agree on every row, on where each row ends, and on failing.
fn assert_render_matches_cells(table: &TableMap, body: &[u8]) -> usize {
    let mut b = rows_header(code::WRITE_V1, table.columns.len() as u8);
    b.extend_from_slice(body);
    let (Ok(mut by_cells), Ok(mut rendered)) = (
        RowsEvent::parse(RowsKind::Insert, Layout::V1, &b),
        RowsEvent::parse(RowsKind::Insert, Layout::V1, &b),
    ) else {
        return 0;
    };
    let keys: Vec<Box<[u8]>> = table
        .columns
        .iter()
        .map(|c| sluice_event::json_key(&c.name))
        .collect();
    let dropped = vec![false; table.columns.len()];
    let cols = Columns {
        masks: &[],
        map: table,
        keys: &keys,
        dropped: &dropped,
    };
    let mut rows = 0;
    for _ in 0..8 {
        let want = by_cells.next_row(table);
        let got = rendered.has_row(table).and_then(|more| {
            if !more {
                return Ok(None);
            }
            let mut out = Vec::new();
            rendered.render(Side::After, &cols, &mut out, &mut Vec::new())?;
            Ok(Some(out))
        });
        match (want, got) {
            (Ok(Some((_, Some(image)))), Ok(Some(json))) => {
                assert_eq!(
                    String::from_utf8_lossy(&json),
                    String::from_utf8_lossy(&reference_json(table, &image))
                );
                assert_eq!(by_cells.body.pos(), rendered.body.pos());
                rows += 1;
            }
            (Ok(None), Ok(None)) => break,
            (Err(a), Err(b)) => {
                assert_eq!(a, b);
                break;
            }
            (want, got) => panic!("cells: {want:?}, rendered: {got:?}"),
        }
    }
    rows
}

#[test]
fn rendering_matches_the_cells_for_text_decimal_enum_and_json() {
    let bytes = table_map_bytes(
        "d",
        "t",
        &[
            (ty::VARCHAR, &[40, 0]),
            (ty::BLOB, &[2]),
            (ty::BLOB, &[2]),
            (ty::NEWDECIMAL, &[12, 3]),
            (ty::STRING, &[ty::ENUM, 1]),
            (ty::STRING, &[ty::STRING, 4]),
            (ty::STRING, &[ty::STRING, 4]),
            (ty::VARCHAR, &[40, 0]),
            (ty::LONG, &[]),
        ],
        &[(
            4,
            names(&["s", "j", "bad_j", "d", "e", "lat", "bin", "vb", "n"]),
        )],
    );
    let mut table = TableMap::parse(&bytes, 6).unwrap();
    table.columns[1].json_text = true;
    table.columns[2].json_text = true;
    table.columns[4].members = vec!["small".into(), "large".into()];
    table.columns[5].charset = crate::binlog::Charset::Latin1;
    table.columns[6].charset = crate::binlog::Charset::Binary;
    table.columns[7].charset = crate::binlog::Charset::Binary;
    let row = |nulls: u8, enum_index: u8| {
        let mut b = vec![nulls, 0];
        let s = "h\u{e9}llo \"q\"\n\u{1f30a}";
        b.push(s.len() as u8);
        b.extend_from_slice(s.as_bytes());
        for j in [&br#"{ "a" : [1.50, "x\u00e9"], "b": {} }"#[..], b"{\"a\""] {
            b.extend_from_slice(&(j.len() as u16).to_le_bytes());
            b.extend_from_slice(j);
        }
        b.extend_from_slice(&crate::binlog::decimal::tests::encode("-123.450", 12, 3));
        b.push(enum_index);
        b.extend_from_slice(&[2, b'c', 0x80]);
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&[3, 0, 0xff, 1]);
        b.extend_from_slice(&7u32.to_le_bytes());
        b
    };
    let mut body = row(0, 2);
    body.extend(row(0, 9));
    body.extend(row(0, 0));
    assert_eq!(assert_render_matches_cells(&table, &body), 3);
    // NULL in every column but the last: the bitmap says so, and no value bytes follow.
    let body = [vec![0xff, 0], 7u32.to_le_bytes().to_vec()].concat();
    assert_eq!(assert_render_matches_cells(&table, &body), 1);
}

#[test]
fn uuid_and_inet_columns_render_as_text() {
    use crate::binlog::FixedBin;
    let bytes = table_map_bytes(
        "d",
        "t",
        &[
            (ty::STRING, &[ty::STRING, 16]),
            (ty::STRING, &[ty::STRING, 4]),
            (ty::STRING, &[ty::STRING, 16]),
        ],
        &[(4, names(&["u", "a", "b"]))],
    );
    let mut table = TableMap::parse(&bytes, 6).unwrap();
    for (c, f) in table
        .columns
        .iter_mut()
        .zip([FixedBin::Uuid, FixedBin::Inet4, FixedBin::Inet6])
    {
        c.charset = crate::binlog::Charset::Binary;
        c.fixed_bin = Some(f);
    }
    // As MariaDB logs them: trailing zero bytes left off.
    let mut body = vec![0];
    body.push(14);
    body.extend_from_slice(&[
        0x55, 0x0e, 0x84, 0x00, 0xe2, 0x9b, 0x41, 0xd4, 0xa7, 0x16, 0x44, 0x66, 0x55, 0x44,
    ]);
    body.extend_from_slice(&[4, 192, 168, 0, 1]);
    body.extend_from_slice(&[16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4]);
    body.extend_from_slice(&[0, 0, 1, 10, 0]);
    assert_eq!(assert_render_matches_cells(&table, &body), 2);
    let mut b = rows_header(code::WRITE_V1, 3);
    b.extend_from_slice(&body);
    let mut ev = RowsEvent::parse(RowsKind::Insert, Layout::V1, &b).unwrap();
    let row = |r: Option<RowImages>| reference_json(&table, &r.unwrap().1.unwrap());
    assert_eq!(
        String::from_utf8(row(ev.next_row(&table).unwrap())).unwrap(),
        r#"{"u":"550e8400-e29b-41d4-a716-446655440000","a":"192.168.0.1","b":"::ffff:1.2.3.4"}"#
    );
    assert_eq!(
        String::from_utf8(row(ev.next_row(&table).unwrap())).unwrap(),
        r#"{"u":"00000000-0000-0000-0000-000000000000","a":"10.0.0.0","b":"::"}"#
    );
}

/// A column type with metadata TABLE_MAP accepts, picked by `pick`, shaped by `a` and `b`.
fn column_type(pick: u8, a: u8, b: u8) -> (u8, Vec<u8>) {
    match pick % 24 {
        0 => (ty::TINY, vec![]),
        1 => (ty::SHORT, vec![]),
        2 => (ty::INT24, vec![]),
        3 => (ty::LONG, vec![]),
        4 => (ty::LONGLONG, vec![]),
        5 => (ty::FLOAT, vec![4]),
        6 => (ty::DOUBLE, vec![8]),
        7 => {
            let p = a % 65 + 1;
            (ty::NEWDECIMAL, vec![p, b % (p.min(30) + 1)])
        }
        8 => (ty::YEAR, vec![]),
        9 => (ty::DATE, vec![]),
        10 => (ty::TIME2, vec![a % 7]),
        11 => (ty::DATETIME2, vec![a % 7]),
        12 => (ty::TIMESTAMP2, vec![a % 7]),
        13 => (ty::VARCHAR, vec![a, b % 2]),
        14 => (ty::BIT, vec![a % 8, b % 9]),
        15 => (ty::BLOB, vec![a % 4 + 1]),
        16 => (ty::JSON, vec![a % 4 + 1]),
        17 => (ty::GEOMETRY, vec![a % 4 + 1]),
        18 => (ty::STRING, vec![ty::STRING, a]),
        19 => (ty::STRING, vec![ty::ENUM, a % 2 + 1]),
        20 => (ty::STRING, vec![ty::SET, a % 8 + 1]),
        21 => (ty::TIME, vec![]),
        22 => (ty::DATETIME, vec![]),
        _ => (ty::TIMESTAMP, vec![]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// For random bytes in up to four columns of any type, charset and signedness,
    /// rendering writes what the cells write, or fails where decoding them fails.
    #[test]
    fn rendering_matches_the_cells(
        cols in proptest::collection::vec((any::<[u8; 3]>(), 0u8..3, any::<bool>(), any::<bool>()), 1..4),
        body in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        let types: Vec<(u8, Vec<u8>)> = cols.iter().map(|c| column_type(c.0[0], c.0[1], c.0[2])).collect();
        let types: Vec<(u8, &[u8])> = types.iter().map(|(t, m)| (*t, &m[..])).collect();
        let mut table = TableMap::parse(&table_map_bytes("d", "t", &types, &[]), 6).unwrap();
        for (col, c) in table.columns.iter_mut().zip(&cols) {
            col.charset = [crate::binlog::Charset::Utf8, crate::binlog::Charset::Latin1, crate::binlog::Charset::Binary][usize::from(c.1)];
            col.unsigned = c.2;
            col.json_text = c.3;
            col.members = vec!["a".into(), "b\"".into()];
            col.fixed_bin = [None, Some(crate::binlog::FixedBin::Uuid), Some(crate::binlog::FixedBin::Inet4), Some(crate::binlog::FixedBin::Inet6)][usize::from(c.0[2] % 4)];
        }
        assert_render_matches_cells(&table, &body);
    }
}

proptest! {
    /// Random bytes never panic the decoder: every outcome is rows or an error.
    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200), kind in 0u8..3, layout in 0u8..3) {
        let t = table();
        let kind = [RowsKind::Insert, RowsKind::Update, RowsKind::Delete][usize::from(kind)];
        let layout = [Layout::V1, Layout::V2, Layout::PartialUpdate][usize::from(layout)];
        if let Ok(mut ev) = RowsEvent::parse(kind, layout, &body) {
            for _ in 0..50 {
                match ev.next_row(&t) {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
        let _ = TableMap::parse(&body, 6);
        let _ = crate::binlog::jsonb::decode(&body);
    }

    /// Random bytes in every column type never panic either.
    #[test]
    fn random_values_never_panic(body in proptest::collection::vec(any::<u8>(), 0..64), t in any::<u8>(), m in proptest::collection::vec(any::<u8>(), 0..3)) {
        let bytes = table_map_bytes("d", "t", &[(t, &m)], &[]);
        if let Ok(table) = TableMap::parse(&bytes, 6) {
            let mut b = rows_header(code::WRITE_V1, 1);
            b.extend_from_slice(&body);
            if let Ok(mut ev) = RowsEvent::parse(RowsKind::Insert, Layout::V1, &b) {
                let _ = ev.next_row(&table);
            }
        }
    }
}
