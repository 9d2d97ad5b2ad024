//! The latency helper's command line (`setup`, `wait-topic`, `run`) and what the helper measures.
//!
//! The helper behind `bench/latency.sh` (built as the `latency` example of sluice-sinks): a paced
//! writer commits small transactions into a source table on MariaDB while probes watch each row
//! arrive where sluice-capture and three sluice-sinks put it, and it prints, per probe, the
//! latency percentiles from the writer's COMMIT returning to:
//!
//! - **cache**: the row's Redis key deleted, from keyspace notifications (`__keyevent@<db>__:del`,
//!   pushed by the server as it deletes: exact to the probe's receipt);
//! - **replica**: the row (its `wseq`) visible in the replica table, polled;
//! - **search**: the document visible to `_count`/`_search` in OpenSearch, polled;
//! - and, with no target, **on the topic**: the event's arrival at a plain consumer of the
//!   capture's topic, the capture's (and Kafka's) share of the others.
//!
//! Every write of the run, warm-up included, has its own `wseq` (1, 2, ...), stored in the row,
//! and touches a row no other write of the run touches: an INSERT of a new id or an UPDATE of a
//! row seeded before the capture's start position. So a key, a replica row or a document seen
//! with that `wseq` (or id) belongs to exactly one write. All times come from one `Instant`.
//!
//! ```text
//! latency setup      --source-db S --replica-db R --index I ...   tables, seeded rows, index; prints the binlog position
//! latency wait-topic --brokers B --topic T                          until the capture created its topic
//! latency run        --source-db S --replica-db R --index I --key-prefix P --topic T ...   write and measure
//! ```
//!
//! This file holds the command line; `plan` says which row each write touches, `writer` writes
//! them, `marks` records the times, `probe` and its modules watch the targets, `setup` prepares
//! them, `run` measures and `report` prints the percentiles.

#[path = "../../sinks/examples/common/mod.rs"]
mod common;
mod marks;
mod mysql;
mod opensearch;
mod plan;
mod probe;
mod report;
mod run;
mod setup;
mod writer;

use clap::{Args, Parser, Subcommand};
use std::time::Duration;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the source and replica tables, seed the rows the run will update (in both), create
    /// the index; print the binlog position after it all (`file:pos`, the capture's start).
    Setup(Common),
    /// Wait until `topic` exists on `brokers` (the capture creates it at start-up).
    WaitTopic {
        #[arg(long, default_value = "127.0.0.1:9092")]
        brokers: String,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
    /// Pre-create the keys, write the warm-up rows and wait for them everywhere, then write at
    /// `rate` for `seconds` and print the latencies.
    Run(RunArgs),
}

#[derive(Args)]
struct Common {
    /// MariaDB server URL, without a database.
    #[arg(long, default_value = "mysql://sluice:sluice@127.0.0.1:3307")]
    mysql_url: String,
    #[arg(long)]
    source_db: String,
    #[arg(long)]
    replica_db: String,
    #[arg(long, default_value = "http://127.0.0.1:9200")]
    es_url: String,
    #[arg(long)]
    index: String,
    /// Rows per second the writer commits.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// How long the measured writes last.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Rows per transaction.
    #[arg(long, default_value_t = 10)]
    txn_rows: u64,
    /// Percentage of the measured rows that are UPDATEs of seeded rows (the rest are INSERTs).
    #[arg(long, default_value_t = 30)]
    update_pct: u64,
    /// INSERTs written and waited for before the measured writes (start-up, group joins).
    #[arg(long, default_value_t = 100)]
    warmup_rows: u64,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Redis URL; the server must have keyevent notifications of generic commands on
    /// (`notify-keyspace-events` with `E` and `g`; bench/latency.sh sets it).
    #[arg(long, default_value = "redis://127.0.0.1:6380")]
    redis_url: String,
    /// Keys are `<prefix>:<id>`, as the cache rule renders them.
    #[arg(long)]
    key_prefix: String,
    /// The capture's broker and topic: a plain consumer of it shows the capture's share.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long)]
    topic: String,
    /// Writer connections; transactions are handed out in order, each at its scheduled time.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Replica poll interval: the replica probe's resolution (plus the query's round trip).
    #[arg(long, default_value_t = 5)]
    replica_poll_ms: u64,
    /// OpenSearch poll interval: the search probe's resolution (plus the request's round trip).
    #[arg(long, default_value_t = 20)]
    es_poll_ms: u64,
    /// After the last commit, how long to wait for rows not seen yet.
    #[arg(long, default_value_t = 30)]
    tail_secs: u64,
    /// How long the warm-up rows may take to show up everywhere (processes start, groups join).
    #[arg(long, default_value_t = 120)]
    warmup_timeout_secs: u64,
    /// `name=pid` of a process whose CPU time over the measured window is printed (repeatable).
    #[arg(long = "pid", value_parser = name_pid)]
    pids: Vec<(String, u32)>,
}

fn name_pid(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s
        .split_once('=')
        .ok_or_else(|| format!("expected name=pid, got {s}"))?;
    let pid = pid.parse().map_err(|e| format!("pid of {name}: {e}"))?;
    Ok((name.to_owned(), pid))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Setup(c) => rt.block_on(setup::setup(&c)),
        Command::WaitTopic {
            brokers,
            topic,
            timeout_secs,
        } => setup::wait_topic(&brokers, &topic, Duration::from_secs(timeout_secs)),
        Command::Run(args) => rt.block_on(run::run(args)),
    }
}
