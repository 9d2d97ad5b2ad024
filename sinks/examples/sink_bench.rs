//! The helper behind `bench/sink.sh`: produce N change events, time a plain rdkafka consumer
//! that only reads them, and time a `sluice-sink` process from start until its group has
//! committed every message, with the process's peak RSS.

mod common;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use serde_json::json;
use sluice_event::{ChangeEvent, EventType, Row};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    /// Bootstrap servers of the benchmark broker.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long)]
    topic: String,
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Extra librdkafka property for the producer (`key=value`, repeatable).
    #[arg(long = "producer-prop", value_parser = prop)]
    producer_props: Vec<(String, String)>,
    /// Extra librdkafka property for the plain consumer (`key=value`, repeatable).
    #[arg(long = "consumer-prop", value_parser = prop)]
    consumer_props: Vec<(String, String)>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the topic and produce `events` UPDATEs of `shop.users` (100,000 distinct users).
    Produce {
        #[arg(long, default_value_t = 8)]
        partitions: i32,
    },
    /// Read `events` messages with a plain consumer group and print the rate.
    Plain,
    /// Read `events` messages and print count, first and last offset per partition.
    Scan,
    /// Start `bin run --config config`, wait until `group` committed `events`, print rate and RSS.
    Sink {
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

fn prop(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::Produce { partitions } => produce(&cli, *partitions),
        Command::Plain => plain(&cli),
        Command::Scan => scan(&cli),
        Command::Sink {
            bin,
            config,
            group,
            label,
        } => sink(&cli, bin, config, group, label),
    }
}

fn event(i: u64) -> ChangeEvent {
    let id = i % 100_000;
    let mut data = Row::new();
    data.insert("id".into(), json!(id));
    data.insert("email".into(), json!(format!("user{id}@example.com")));
    data.insert("name".into(), json!(format!("User number {id}")));
    data.insert("status".into(), json!("active"));
    data.insert("balance".into(), json!("1234.50"));
    let mut old = Row::new();
    old.insert("name".into(), json!(format!("User {id}")));
    common::change_event(i, "shop", "users", EventType::Update, data, Some(old))
}

fn produce(cli: &Cli, partitions: i32) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(common::create_topic(&cli.brokers, &cli.topic, partitions))?;
    let secs = common::produce_events(
        &cli.brokers,
        &cli.topic,
        cli.events,
        &cli.producer_props,
        event,
    )?;
    println!(
        "produce: {} events in {secs:.2} s = {:.0} events/s",
        cli.events,
        cli.events as f64 / secs
    );
    Ok(())
}

fn plain(cli: &Cli) -> anyhow::Result<()> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &cli.brokers)
        .set(
            "group.id",
            format!("{}-plain-{}", cli.topic, std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    for (k, v) in &cli.consumer_props {
        cc.set(k, v);
    }
    let consumer: BaseConsumer = cc.create()?;
    let started = Instant::now();
    consumer.subscribe(&[&cli.topic])?;
    let mut seen = 0u64;
    let mut bytes = 0usize;
    let deadline = started + Duration::from_secs(600);
    while seen < cli.events {
        if Instant::now() > deadline {
            bail!(
                "plain consumer read only {seen} of {} messages in 600 s",
                cli.events
            );
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m?;
            bytes += m.payload().map_or(0, <[u8]>::len);
            seen += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "plain: {seen} events ({} MB) in {secs:.2} s = {:.0} events/s",
        bytes / 1_000_000,
        seen as f64 / secs
    );
    Ok(())
}

fn scan(cli: &Cli) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cli.brokers)
        .set(
            "group.id",
            format!("{}-scan-{}", cli.topic, std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[&cli.topic])?;
    let mut parts: std::collections::BTreeMap<i32, (u64, i64, i64)> = Default::default();
    let mut seen = 0u64;
    let mut idle = 0;
    while seen < cli.events && idle < 100 {
        match consumer.poll(Duration::from_millis(100)) {
            Some(m) => {
                let m = m?;
                let e = parts.entry(m.partition()).or_insert((0, i64::MAX, -1));
                e.0 += 1;
                e.1 = e.1.min(m.offset());
                e.2 = e.2.max(m.offset());
                seen += 1;
                idle = 0;
            }
            None => idle += 1,
        }
    }
    for (p, (n, first, last)) in parts {
        println!("partition {p}: {n} messages, offsets {first}..={last}");
    }
    Ok(())
}

fn sink(
    cli: &Cli,
    bin: &PathBuf,
    config: &PathBuf,
    group: &str,
    label: &str,
) -> anyhow::Result<()> {
    let (probe, tpl) = common::group_probe(&cli.brokers, group, &cli.topic)?;
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
        // Polled often: the sink's time ends when its commit lands, and a coarse poll would add
        // up to its own period to that (the plain consumer's time ends at its last message).
        std::thread::sleep(Duration::from_millis(20));
        peak_kb = peak_kb.max(common::vm_hwm_kb(pid).unwrap_or(0));
        if let Some(status) = child.try_wait()? {
            bail!("{label}: sluice-sink exited early with {status}");
        }
        let total = common::committed_total(&probe, &tpl)?;
        if total as u64 >= cli.events {
            break;
        }
        if Instant::now() > deadline {
            bail!("{label}: only {total} of {} committed in 900 s", cli.events);
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
        "{label}: {} events committed in {secs:.2} s = {:.0} events/s, peak RSS {} MB, CPU {cpu:.2} s ({:.1} us/event)",
        cli.events,
        cli.events as f64 / secs,
        peak_kb / 1024,
        cpu * 1e6 / cli.events as f64
    );
    Ok(())
}
