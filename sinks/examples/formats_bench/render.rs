//! The other captures' messages of one row change, rendered from its Sluice event the way each
//! capture writes those MySQL types: Canal flat messages, Maxwell messages and Debezium's
//! envelope with its schemas.

use super::*;

/// `2026-11-21T09:15:02.123`: DATETIME(3) as sluice-capture writes it.
pub(super) fn datetime(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("in range")
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S%.3f")
        .to_string()
}

pub(super) fn str_of(v: &Value) -> &str {
    v.as_str().expect("a string column")
}

/// `2026-11-21 09:15:02.123`: DATETIME and TIMESTAMP as Canal and Maxwell print them (from the
/// Sluice form, without the zone).
pub(super) fn mysql_text(v: &Value) -> String {
    str_of(v).trim_end_matches('Z').replacen('T', " ", 1)
}

/// JSON string literal.
pub(super) fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// Canal flat message of transaction `events` (one rows event: `es` is the commit time, `ts`
/// when Canal built the message, every value a string).
pub(super) fn canal(txn: u64, events: &[ChangeEvent]) -> Vec<u8> {
    let first = &events[0];
    let mut out = String::with_capacity(900 * events.len());
    let kind = first.kind.as_str();
    write!(
        out,
        r#"{{"id":{txn},"database":"shop","table":"orders","pkNames":["id"],"isDdl":false,"type":"{kind}","es":{},"ts":{},"sql":"","sqlType":{{"id":-5,"user_id":4,"amount":3,"status":4,"email":12,"note":12,"qty":5,"created_at":93,"updated_at":93,"attrs":12}},"mysqlType":{{"id":"bigint(20)","user_id":"int(11)","amount":"decimal(12,2)","status":"enum('new','paid','shipped','cancelled')","email":"varchar(64)","note":"varchar(255)","qty":"smallint(6)","created_at":"datetime(3)","updated_at":"timestamp(3)","attrs":"json"}},"data":["#,
        first.ts_ms, first.capture_ms
    )
    .expect("write to a String");
    let text = |t: Type, v: &Value| match t {
        Type::BigInt | Type::Int | Type::SmallInt => quoted(&v.to_string()),
        Type::Decimal | Type::Varchar(_) | Type::Enum => quoted(str_of(v)),
        Type::DateTime3 | Type::Timestamp3 => quoted(&mysql_text(v)),
        Type::Json => quoted(&v.to_string()),
    };
    let row = |out: &mut String, row: &Row| {
        out.push('{');
        let mut sep = "";
        for (name, t) in COLUMNS {
            if let Some(v) = row.get(name) {
                write!(out, "{sep}\"{name}\":{}", text(t, v)).expect("write to a String");
                sep = ",";
            }
        }
        out.push('}');
    };
    for (n, e) in events.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        row(&mut out, &e.data);
    }
    out.push_str("],\"old\":");
    if first.old.is_some() {
        out.push('[');
        for (n, e) in events.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            row(&mut out, e.old.as_ref().expect("an UPDATE has old"));
        }
        out.push(']');
    } else {
        out.push_str("null");
    }
    out.push('}');
    out.into_bytes()
}

