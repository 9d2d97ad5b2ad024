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

#[path = "../common/mod.rs"]
mod common;
mod render;

use anyhow::{bail, Context as _};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::NaiveDateTime;
use clap::{Parser, Subcommand};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use render::{canal, datetime, debezium, debezium_schemas, maxwell};
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
