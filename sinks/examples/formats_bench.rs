//! The helper behind `bench/formats.sh`: the same row changes of `shop.orders` as Sluice events,
//! Canal flat messages, Maxwell messages and Debezium messages (JsonConverter with schemas) on
//! four topics, and a `sluice-sink` process timed from start until its group has committed every
//! message of one of them.
//!
//! Every row is generated once as a Sluice event (what sluice-capture writes for it,
//! docs/event-format.md) and rendered into the other formats from that event's values, the way
//! each capture writes those MySQL types (docs/formats.md and `formats/tests/fixtures/`), so the
//! four topics carry the same rows. Rows come in transactions of 10 rows of one kind; 3 in 10
//! transactions are UPDATEs (of `status` and `updated_at`), the rest INSERTs.

mod common;

use anyhow::{bail, Context as _};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::NaiveDateTime;
use clap::{Parser, Subcommand};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use sluice_event::{ChangeEvent, EventType, Position, Row, Source};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Rows per transaction; a Canal flat message carries one transaction's rows.
const TXN_ROWS: u64 = 10;
/// Commit time of transaction 0 (ms); transaction `t` commits `t` ms later.
const TS_BASE_MS: i64 = 1_763_716_502_000;
const STATUSES: [&str; 4] = ["new", "paid", "shipped", "cancelled"];

#[derive(Parser)]
struct Cli {
    /// Bootstrap servers of the benchmark broker.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create `topic` and produce `rows` row changes to it in `format`.
    Produce {
        #[arg(long)]
        topic: String,
        /// sluice, canal, maxwell or debezium.
        #[arg(long)]
        format: String,
        #[arg(long)]
        rows: u64,
        #[arg(long, default_value_t = 8)]
        partitions: i32,
    },
    /// Start `bin run --config config`, wait until `group` committed `messages` of `topic`,
    /// print the rows/s, CPU and peak RSS.
    Sink {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        messages: u64,
        #[arg(long)]
        rows: u64,
        #[arg(long)]
        bin: PathBuf,
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        group: String,
        #[arg(long)]
        label: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::Produce {
            topic,
            format,
            rows,
            partitions,
        } => produce(&cli.brokers, topic, format, *rows, *partitions),
        Command::Sink {
            topic,
            messages,
            rows,
            bin,
            config,
            group,
            label,
        } => sink(
            &cli.brokers,
            topic,
            *messages,
            *rows,
            bin,
            config,
            group,
            label,
        ),
    }
}

/// The table's columns and MySQL types, in table order.
#[derive(Clone, Copy)]
enum Type {
    BigInt,
    Int,
    SmallInt,
    Decimal,
    Varchar(u32),
    Enum,
    DateTime3,
    Timestamp3,
    Json,
}

const COLUMNS: [(&str, Type); 10] = [
    ("id", Type::BigInt),
    ("user_id", Type::Int),
    ("amount", Type::Decimal),
    ("status", Type::Enum),
    ("email", Type::Varchar(64)),
    ("note", Type::Varchar(255)),
    ("qty", Type::SmallInt),
    ("created_at", Type::DateTime3),
    ("updated_at", Type::Timestamp3),
    ("attrs", Type::Json),
];

/// DECIMAL(12,2)
const DECIMAL_PRECISION: u32 = 12;
const DECIMAL_SCALE: u32 = 2;

