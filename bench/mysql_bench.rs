//! The helper behind `bench/mysql.sh` (built as the `mysql_bench` example of sluice-sinks):
//! produce N change events of one table (30% INSERTs of new rows, 70% UPDATEs of existing ones),
//! load the same rows into MariaDB with plain multi-row `INSERT … ON DUPLICATE KEY UPDATE` from one
//! client (the server's ceiling), and time `sluice-sink` from start until its group committed all.

#[path = "../sinks/examples/common/mod.rs"]
mod common;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use serde_json::json;
use sluice_event::{ChangeEvent, EventType, Row};
use sqlx::Connection as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long)]
    topic: String,
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// The database server's pid: its CPU time during each load is printed too.
    #[arg(long)]
    server_pid: Option<u32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the topic and produce the events of `bench.items`.
    Produce {
        #[arg(long, default_value_t = 8)]
        partitions: i32,
    },
    /// Load the same rows into `table` (of the URL's database) with multi-row upserts of
    /// `rows` rows from one connection; print rows/s.
    Baseline {
        #[arg(long)]
        url: String,
        #[arg(long)]
        table: String,
        #[arg(long, default_value_t = 1000)]
        rows: usize,
    },
    /// Start `bin run --config config`, wait until `group` committed every event; print rows/s.
    Sink {
        #[arg(long)]
        bin: PathBuf,
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        group: String,
    },
}

/// Every tenth event: 3 INSERTs of the next new id, 7 UPDATEs of an id inserted before.
fn event(i: u64) -> ChangeEvent {
    let inserted = i / 10 * 3 + (i % 10).min(3);
    let (kind, id) = if i % 10 < 3 {
        (EventType::Insert, inserted + 1)
    } else {
        // A fixed pseudo-random pick among the ids inserted so far.
        let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
        (EventType::Update, h % inserted.max(1) + 1)
    };
    let mut data = Row::new();
    data.insert("id".into(), json!(id));
    data.insert("name".into(), json!(format!("item number {id}")));
    data.insert(
        "status".into(),
        json!(["new", "paid", "shipped"][(i % 3) as usize]),
    );
    data.insert("qty".into(), json!(i % 1000));
    data.insert(
        "amount".into(),
        json!(format!("{}.{:02}", i % 100_000, i % 100)),
    );
    data.insert(
        "updated_at".into(),
        json!(format!(
            "2026-11-21T09:{:02}:{:02}.{:06}",
            (i / 60) % 60,
            i % 60,
            i % 1_000_000
        )),
    );
    let old = (kind == EventType::Update).then(|| {
        let mut o = Row::new();
        o.insert("qty".into(), json!((i + 1) % 1000));
        o
    });
    common::change_event(i, "bench", "items", kind, data, old)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match &cli.command {
        Command::Produce { partitions } => rt.block_on(produce(&cli, *partitions)),
        Command::Baseline { url, table, rows } => rt.block_on(baseline(&cli, url, table, *rows)),
        Command::Sink { bin, config, group } => sink(&cli, bin, config, group),
    }
}

async fn produce(cli: &Cli, partitions: i32) -> anyhow::Result<()> {
    common::create_topic(&cli.brokers, &cli.topic, partitions).await?;
    let secs = common::produce_events(&cli.brokers, &cli.topic, cli.events, &[], event)?;
    println!("produced {} events in {secs:.1} s", cli.events);
    Ok(())
}

