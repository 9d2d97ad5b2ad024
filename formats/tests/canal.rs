//! Canal flat messages, written from Canal's documented format, decode to the events
//! sluice-capture would publish for the same rows (written by hand from docs/event-format.md).

use sluice_event::ChangeEvent;
use sluice_formats::{decode, detect, Format};
mod common;

fn fixture(name: &str) -> Vec<u8> {
    common::fixture("canal", name)
}

/// Decodes `<name>.json` and compares with the Sluice events in `<name>.sluice.json`.
fn check(name: &str) {
    let message = fixture(&format!("{name}.json"));
    assert_eq!(detect(&message), Some(Format::Canal), "{name}");
    let got = decode(Format::Canal, &message).unwrap_or_else(|e| panic!("{name}: {e}"));
    let expected: Vec<ChangeEvent> =
        serde_json::from_slice(&fixture(&format!("{name}.sluice.json"))).expect("expected events");
    assert_eq!(got, expected, "{name}");
    // What the sink hands on reads back as the same event, seq included.
    for ev in &got {
        assert_eq!(ChangeEvent::decode(&ev.encode()).expect("re-read"), *ev);
    }
    // Reading the same message again gives the same versions.
    assert_eq!(decode(Format::Canal, &message).expect("again"), got);
}

#[test]
fn every_mysql_type_is_converted_by_its_declared_type() {
    check("insert_all_types");
}

#[test]
fn a_multi_row_message_is_one_event_per_row() {
    check("insert_multi_row");
}

#[test]
fn updates_keep_only_changed_columns_in_old() {
    check("update");
}

#[test]
fn a_key_change_is_a_delete_of_the_old_key_then_an_insert() {
    check("update_key_change");
    let got = decode(Format::Canal, &fixture("update_key_change.json")).expect("decode");
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

fn reason(payload: &str) -> String {
    match decode(Format::Canal, payload.as_bytes()) {
        Ok(events) => panic!("expected an error for {payload}, got {events:?}"),
        Err(e) => e.to_string(),
    }
}

const HEAD: &str = r#""database":"shop","table":"t","isDdl":false,"es":1000,"ts":1001"#;

#[test]
fn broken_messages_say_what_is_wrong() {
    assert!(reason("[1,2]").contains("not a Canal flat message"));
    let no_key = format!(
        r#"{{{HEAD},"type":"INSERT","pkNames":[],"mysqlType":{{"id":"int"}},"data":[{{"id":"1"}}]}}"#
    );
    assert!(reason(&no_key).contains("no primary key for shop.t"));
    let missing = format!(
        r#"{{{HEAD},"type":"INSERT","pkNames":["id"],"mysqlType":{{"v":"int"}},"data":[{{"v":"1"}}]}}"#
    );
    assert!(reason(&missing).contains("no value for key column `id`"));
    let bad = format!(
        r#"{{{HEAD},"type":"INSERT","pkNames":["id"],"mysqlType":{{"id":"decimal(4,1)"}},"data":[{{"id":"1.25"}}]}}"#
    );
    assert!(reason(&bad).contains("column `id` (decimal(4,1))"));
    let untyped = format!(r#"{{{HEAD},"type":"INSERT","pkNames":["id"],"data":[{{"id":"1"}}]}}"#);
    assert!(reason(&untyped).contains("no declared type"));
    let no_es = r#"{"database":"shop","table":"t","type":"INSERT","pkNames":["id"],"data":[]}"#;
    assert!(reason(no_es).contains("no `es`"));
    let odd = format!(r#"{{{HEAD},"type":"MERGE","pkNames":["id"],"data":[]}}"#);
    assert!(reason(&odd).contains("type MERGE"));
    let latin1 = format!(
        r#"{{{HEAD},"type":"INSERT","pkNames":["id"],"mysqlType":{{"id":"varbinary(4)"}},"data":[{{"id":"Ā"}}]}}"#
    );
    assert!(reason(&latin1).contains("ISO-8859-1"));
}

#[test]
fn transaction_markers_carry_nothing() {
    let gtid = format!(r#"{{{HEAD},"type":"GTID"}}"#);
    assert_eq!(decode(Format::Canal, gtid.as_bytes()), Ok(Vec::new()));
}

#[test]
fn no_input_panics() {
    let messages: Vec<Vec<u8>> = [
        "insert_all_types.json",
        "update_key_change.json",
        "ddl.json",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect();
    common::no_input_panics(Format::Canal, &messages);
}