/// Row change `i` as sluice-capture writes it.
fn event(i: u64) -> ChangeEvent {
    let txn = i / TXN_ROWS;
    let slot = i % TXN_ROWS;
    let update = txn % 10 < 3;
    let ts_ms = TS_BASE_MS + txn as i64;
    let created_ms = TS_BASE_MS - 86_400_000 + (i as i64) * 37;
    let cents = (i * 7_919) % 10_000_000;
    let status = (i % 3) as usize;
    let user = (i * 31) % 50_000;
    let mut data = Row::new();
    data.insert("id".into(), json!(i + 1));
    data.insert("user_id".into(), json!(user));
    data.insert(
        "amount".into(),
        json!(format!("{}.{:02}", cents / 100, cents % 100)),
    );
    data.insert(
        "status".into(),
        json!(STATUSES[status + usize::from(update)]),
    );
    data.insert("email".into(), json!(format!("user{user}@example.com")));
    data.insert(
        "note".into(),
        json!(format!("order {i}: leave at the door, ring twice")),
    );
    data.insert("qty".into(), json!(i % 7 + 1));
    data.insert("created_at".into(), json!(datetime(created_ms)));
    let updated_ms = if update { ts_ms } else { created_ms };
    data.insert(
        "updated_at".into(),
        json!(format!("{}Z", datetime(updated_ms))),
    );
    data.insert(
        "attrs".into(),
        json!({"sku": format!("A-{}", i % 97), "qty": i % 7 + 1, "tags": ["gift", "express"]}),
    );
    let old = update.then(|| {
        let mut old = Row::new();
        old.insert("status".into(), json!(STATUSES[status]));
        old.insert(
            "updated_at".into(),
            json!(format!("{}Z", datetime(created_ms))),
        );
        old
    });
    ChangeEvent {
        v: 1,
        seq: (ts_ms << 20) + slot as i64,
        source: Source::Binlog,
        instance: "bench".into(),
        database: "shop".into(),
        table: "orders".into(),
        kind: if update {
            EventType::Update
        } else {
            EventType::Insert
        },
        ts_ms,
        capture_ms: ts_ms + 13,
        pos: Position {
            file: "binlog.000001".into(),
            offset: binlog_offset(txn),
            row: slot as u32,
            gtid: None,
        },
        xid: Some(txn),
        txn_last: slot == TXN_ROWS - 1,
        pk: vec!["id".into()],
        data,
        old,
        sql: None,
    }
}

/// Offset of transaction `txn`'s rows event (one per transaction).
fn binlog_offset(txn: u64) -> u64 {
    4 + txn * 2_000
}

/// `2026-11-21T09:15:02.123`: DATETIME(3) as sluice-capture writes it.
fn datetime(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("in range")
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S%.3f")
        .to_string()
}

fn str_of(v: &Value) -> &str {
    v.as_str().expect("a string column")
}

/// `2026-11-21 09:15:02.123`: DATETIME and TIMESTAMP as Canal and Maxwell print them (from the
/// Sluice form, without the zone).
fn mysql_text(v: &Value) -> String {
    str_of(v).trim_end_matches('Z').replacen('T', " ", 1)
}

