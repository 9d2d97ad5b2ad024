//! Unit tests of the Debezium decoder: seq, keys, envelopes and value encodings.
use super::values::*;
use super::*;

#[test]
fn the_zero_year_is_restored_from_debeziums_1900() {
    let field: Map<String, Value> = serde_json::from_str(
        r#"{"type":"int32","optional":true,"name":"io.debezium.time.Year","field":"yr"}"#,
    )
    .unwrap();
    assert_eq!(
        convert_value(&Value::from(1900), Some(&field)),
        Ok(Value::from(0))
    );
    assert_eq!(
        convert_value(&Value::from(2155), Some(&field)),
        Ok(Value::from(2155))
    );
    assert_eq!(
        convert_value(&Value::from(1901), Some(&field)),
        Ok(Value::from(1901))
    );
}

#[test]
fn seq_orders_files_offsets_and_rows() {
    let a = binlog_seq("mysql-bin.000003", 4711, 0).unwrap();
    let b = binlog_seq("mysql-bin.000003", 4711, 1).unwrap();
    let c = binlog_seq("mysql-bin.000003", 4800, 0).unwrap();
    let d = binlog_seq("mysql-bin.000004", 4, 0).unwrap();
    assert!(a < b && b < c && c < d);
    assert_eq!(a, (3 << 32) | 4711);
    // Same message, same seq.
    assert_eq!(a, binlog_seq("mysql-bin.000003", 4711, 0).unwrap());
}

#[test]
fn seq_stays_below_the_time_based_seq() {
    let max = binlog_seq("b.268435455", u64::from(u32::MAX), 0).unwrap();
    assert!(max < 1 << 60);
    // 2006-01-01 in ms, shifted as SeqGenerator does.
    assert!(max < 1_136_073_600_000_i64 << 20);
}

#[test]
fn seq_refuses_what_it_cannot_carry() {
    assert!(binlog_seq("b.268435456", 4, 0).is_err());
    assert!(binlog_seq("b.000001", u64::from(u32::MAX), 1).is_err());
    assert!(binlog_seq("b.000001", u64::MAX, u64::MAX).is_err());
    assert!(binlog_seq("binlog", 4, 0).is_err());
    assert!(binlog_seq("binlog.", 4, 0).is_err());
    assert!(binlog_seq("binlog.00x1", 4, 0).is_err());
    assert!(binlog_seq("binlog.99999999999999999999999", 4, 0).is_err());
}

#[test]
fn calendar_round_trips() {
    for days in [-719_528, -1, 0, 1, 20_413, 2_932_896] {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, u32::from(m), u32::from(d)), days);
    }
    assert_eq!(civil_from_days(20_413), (2025, 11, 21));
}

#[test]
fn decimals_from_unscaled_bytes() {
    let s = |bytes: &[u8], scale| decimal_value(unscaled(bytes), scale, false).unwrap();
    assert_eq!(s(&[0x04, 0xce], 2), "12.30");
    assert_eq!(s(&[0xce], 2), "-0.50");
    assert_eq!(s(&[0x01], 2), "0.01");
    assert_eq!(s(&[0x00], 0), "0");
    assert_eq!(s(&[], 3), "0.000");
    assert_eq!(s(&[0x80], 0), "-128");
    assert_eq!(s(&[0xff; 9], 0), "-1");
    // 10^30, beyond i128's 38 digits only at 65, but across several limbs.
    let big = [
        0x0c, 0x9f, 0x2c, 0x9c, 0xd0, 0x46, 0x74, 0xed, 0xea, 0x40, 0x00, 0x00, 0x00,
    ];
    assert_eq!(s(&big, 0), format!("1{}", "0".repeat(30)));
}
fn fixture(name: &str) -> (Vec<u8>, Vec<u8>) {
    let path = format!(
        "{}/tests/fixtures/debezium/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let bytes = |x: &Value| serde_json::to_vec(x).unwrap();
    (bytes(&v["key"]), bytes(&v["value"]))
}

#[test]
fn key_names_the_pk_and_a_key_change_is_delete_then_insert() {
    let (key, value) = fixture("hand-keychange-noschema.json");
    let events = decode_with_key(Some(&key), &value).unwrap();
    let kinds: Vec<EventType> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventType::Delete, EventType::Insert]);
    assert_eq!(events[0].data["id"], 7);
    assert_eq!(events[1].data["id"], 8);
    assert!(events.iter().all(|e| e.pk == ["id"] && e.old.is_none()));

    let (key, value) = fixture("hand-update-schema.json");
    let [event] = &decode_with_key(Some(&key), &value).unwrap()[..] else {
        panic!("one event expected")
    };
    assert_eq!(event.kind, EventType::Update);
    assert_eq!(event.pk, ["id"]);
}

#[test]
fn keys_in_every_form() {
    assert_eq!(key_columns(br#"{"b":1,"a":2}"#).unwrap(), ["b", "a"]);
    assert_eq!(key_columns(b"null").unwrap(), Vec::<String>::new());
    assert_eq!(key_columns(b"").unwrap(), Vec::<String>::new());
    let with_schema = br#"{"schema":{"type":"struct","fields":[{"type":"int32","field":"x"},{"type":"string","field":"y"}]},"payload":{"x":1,"y":"a"}}"#;
    assert_eq!(key_columns(with_schema).unwrap(), ["x", "y"]);
    for bad in [&b"{"[..], b"[1,2]", b"7", br#""id""#] {
        let e = decode_with_key(Some(bad), b"null").unwrap_err();
        assert!(e.reason.contains("Kafka key"), "{e}");
    }
}