/// Maxwell message of one row (`output_binlog_position`, `output_xoffset`,
/// `output_primary_key_columns`): typed JSON, DECIMAL as a number, DATETIME/TIMESTAMP as MySQL's
/// text, JSON as the value; the transaction's last row has `commit` and no `xoffset`.
pub(super) fn maxwell(e: &ChangeEvent) -> (Vec<u8>, Vec<u8>) {
    let mut out = String::with_capacity(700);
    let id = &e.data["id"];
    write!(
        out,
        r#"{{"database":"shop","table":"orders","type":"{}","ts":{},"xid":{},"#,
        e.kind.as_str().to_ascii_lowercase(),
        e.ts_ms / 1000,
        e.xid.expect("binlog events have xid")
    )
    .expect("write to a String");
    if e.txn_last {
        out.push_str(r#""commit":true,"#);
    } else {
        write!(out, r#""xoffset":{},"#, e.pos.row).expect("write to a String");
    }
    write!(
        out,
        r#""position":"{}:{}","primary_key":[{id}],"primary_key_columns":["id"],"data":"#,
        e.pos.file, e.pos.offset
    )
    .expect("write to a String");
    let value = |t: Type, v: &Value| match t {
        Type::Decimal => str_of(v).to_owned(),
        Type::DateTime3 | Type::Timestamp3 => quoted(&mysql_text(v)),
        _ => v.to_string(),
    };
    let row = |out: &mut String, row: &Row| {
        out.push('{');
        let mut sep = "";
        for (name, t) in COLUMNS {
            if let Some(v) = row.get(name) {
                write!(out, "{sep}\"{name}\":{}", value(t, v)).expect("write to a String");
                sep = ",";
            }
        }
        out.push('}');
    };
    row(&mut out, &e.data);
    if let Some(old) = &e.old {
        out.push_str(",\"old\":");
        row(&mut out, old);
    }
    out.push('}');
    let key = format!(r#"{{"database":"shop","table":"orders","pk.id":{id}}}"#);
    (key.into_bytes(), out.into_bytes())
}

/// Debezium's key schema and the value schema of the envelope (MariaDB connector,
/// `column.propagate.source.type=.*` as docs/formats.md recommends, DECIMAL `precise`).
pub(super) fn debezium_schemas() -> (String, String) {
    let column = |name: &str, t: Type, optional: bool| {
        let (kind, logical, mut params): (&str, Option<&str>, Vec<(&str, String)>) = match t {
            Type::BigInt => (
                "int64",
                None,
                vec![("type", "BIGINT".into()), ("length", "20".into())],
            ),
            Type::Int => (
                "int32",
                None,
                vec![("type", "INT".into()), ("length", "11".into())],
            ),
            Type::SmallInt => (
                "int16",
                None,
                vec![("type", "SMALLINT".into()), ("length", "6".into())],
            ),
            Type::Decimal => (
                "bytes",
                Some("org.apache.kafka.connect.data.Decimal"),
                vec![
                    ("type", "DECIMAL".into()),
                    ("length", DECIMAL_PRECISION.to_string()),
                    ("scale", DECIMAL_SCALE.to_string()),
                ],
            ),
            Type::Varchar(n) => (
                "string",
                None,
                vec![("type", "VARCHAR".into()), ("length", n.to_string())],
            ),
            Type::Enum => (
                "string",
                Some("io.debezium.data.Enum"),
                vec![("type", "ENUM".into()), ("length", "9".into())],
            ),
            Type::DateTime3 => (
                "int64",
                Some("io.debezium.time.Timestamp"),
                vec![("type", "DATETIME".into()), ("length", "3".into())],
            ),
            Type::Timestamp3 => (
                "string",
                Some("io.debezium.time.ZonedTimestamp"),
                vec![("type", "TIMESTAMP".into()), ("length", "3".into())],
            ),
            Type::Json => (
                "string",
                Some("io.debezium.data.Json"),
                vec![("type", "JSON".into())],
            ),
        };
        params.push(("name", name.to_owned()));
        let mut p = serde_json::Map::new();
        match t {
            Type::Decimal => {
                p.insert("scale".into(), json!(DECIMAL_SCALE.to_string()));
                p.insert(
                    "connect.decimal.precision".into(),
                    json!(DECIMAL_PRECISION.to_string()),
                );
            }
            Type::Enum => {
                p.insert("allowed".into(), json!(STATUSES.join(",")));
            }
            _ => {}
        }
        for (k, v) in params {
            p.insert(format!("__debezium.source.column.{k}"), json!(v));
        }
        let mut c = serde_json::Map::new();
        c.insert("type".into(), json!(kind));
        c.insert("optional".into(), json!(optional));
        if let Some(l) = logical {
            c.insert("name".into(), json!(l));
            c.insert("version".into(), json!(1));
        }
        c.insert("parameters".into(), Value::Object(p));
        c.insert("field".into(), json!(name));
        Value::Object(c)
    };
    let fields: Vec<Value> = COLUMNS
        .iter()
        .map(|&(name, t)| column(name, t, name != "id"))
        .collect();
    let row = |field: &str| {
        json!({"type": "struct", "fields": fields, "optional": true,
               "name": "bench.shop.orders.Value", "field": field})
    };
    let f = |t: &str, field: &str, optional: bool| json!({"type": t, "optional": optional, "field": field});
    let source = json!({"type": "struct", "fields": [
        f("string", "version", false), f("string", "connector", false), f("string", "name", false),
        f("int64", "ts_ms", false),
        {"type": "string", "optional": true, "name": "io.debezium.data.Enum", "version": 1,
         "parameters": {"allowed": "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},
         "default": "false", "field": "snapshot"},
        f("string", "db", false), f("string", "sequence", true), f("int64", "ts_us", true),
        f("int64", "ts_ns", true), f("string", "table", true), f("int64", "server_id", false),
        f("string", "gtid", true), f("string", "file", false), f("int64", "pos", false),
        f("int32", "row", false), f("int64", "thread", true), f("string", "query", true)],
        "optional": false, "name": "io.debezium.connector.mariadb.Source", "version": 1, "field": "source"});
    let transaction = json!({"type": "struct", "fields": [
        f("string", "id", false), f("int64", "total_order", false),
        f("int64", "data_collection_order", false)],
        "optional": true, "name": "event.block", "version": 1, "field": "transaction"});
    let value = json!({"type": "struct", "fields": [row("before"), row("after"), source, transaction,
        f("string", "op", false), f("int64", "ts_ms", true), f("int64", "ts_us", true),
        f("int64", "ts_ns", true)],
        "optional": false, "name": "bench.shop.orders.Envelope", "version": 2});
    let key = json!({"type": "struct", "fields": [column("id", Type::BigInt, false)],
        "optional": false, "name": "bench.shop.orders.Key"});
    (key.to_string(), value.to_string())
}

/// Debezium message of one row: `{"schema":…,"payload":…}` key and value, `before` the full
/// before-image of an UPDATE (binlog_row_image=FULL).
pub(super) fn debezium(
    e: &ChangeEvent,
    key_schema: &str,
    value_schema: &str,
) -> (Vec<u8>, Vec<u8>) {
    let value = |t: Type, v: &Value| match t {
        Type::Decimal => quoted(&BASE64.encode(unscaled_bytes(str_of(v)))),
        Type::DateTime3 => NaiveDateTime::parse_from_str(str_of(v), "%Y-%m-%dT%H:%M:%S%.f")
            .expect("a DATETIME")
            .and_utc()
            .timestamp_millis()
            .to_string(),
        Type::Json => quoted(&v.to_string()),
        _ => v.to_string(),
    };
    let row = |out: &mut String, row: &Row| {
        out.push('{');
        let mut sep = "";
        for (name, t) in COLUMNS {
            write!(out, "{sep}\"{name}\":{}", value(t, &row[name])).expect("write to a String");
            sep = ",";
        }
        out.push('}');
    };
    let mut out = String::with_capacity(value_schema.len() + 1_200);
    write!(out, r#"{{"schema":{value_schema},"payload":{{"before":"#).expect("write to a String");
    match &e.old {
        Some(old) => {
            let mut before = e.data.clone();
            for (k, v) in old {
                before.insert(k.clone(), v.clone());
            }
            row(&mut out, &before);
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"after\":");
    row(&mut out, &e.data);
    let ts_ms = e.ts_ms;
    write!(
        out,
        r#","source":{{"version":"3.5.0.Final","connector":"mariadb","name":"bench","ts_ms":{ts_ms},"snapshot":"false","db":"shop","sequence":null,"ts_us":{},"ts_ns":{},"table":"orders","server_id":1,"gtid":null,"file":"{}","pos":{},"row":{},"thread":12,"query":null}},"transaction":null,"op":"{}","ts_ms":{},"ts_us":{},"ts_ns":{}}}}}"#,
        ts_ms * 1_000,
        ts_ms * 1_000_000,
        e.pos.file,
        e.pos.offset,
        e.pos.row,
        if e.old.is_some() { "u" } else { "c" },
        e.capture_ms,
        e.capture_ms * 1_000,
        e.capture_ms * 1_000_000,
    )
    .expect("write to a String");
    let key = format!(
        r#"{{"schema":{key_schema},"payload":{{"id":{}}}}}"#,
        e.data["id"]
    );
    (key.into_bytes(), out.into_bytes())
}

/// Connect's Decimal bytes: the unscaled value, big-endian two's complement, shortest form.
pub(super) fn unscaled_bytes(decimal: &str) -> Vec<u8> {
    let unscaled: i64 = decimal.replace('.', "").parse().expect("a DECIMAL(12,2)");
    let bytes = unscaled.to_be_bytes();
    let mut start = 0;
    while start < 7
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    bytes[start..].to_vec()
}
