//! Maxwell messages, written from Maxwell's documented format, decode to the events
//! sluice-capture would publish for the same rows (written by hand from docs/event-format.md),
//! apart from the values Maxwell's JSON cannot say without the table's schema.

use serde_json::{json, Value};
use sluice_event::ChangeEvent;
use sluice_formats::{decode, detect, Format};
mod common;

fn fixture(name: &str) -> Vec<u8> {
    common::fixture("maxwell", name)
}

/// Decodes `<name>.json` and compares with the Sluice events in `<name>.sluice.json`.
fn check(name: &str) {
    check_with(name, &[]);
}

/// [`check`], where `differences` lists the columns of the first event whose value is
/// Maxwell's rather than the capture's.
fn check_with(name: &str, differences: &[(&str, Value)]) {
    let message = fixture(&format!("{name}.json"));
    assert_eq!(detect(&message), Some(Format::Maxwell), "{name}");
    let got = decode(Format::Maxwell, &message).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut expected: Vec<ChangeEvent> =
        serde_json::from_slice(&fixture(&format!("{name}.sluice.json"))).expect("expected events");
    for (col, value) in differences {
        let slot = expected[0]
            .data
            .get_mut(*col)
            .expect("a column of the fixture");
        assert_ne!(slot, value, "{col} is not a difference");
        *slot = value.clone();
    }
    assert_eq!(got, expected, "{name}");
    for ev in &got {
        assert_eq!(ChangeEvent::decode(&ev.encode()).expect("re-read"), *ev);
    }
    assert_eq!(decode(Format::Maxwell, &message).expect("again"), got);
}

#[test]
fn every_mysql_type_matches_the_capture_where_maxwell_can_tell() {
    // Maxwell writes DECIMAL as a JSON number (its scale is lost in parsing), DATETIME and
    // TIMESTAMP as "YYYY-MM-DD hh:mm:ss[.f]" without zone, and GEOMETRY as text: without the
    // table's schema these cannot be told from a DOUBLE or a VARCHAR, so they pass unchanged.
    check_with(
        "insert_all_types",
        &[
            ("price", json!(12.3)),
            ("neg", json!(-0.5)),
            ("whole", json!(120)),
            ("dt", json!("2026-11-21 09:15:02.123456")),
            ("dt0", json!("2026-11-21 09:15:02")),
            ("dt3", json!("2026-11-21 09:15:02.120")),
            ("ts3", json!("2026-11-21 09:15:02.123")),
            ("ts0", json!("2026-11-21 09:15:02")),
            ("zero_dt", json!("0000-00-00 00:00:00")),
            ("zero_ts", json!("0000-00-00 00:00:00")),
            ("geo", json!("POINT(1 2)")),
        ],
    );
}

#[test]
fn updates_without_position_get_a_time_based_seq() {
    check("update");
}

#[test]
fn a_key_change_is_a_delete_of_the_old_key_then_an_insert() {
    check("update_key_change");
    let got = decode(Format::Maxwell, &fixture("update_key_change.json")).expect("decode");
    assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[test]
fn deletes_carry_the_row_before() {
    check("delete");
}

#[test]
fn ddl_is_one_event_with_its_statement() {
    check("ddl");
}

#[test]
fn bootstrap_rows_are_snapshot_inserts() {
    check("bootstrap_insert");
    let start =
        br#"{"database":"shop","table":"orders","type":"bootstrap-start","ts":1,"data":{}}"#;
    assert_eq!(decode(Format::Maxwell, start), Ok(Vec::new()));
}

#[test]
fn rows_of_one_position_keep_transaction_order() {
    let row = |xoffset: &str| {
        format!(
            r#"{{"database":"d","table":"t","type":"insert","ts":5,"xid":1,{xoffset}"position":"b.000001:400","primary_key_columns":["id"],"data":{{"id":1}}}}"#
        )
    };
    let seq = |m: String| decode(Format::Maxwell, m.as_bytes()).expect("decode")[0].seq;
    assert!(seq(row(r#""xoffset":0,"#)) < seq(row(r#""xoffset":1,"#)));
    assert!(seq(row(r#""xoffset":1,"#)) < seq(row(r#""commit":true,"#)));
}

fn reason(payload: &str) -> String {
    match decode(Format::Maxwell, payload.as_bytes()) {
        Ok(events) => panic!("expected an error for {payload}, got {events:?}"),
        Err(e) => e.to_string(),
    }
}

const HEAD: &str = r#""database":"shop","table":"t","ts":1763716502"#;

#[test]
fn broken_messages_say_what_is_wrong() {
    assert!(reason("\"insert\"").contains("not a Maxwell message"));
    let no_cols = format!(r#"{{{HEAD},"type":"insert","data":{{"id":1}}}}"#);
    assert!(reason(&no_cols).contains("output_primary_key_columns=true"));
    let no_key =
        format!(r#"{{{HEAD},"type":"insert","primary_key_columns":[],"data":{{"id":1}}}}"#);
    assert!(reason(&no_key).contains("no primary key for shop.t"));
    let missing =
        format!(r#"{{{HEAD},"type":"insert","primary_key_columns":["id"],"data":{{"v":1}}}}"#);
    assert!(reason(&missing).contains("no value for key column `id`"));
    let no_data = format!(r#"{{{HEAD},"type":"delete","primary_key_columns":["id"]}}"#);
    assert!(reason(&no_data).contains("no `data`"));
    let bad_pos = format!(
        r#"{{{HEAD},"type":"insert","position":"x","primary_key_columns":["id"],"data":{{"id":1}}}}"#
    );
    assert!(reason(&bad_pos).contains("position `x`"));
    let odd = format!(r#"{{{HEAD},"type":"upsert"}}"#);
    assert!(reason(&odd).contains("type upsert"));
    let no_ts = r#"{"database":"shop","table":"t","type":"insert"}"#;
    assert!(reason(no_ts).contains("no `ts`"));
    let far = r#"{"database":"shop","table":"t","type":"insert","ts":-1}"#;
    assert!(reason(far).contains("not a time"));
}

#[test]
fn no_input_panics() {
    let messages: Vec<Vec<u8>> = [
        "insert_all_types.json",
        "update_key_change.json",
        "update.json",
        "ddl.json",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect();
    common::no_input_panics(Format::Maxwell, &messages);
}