/// JSON string literal.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// Canal flat message of transaction `events` (one rows event: `es` is the commit time, `ts`
/// when Canal built the message, every value a string).
fn canal(txn: u64, events: &[ChangeEvent]) -> Vec<u8> {
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
fn maxwell(e: &ChangeEvent) -> (Vec<u8>, Vec<u8>) {
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
fn debezium_schemas() -> (String, String) {
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
fn debezium(e: &ChangeEvent, key_schema: &str, value_schema: &str) -> (Vec<u8>, Vec<u8>) {
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
fn unscaled_bytes(decimal: &str) -> Vec<u8> {
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

fn produce(
    brokers: &str,
    topic: &str,
    format: &str,
    rows: u64,
    partitions: i32,
) -> anyhow::Result<()> {
    if !["sluice", "canal", "maxwell", "debezium"].contains(&format) {
        bail!("unknown format {format:?}: sluice, canal, maxwell or debezium");
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(common::create_topic(brokers, topic, partitions))?;
    // LZ4 as sluice-capture sends it; Debezium's repeated schema would otherwise take about
    // 5.5 kB per row of the broker's disk.
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2_random")
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "500000")
        .create()?;
    let send = |key: &[u8], value: &[u8], headers: Option<OwnedHeaders>| {
        let mut record = BaseRecord::to(topic).key(key).payload(value);
        if let Some(h) = headers {
            record = record.headers(h);
        }
        loop {
            match producer.send(record) {
                Ok(()) => return Ok(()),
                Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => bail!("produce to {topic}: {e}"),
            }
        }
    };
    let (key_schema, value_schema) = debezium_schemas();
    let mut bytes = 0usize;
    let mut messages = 0u64;
    let started = Instant::now();
    let mut value = Vec::with_capacity(1024);
    let mut txn_events = Vec::with_capacity(TXN_ROWS as usize);
    for txn in 0..rows.div_ceil(TXN_ROWS) {
        txn_events.clear();
        txn_events.extend((txn * TXN_ROWS..rows.min((txn + 1) * TXN_ROWS)).map(event));
        if format == "canal" {
            // Canal's partitionHash would split a message by key; the transaction number
            // spreads whole messages over the partitions instead.
            let v = canal(txn, &txn_events);
            send(txn.to_string().as_bytes(), &v, None)?;
            bytes += v.len();
            messages += 1;
            continue;
        }
        for e in &txn_events {
            let (key, v) = match format {
                "maxwell" => maxwell(e),
                "debezium" => debezium(e, &key_schema, &value_schema),
                _ => {
                    value.clear();
                    e.encode_into(&mut value);
                    let mut headers = OwnedHeaders::new_with_capacity(3);
                    for (k, v) in &e.headers() {
                        headers = headers.insert(Header {
                            key: k,
                            value: Some(v.as_bytes()),
                        });
                    }
                    send(&e.key(), &value, Some(headers))?;
                    bytes += value.len();
                    messages += 1;
                    continue;
                }
            };
            send(&key, &v, None)?;
            bytes += v.len();
            messages += 1;
        }
    }
    producer
        .flush(Duration::from_secs(300))
        .context("flush the producer")?;
    println!(
        "produce {format}: {rows} rows in {messages} messages, {} MB before compression ({} bytes/row), {:.2} s",
        bytes / 1_000_000,
        bytes as u64 / rows.max(1),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn sink(
    brokers: &str,
    topic: &str,
    messages: u64,
    rows: u64,
    bin: &PathBuf,
    config: &PathBuf,
    group: &str,
    label: &str,
) -> anyhow::Result<()> {
    let (probe, tpl) = common::group_probe(brokers, group, topic)?;
    let started = Instant::now();
    let mut child = std::process::Command::new(bin)
        .arg("run")
        .arg("--config")
        .arg(config)
        .stdout(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let pid = child.id();
    let deadline = started + Duration::from_secs(900);
    let mut peak_kb = 0u64;
    loop {
        // Polled often: the time ends when the last commit lands (as in sink_bench).
        std::thread::sleep(Duration::from_millis(20));
        peak_kb = peak_kb.max(common::vm_hwm_kb(pid).unwrap_or(0));
        if let Some(status) = child.try_wait()? {
            bail!("{label}: sluice-sink exited early with {status}");
        }
        let total = common::committed_total(&probe, &tpl)?;
        if total as u64 >= messages {
            break;
        }
        if Instant::now() > deadline {
            bail!("{label}: only {total} of {messages} messages committed in 900 s");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    peak_kb = peak_kb.max(common::vm_hwm_kb(pid).unwrap_or(0));
    let cpu = common::cpu_secs(pid).unwrap_or(0.0);
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let _ = child.wait();
    println!(
        "{label}: {rows} events ({messages} messages) committed in {secs:.2} s = {:.0} events/s, peak RSS {} MB, CPU {cpu:.2} s ({:.2} us/event)",
        rows as f64 / secs,
        peak_kb / 1024,
        cpu * 1e6 / rows as f64
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each rendering decodes to the Sluice event it came from (data, old, kind, key).
    #[test]
    fn every_format_decodes_to_the_same_rows() {
        let (ks, vs) = debezium_schemas();
        let events: Vec<ChangeEvent> = (0..40).map(event).collect();
        for txn in events.chunks(TXN_ROWS as usize) {
            let from_canal =
                sluice_formats::decode(sluice_formats::Format::Canal, &canal(0, txn)).unwrap();
            for (e, c) in txn.iter().zip(&from_canal) {
                let (_, mv) = maxwell(e);
                let m = sluice_formats::decode(sluice_formats::Format::Maxwell, &mv).unwrap();
                let (dk, dv) = debezium(e, &ks, &vs);
                let d = sluice_formats::debezium_with_key(Some(&dk), &dv).unwrap();
                for (name, got) in [("canal", c), ("maxwell", &m[0]), ("debezium", &d[0])] {
                    assert_eq!(got.kind, e.kind, "{name}");
                    assert_eq!(got.pk, e.pk, "{name}");
                    assert_eq!(got.data.len(), e.data.len(), "{name}");
                    assert_eq!(got.old.is_some(), e.old.is_some(), "{name}");
                }
                assert_eq!(c.data, e.data);
                assert_eq!(d[0].data, e.data);
                assert_eq!(c.old, e.old);
                assert_eq!(d[0].old, e.old);
            }
        }
    }
}