/// The same rows, in event order, 1,000 per multi-row upsert (autocommit), from one client.
async fn baseline(cli: &Cli, url: &str, table: &str, rows: usize) -> anyhow::Result<()> {
    let mut conn = sqlx::mysql::MySqlConnection::connect(url)
        .await
        .context("connect for the baseline")?;
    let cols = ["id", "name", "status", "qty", "amount", "updated_at"];
    // The rows are built before the clock starts, so the baseline times only the load.
    let rows_data: Vec<(u64, String, String, u64, String, String)> = (0..cli.events)
        .map(|k| {
            let d = event(k).data;
            let text = |c: &str| d.get(c).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            (
                d.get("id").and_then(|v| v.as_u64()).unwrap_or(0),
                text("name"),
                text("status"),
                d.get("qty").and_then(|v| v.as_u64()).unwrap_or(0),
                text("amount"),
                text("updated_at").replacen('T', " ", 1),
            )
        })
        .collect();
    let set = cols[1..]
        .iter()
        .map(|c| format!("{c} = VALUES({c})"))
        .collect::<Vec<_>>()
        .join(",");
    if rows == 0 {
        bail!("--rows must be at least 1 (rows per multi-row upsert)");
    }
    let server_cpu = cli.server_pid.and_then(common::cpu_secs);
    let start = Instant::now();
    for chunk in rows_data.chunks(rows) {
        let mut sql = format!("INSERT INTO `{table}` ({}) VALUES ", cols.join(","));
        for j in 0..chunk.len() {
            sql.push_str(if j == 0 {
                "(?,?,?,?,?,?)"
            } else {
                ",(?,?,?,?,?,?)"
            });
        }
        sql.push_str(" ON DUPLICATE KEY UPDATE ");
        sql.push_str(&set);
        let mut q = sqlx::query(&sql);
        for (id, name, status, qty, amount, at) in chunk {
            q = q
                .bind(id)
                .bind(name.as_str())
                .bind(status.as_str())
                .bind(qty)
                .bind(amount.as_str())
                .bind(at.as_str());
        }
        q.execute(&mut conn).await?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "baseline: {} rows in {secs:.1} s = {:.0} rows/s (multi-row upserts of {rows}, one client){}",
        cli.events,
        cli.events as f64 / secs,
        server_cpu_note(cli, server_cpu)
    );
    Ok(())
}

fn sink(cli: &Cli, bin: &PathBuf, config: &PathBuf, group: &str) -> anyhow::Result<()> {
    let (probe, tpl) = common::group_probe(&cli.brokers, group, &cli.topic)?;
    let server_cpu = cli.server_pid.and_then(common::cpu_secs);
    let start = Instant::now();
    let log = std::fs::File::create(config.with_extension("log"))?;
    let mut child = std::process::Command::new(bin)
        .arg("run")
        .arg("--config")
        .arg(config)
        .stderr(log)
        .spawn()
        .context("start sluice-sink")?;
    let mut sink_cpu = 0.0;
    let done = loop {
        // Polled often: the time ends when the commit lands, and a coarse poll adds up to its
        // own period to it.
        std::thread::sleep(Duration::from_millis(20));
        sink_cpu = common::cpu_secs(child.id()).unwrap_or(sink_cpu);
        if let Some(status) = child.try_wait()? {
            bail!("sluice-sink exited early: {status}");
        }
        let Ok(sum) = common::committed_total(&probe, &tpl) else {
            continue;
        };
        if sum as u64 >= cli.events {
            sink_cpu = common::cpu_secs(child.id()).unwrap_or(sink_cpu);
            break start.elapsed();
        }
        if start.elapsed() > Duration::from_secs(3600) {
            bail!("not done after an hour (committed {sum})");
        }
    };
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    let secs = done.as_secs_f64();
    println!(
        "sink: {} events in {secs:.1} s = {:.0} rows/s (start to fully committed); sink CPU {sink_cpu:.1} s{}",
        cli.events,
        cli.events as f64 / secs,
        server_cpu_note(cli, server_cpu)
    );
    Ok(())
}

/// `; server CPU n s` since `before`, when the server's pid is known.
fn server_cpu_note(cli: &Cli, before: Option<f64>) -> String {
    match (before, cli.server_pid.and_then(common::cpu_secs)) {
        (Some(b), Some(a)) => format!("; server CPU {:.1} s", a - b),
        _ => String::new(),
    }
}
