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

#[path = "../sinks/examples/common/mod.rs"]
mod common;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Url;
use elasticsearch::indices::{IndicesCreateParts, IndicesStatsParts};
use elasticsearch::{CountParts, Elasticsearch, SearchParts};
use futures::StreamExt as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use serde_json::{json, Value};
use sqlx::mysql::MySqlConnection;
use sqlx::Connection as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

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

/// The table, the same in the source and the replica database; `wseq` is the write's number.
const TABLE_DDL: &str = "(id BIGINT UNSIGNED NOT NULL PRIMARY KEY, rev INT NOT NULL,
    wseq BIGINT NOT NULL, name VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL,
    amount DECIMAL(12,2) NOT NULL, updated_at DATETIME(6) NOT NULL, KEY (wseq)) ENGINE=InnoDB";

/// Which row each write touches. Write `w` (1-based) is `ids[w - 1]`; seeded rows (the UPDATEs'
/// targets) have ids `1..=seeded`, INSERTs take the ids after them.
struct Plan {
    warmup: u64,
    total: u64,
    txn_rows: u64,
    ids: Vec<u64>,
    update: Vec<bool>,
    seeded: u64,
}

impl Plan {
    fn new(c: &Common) -> anyhow::Result<Plan> {
        if c.rate == 0 || c.seconds == 0 || c.txn_rows == 0 || c.update_pct > 100 {
            bail!("rate, seconds and txn_rows must be at least 1, update_pct at most 100");
        }
        let measured = c.rate * c.seconds;
        let total = c.warmup_rows + measured;
        // 37 is prime to 100: every 100 measured writes hold exactly update_pct UPDATEs, spread out.
        let update: Vec<bool> = (1..=total)
            .map(|w| w > c.warmup_rows && (w * 37) % 100 < c.update_pct)
            .collect();
        let seeded = update.iter().filter(|u| **u).count() as u64;
        let (mut next_seeded, mut next_new) = (0, seeded);
        let ids = update
            .iter()
            .map(|u| {
                let next = if *u { &mut next_seeded } else { &mut next_new };
                *next += 1;
                *next
            })
            .collect();
        Ok(Plan {
            warmup: c.warmup_rows,
            total,
            txn_rows: c.txn_rows,
            ids,
            update,
            seeded,
        })
    }

    fn id(&self, w: u64) -> u64 {
        self.ids[(w - 1) as usize]
    }

    fn is_update(&self, w: u64) -> bool {
        self.update[(w - 1) as usize]
    }

    /// `wseq` by id (index 0 unused).
    fn wseq_by_id(&self) -> Vec<u64> {
        let mut by_id = vec![0; self.total as usize + 1];
        for w in 1..=self.total {
            by_id[self.id(w) as usize] = w;
        }
        by_id
    }

    /// One transaction of the writes `lo..=hi`: BEGIN, a multi-row INSERT, one UPDATE per
    /// updated row, COMMIT, sent as one multi-statement string (one round trip).
    fn transaction(&self, db: &str, lo: u64, hi: u64) -> String {
        let mut sql = String::from("BEGIN;");
        let mut inserts = Vec::new();
        for w in lo..=hi {
            let id = self.id(w);
            if self.is_update(w) {
                sql.push_str(&format!(
                    "UPDATE `{db}`.items SET rev = rev + 1, wseq = {w}, status = 'paid', \
                     amount = amount + 1, updated_at = NOW(6) WHERE id = {id};"
                ));
            } else {
                inserts.push(format!(
                    "({id}, 0, {w}, 'item number {id}', 'new', {}.{:02}, NOW(6))",
                    id % 100_000,
                    id % 100
                ));
            }
        }
        if !inserts.is_empty() {
            sql.push_str(&format!(
                "INSERT INTO `{db}`.items (id, rev, wseq, name, status, amount, updated_at) VALUES {};",
                inserts.join(",")
            ));
        }
        sql.push_str("COMMIT");
        sql
    }
}

/// Per write, a time in nanoseconds since `base` plus one (0: not yet), set once.
struct Marks(Vec<AtomicU64>);

impl Marks {
    fn new(total: u64) -> Marks {
        Marks((0..=total).map(|_| AtomicU64::new(0)).collect())
    }

    /// Sets write `w`'s time unless it has one; true if it was set now.
    fn set_once(&self, w: u64, nanos: u64) -> bool {
        self.0.get(w as usize).is_some_and(|m| {
            m.compare_exchange(0, nanos + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        })
    }

    fn get(&self, w: u64) -> Option<u64> {
        match self.0.get(w as usize)?.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n - 1),
        }
    }

    fn all_set(&self, range: std::ops::RangeInclusive<u64>) -> bool {
        range.into_iter().all(|w| self.get(w).is_some())
    }

    /// The first write from `from` on (up to `to`) without a time; `to + 1` when all have one.
    fn first_unset(&self, from: u64, to: u64) -> u64 {
        (from..=to)
            .find(|w| self.get(*w).is_none())
            .unwrap_or(to + 1)
    }
}

/// What every task shares: the clock, the plan, the commit times and each probe's times.
struct Shared {
    base: Instant,
    plan: Plan,
    commits: Marks,
    probes: [Marks; 4],
    stop: AtomicBool,
}

impl Shared {
    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

const CACHE: usize = 0;
const REPLICA: usize = 1;
const SEARCH: usize = 2;
const TOPIC: usize = 3;
const PROBE_NAMES: [&str; 4] = [
    "cache key deleted",
    "replica row visible",
    "search-visible",
    "on the topic",
];
/// p99 targets in milliseconds; the topic's probe only shows the capture's share.
const TARGETS_MS: [Option<f64>; 4] = [Some(100.0), Some(100.0), Some(1500.0), None];

/// Round trips of one polling probe, for its resolution.
#[derive(Default)]
struct PollStats {
    polls: u64,
    total: Duration,
    max: Duration,
}

impl PollStats {
    fn add(&mut self, d: Duration) {
        self.polls += 1;
        self.total += d;
        self.max = self.max.max(d);
    }

    fn mean_ms(&self) -> f64 {
        if self.polls == 0 {
            0.0
        } else {
            self.total.as_secs_f64() * 1000.0 / self.polls as f64
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Setup(c) => rt.block_on(setup(&c)),
        Command::WaitTopic {
            brokers,
            topic,
            timeout_secs,
        } => wait_topic(&brokers, &topic, Duration::from_secs(timeout_secs)),
        Command::Run(args) => rt.block_on(run(args)),
    }
}

async fn setup(c: &Common) -> anyhow::Result<()> {
    let plan = Plan::new(c)?;
    let mut conn = MySqlConnection::connect(&c.mysql_url)
        .await
        .with_context(|| format!("connect to {}", redact(&c.mysql_url)))?;
    for db in [&c.source_db, &c.replica_db] {
        sqlx::raw_sql(&format!(
            "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.items {TABLE_DDL}"
        ))
        .execute(&mut conn)
        .await
        .with_context(|| format!("create {db}.items"))?;
    }
    // The UPDATEs' rows, before the capture's start: in the replica already, as if it had been
    // in step before the run.
    let src = &c.source_db;
    for lo in (1..=plan.seeded).step_by(1000) {
        let hi = (lo + 999).min(plan.seeded);
        let rows: Vec<String> = (lo..=hi)
            .map(|id| {
                format!(
                    "({id}, 0, 0, 'item number {id}', 'new', {}.{:02}, NOW(6))",
                    id % 100_000,
                    id % 100
                )
            })
            .collect();
        sqlx::raw_sql(&format!(
            "INSERT INTO `{src}`.items (id, rev, wseq, name, status, amount, updated_at) VALUES {}",
            rows.join(",")
        ))
        .execute(&mut conn)
        .await
        .context("seed the source table")?;
    }
    sqlx::raw_sql(&format!(
        "INSERT INTO `{}`.items SELECT * FROM `{src}`.items",
        c.replica_db
    ))
    .execute(&mut conn)
    .await
    .context("copy the seeded rows into the replica")?;
    // The index's settings are the server's defaults (refresh_interval 1 s); only wseq is mapped
    // ahead, so the probe's range query works before the first document arrives.
    let es = es_client(&c.es_url)?;
    let resp = es
        .indices()
        .create(IndicesCreateParts::Index(&c.index))
        .body(json!({"mappings": {"properties": {"wseq": {"type": "long"}}}}))
        .send()
        .await
        .context("create the index")?;
    if !resp.status_code().is_success() {
        bail!(
            "create index {}: {}",
            c.index,
            resp.text().await.unwrap_or_default()
        );
    }
    let (file, pos): (String, u64) = sqlx::query_as("SHOW MASTER STATUS")
        .fetch_one(&mut conn)
        .await
        .context("SHOW MASTER STATUS (is the binlog on?)")?;
    println!("{file}:{pos}");
    Ok(())
}

fn wait_topic(brokers: &str, topic: &str, timeout: Duration) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            if md
                .topics()
                .iter()
                .any(|t| t.error().is_none() && !t.partitions().is_empty())
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("topic {topic} does not exist on {brokers} after {timeout:?}; is sluice-capture running?");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let c = &args.common;
    let plan = Plan::new(c)?;
    let total = plan.total;
    let shared = Arc::new(Shared {
        base: Instant::now(),
        commits: Marks::new(total),
        probes: [(); 4].map(|_| Marks::new(total)),
        plan,
        stop: AtomicBool::new(false),
    });
    precreate_keys(&args.redis_url, &args.key_prefix, total).await?;

    // Each probe on a thread and runtime of its own, so its timestamps do not wait for the writer.
    let (ready_tx, ready_rx) = mpsc::channel::<anyhow::Result<()>>();
    let mut probes = Vec::new();
    {
        let (s, tx, url, prefix) = (
            shared.clone(),
            ready_tx.clone(),
            args.redis_url.clone(),
            args.key_prefix.clone(),
        );
        probes.push(std::thread::spawn(move || {
            on_own_runtime(cache_probe(&s, &url, &prefix, &tx))
        }));
    }
    {
        let (s, tx) = (shared.clone(), ready_tx.clone());
        let url = format!("{}/{}", c.mysql_url, c.replica_db);
        let poll = Duration::from_millis(args.replica_poll_ms);
        probes.push(std::thread::spawn(move || {
            on_own_runtime(replica_probe(&s, &url, poll, &tx))
        }));
    }
    {
        let (s, tx) = (shared.clone(), ready_tx.clone());
        let (url, index) = (c.es_url.clone(), c.index.clone());
        let poll = Duration::from_millis(args.es_poll_ms);
        probes.push(std::thread::spawn(move || {
            on_own_runtime(search_probe(&s, &url, &index, poll, &tx))
        }));
    }
    {
        let (s, tx) = (shared.clone(), ready_tx.clone());
        let (brokers, topic) = (args.brokers.clone(), args.topic.clone());
        probes.push(std::thread::spawn(move || {
            topic_probe(&s, &brokers, &topic, &tx)
        }));
    }
    drop(ready_tx);
    for _ in 0..probes.len() {
        ready_rx.recv().context("a probe failed to start")??;
    }

    // Warm-up: start-up, group joins and first connections are not part of the figures.
    let source_url = format!("{}/{}", c.mysql_url, c.source_db);
    let warm = shared.plan.warmup;
    if warm > 0 {
        write(
            &shared,
            &source_url,
            &c.source_db,
            1,
            warm,
            c.rate,
            args.writers,
        )
        .await?;
        let deadline = Instant::now() + Duration::from_secs(args.warmup_timeout_secs);
        while !shared.probes.iter().all(|p| p.all_set(1..=warm)) {
            if Instant::now() > deadline {
                let missing: Vec<&str> = (0..PROBE_NAMES.len())
                    .filter(|&i| !shared.probes[i].all_set(1..=warm))
                    .map(|i| PROBE_NAMES[i])
                    .collect();
                stop(&shared, probes);
                bail!(
                    "the warm-up rows did not all arrive within {} s ({} missing); see the logs of capture and sinks",
                    args.warmup_timeout_secs,
                    missing.join(", ")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let es = es_client(&c.es_url)?;
    let refresh_start = refreshes(&es, &c.index).await?;
    let load_start = loadavg();
    let cpu_start: Vec<Option<f64>> = args
        .pids
        .iter()
        .map(|(_, p)| common::cpu_secs(*p))
        .collect();
    let own_cpu_start = common::cpu_secs(std::process::id());
    let started = Instant::now();
    let lateness = write(
        &shared,
        &source_url,
        &c.source_db,
        warm + 1,
        total,
        c.rate,
        args.writers,
    )
    .await?;
    let written = started.elapsed();
    let measured = warm + 1..=total;
    let deadline = Instant::now() + Duration::from_secs(args.tail_secs);
    let mut firsts = [warm + 1; 4];
    loop {
        for (first, marks) in firsts.iter_mut().zip(&shared.probes) {
            *first = marks.first_unset(*first, total);
        }
        if firsts.iter().all(|f| *f > total) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let window = started.elapsed();
    let load_end = loadavg();
    let refresh_end = refreshes(&es, &c.index).await?;
    let cpu: Vec<Option<f64>> = args
        .pids
        .iter()
        .zip(&cpu_start)
        .map(|((_, p), before)| Some(common::cpu_secs(*p)? - (*before)?))
        .collect();
    let own_cpu = common::cpu_secs(std::process::id()).zip(own_cpu_start);
    let stats = stop(&shared, probes);

    // The report.
    let rows = total - warm;
    let updates = measured
        .clone()
        .filter(|w| shared.plan.is_update(*w))
        .count();
    println!(
        "measured rows: {rows} ({} INSERTs, {updates} UPDATEs), transactions of {} rows from {} connections, after {warm} warm-up rows",
        rows as usize - updates,
        c.txn_rows,
        args.writers
    );
    println!(
        "write rate: {:.0} rows/s achieved over {:.1} s (asked {} rows/s); a transaction started at most {:.1} ms after its scheduled time",
        rows as f64 / written.as_secs_f64(),
        written.as_secs_f64(),
        c.rate,
        lateness.as_secs_f64() * 1000.0
    );
    println!("load average (1, 5, 15 min): {load_start} at the start, {load_end} at the end");
    let mut usage: Vec<String> = args
        .pids
        .iter()
        .zip(&cpu)
        .filter_map(|((name, _), s)| {
            Some(format!(
                "{name} {:.0}%",
                s.as_ref()? * 100.0 / window.as_secs_f64()
            ))
        })
        .collect();
    if let Some((after, before)) = own_cpu {
        usage.push(format!(
            "writer+probes {:.0}%",
            (after - before) * 100.0 / window.as_secs_f64()
        ));
    }
    println!(
        "CPU over the {:.1} s of writes and tail, % of one core: {}",
        window.as_secs_f64(),
        usage.join(", ")
    );
    let (n, ms_total) = (
        refresh_end.0 - refresh_start.0,
        refresh_end.1 - refresh_start.1,
    );
    println!(
        "OpenSearch refreshed the index {n} times in that window, {:.0} ms each on average",
        if n == 0 {
            0.0
        } else {
            ms_total as f64 / n as f64
        }
    );
    let resolution = [
        "exact (keyspace notification)".to_owned(),
        format!(
            "poll {} ms + {:.1} ms query",
            args.replica_poll_ms,
            stats[REPLICA].mean_ms()
        ),
        format!(
            "poll {} ms + {:.1} ms count/search",
            args.es_poll_ms,
            stats[SEARCH].mean_ms()
        ),
        "consumer receipt (no group)".to_owned(),
    ];
    let missed = print_latencies(&shared, measured, &resolution);
    println!(
        "targets: p99 <= 100 ms for the cache key and the replica row, <= 1500 ms for search: {}",
        if missed { "MISSED" } else { "met" }
    );
    Ok(())
}

/// The table of latencies per probe, then per kind of write; true if a target was missed.
fn print_latencies(
    shared: &Shared,
    measured: std::ops::RangeInclusive<u64>,
    resolution: &[String; 4],
) -> bool {
    println!(
        "{:<20} {:<36} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}  {:>12}",
        "latency",
        "resolution",
        "rows",
        "seen",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "p99 target"
    );
    let mut missed = false;
    for (i, name) in PROBE_NAMES.iter().enumerate() {
        let lat = latencies(shared, i, measured.clone(), |_| true);
        let seen = lat.iter().filter(|l| l.is_finite()).count();
        let p99 = percentile(&lat, 0.99);
        let (target, verdict) = match TARGETS_MS[i] {
            Some(t) if p99 <= t => (format!("{t} ms"), "met"),
            Some(t) => {
                missed = true;
                (format!("{t} ms"), "MISSED")
            }
            None => ("-".to_owned(), ""),
        };
        println!(
            "{name:<20} {:<36} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}  {:>12} {}",
            resolution[i],
            lat.len(),
            seen,
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.95)),
            ms(p99),
            ms(percentile(&lat, 1.0)),
            target,
            verdict
        );
    }
    for (kind, is_update) in [("INSERTs", false), ("UPDATEs", true)] {
        let p: Vec<String> = (0..PROBE_NAMES.len())
            .map(|i| {
                let lat = latencies(shared, i, measured.clone(), |w| {
                    shared.plan.is_update(w) == is_update
                });
                format!(
                    "{} p50 {} / p99 {}",
                    PROBE_NAMES[i],
                    ms(percentile(&lat, 0.5)),
                    ms(percentile(&lat, 0.99))
                )
            })
            .collect();
        println!("  {kind} only: {} ms", p.join(", "));
    }
    missed
}

/// Runs `fut` on a current-thread runtime on this thread.
fn on_own_runtime<T>(
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(fut)
}

/// Stops the probes and returns their poll statistics (cache, replica, search, topic).
fn stop(
    shared: &Shared,
    probes: Vec<std::thread::JoinHandle<anyhow::Result<PollStats>>>,
) -> Vec<PollStats> {
    shared.stop.store(true, Ordering::Relaxed);
    probes
        .into_iter()
        .enumerate()
        .map(|(i, h)| match h.join() {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                eprintln!("the {} probe stopped: {e:#}", PROBE_NAMES[i]);
                PollStats::default()
            }
            Err(_) => {
                eprintln!("the {} probe panicked", PROBE_NAMES[i]);
                PollStats::default()
            }
        })
        .collect()
}

/// Writes `lo..=hi` in transactions of `txn_rows`, transaction `j` at `j * txn_rows / rate` s
/// after the start, from `writers` connections, recording each row's commit time. Returns how
/// late the latest transaction started against its schedule.
async fn write(
    shared: &Arc<Shared>,
    url: &str,
    db: &str,
    lo: u64,
    hi: u64,
    rate: u64,
    writers: usize,
) -> anyhow::Result<Duration> {
    let txn_rows = shared.plan.txn_rows;
    let txns = (hi - lo + 1).div_ceil(txn_rows);
    let next = Arc::new(AtomicU64::new(0));
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers.max(1) {
        let mut conn = MySqlConnection::connect(url)
            .await
            .with_context(|| format!("connect to {}", redact(url)))?;
        let (shared, next, db) = (shared.clone(), next.clone(), db.to_owned());
        tasks.spawn(async move {
            let mut late = Duration::ZERO;
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                if j >= txns {
                    return anyhow::Ok(late);
                }
                let due = start + Duration::from_secs_f64((j * txn_rows) as f64 / rate as f64);
                tokio::time::sleep_until(due).await;
                late = late.max(tokio::time::Instant::now().saturating_duration_since(due));
                let first = lo + j * txn_rows;
                let last = (first + txn_rows - 1).min(hi);
                let sql = shared.plan.transaction(&db, first, last);
                // A &str runs as a plain text-protocol query (several statements, one round
                // trip); sqlx::raw_sql's future is not Send-general enough for a spawned task.
                sqlx::Executor::execute(&mut conn, sql.as_str())
                    .await
                    .with_context(|| format!("write rows {first}..={last}"))?;
                let t = shared.now();
                for w in first..=last {
                    shared.commits.set_once(w, t);
                }
            }
        });
    }
    let mut late = Duration::ZERO;
    while let Some(r) = tasks.join_next().await {
        late = late.max(r??);
    }
    Ok(late)
}

/// SETs `<prefix>:<id>` for every id of the run, so each write has a key to delete.
async fn precreate_keys(url: &str, prefix: &str, total: u64) -> anyhow::Result<()> {
    let client = redis::Client::open(url).context("Redis URL")?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connect to Redis at {url}"))?;
    for lo in (1..=total).step_by(1000) {
        let mut cmd = redis::cmd("MSET");
        for id in lo..=(lo + 999).min(total) {
            cmd.arg(format!("{prefix}:{id}")).arg("cached");
        }
        let () = cmd.query_async(&mut conn).await.context("MSET the keys")?;
    }
    Ok(())
}

/// Records, per write, when the server announced its key's deletion.
async fn cache_probe(
    shared: &Shared,
    url: &str,
    prefix: &str,
    ready: &mpsc::Sender<anyhow::Result<()>>,
) -> anyhow::Result<PollStats> {
    let setup = async {
        let client = redis::Client::open(url).context("Redis URL")?;
        let mut pubsub = client
            .get_async_pubsub()
            .await
            .with_context(|| format!("connect to Redis at {url}"))?;
        pubsub
            .subscribe(format!("__keyevent@{}__:del", redis_db(url)))
            .await
            .context("SUBSCRIBE to the del keyevents")?;
        anyhow::Ok(pubsub)
    };
    let pubsub = match setup.await {
        Ok(p) => {
            let _ = ready.send(Ok(()));
            p
        }
        Err(e) => {
            let _ = ready.send(Err(anyhow::anyhow!("{e:#}")));
            return Err(e);
        }
    };
    let by_id = shared.plan.wseq_by_id();
    let ours = format!("{prefix}:");
    let mut messages = pubsub.into_on_message();
    while !shared.stop.load(Ordering::Relaxed) {
        let msg = match tokio::time::timeout(Duration::from_millis(100), messages.next()).await {
            Ok(Some(msg)) => msg,
            Ok(None) => bail!("Redis closed the subscription"),
            Err(_) => continue,
        };
        let t = shared.now();
        let key = msg.get_payload_bytes();
        let id = key
            .strip_prefix(ours.as_bytes())
            .and_then(|id| std::str::from_utf8(id).ok()?.parse::<usize>().ok());
        if let Some(&w) = id.and_then(|id| by_id.get(id)) {
            shared.probes[CACHE].set_once(w, t);
        }
    }
    Ok(PollStats::default())
}

/// Polls the replica for rows whose `wseq` is above every write seen so far.
async fn replica_probe(
    shared: &Shared,
    url: &str,
    poll: Duration,
    ready: &mpsc::Sender<anyhow::Result<()>>,
) -> anyhow::Result<PollStats> {
    let mut conn = match MySqlConnection::connect(url).await {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            c
        }
        Err(e) => {
            let e = anyhow::anyhow!("connect to {}: {e}", redact(url));
            let _ = ready.send(Err(anyhow::anyhow!("{e:#}")));
            return Err(e);
        }
    };
    let marks = &shared.probes[REPLICA];
    let mut stats = PollStats::default();
    let mut low = 0;
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !shared.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let sent = Instant::now();
        // Autocommit: every SELECT reads the latest committed rows.
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT wseq FROM items WHERE wseq > ?")
            .bind(low as i64)
            .fetch_all(&mut conn)
            .await
            .context("poll the replica")?;
        let t = shared.now();
        stats.add(sent.elapsed());
        for (w,) in rows {
            marks.set_once(w as u64, t);
        }
        while low < shared.plan.total && marks.get(low + 1).is_some() {
            low += 1;
        }
    }
    Ok(stats)
}

/// Polls `_count` of the documents above every write seen so far and, when there are more than
/// seen, fetches them with `_search` (sorted by `wseq`, pages of 10,000).
async fn search_probe(
    shared: &Shared,
    url: &str,
    index: &str,
    poll: Duration,
    ready: &mpsc::Sender<anyhow::Result<()>>,
) -> anyhow::Result<PollStats> {
    let es = match es_client(url) {
        Ok(es) => {
            let _ = ready.send(Ok(()));
            es
        }
        Err(e) => {
            let _ = ready.send(Err(anyhow::anyhow!("{e:#}")));
            return Err(e);
        }
    };
    let marks = &shared.probes[SEARCH];
    let mut stats = PollStats::default();
    let (mut low, mut seen) = (0u64, 0u64);
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !shared.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let sent = Instant::now();
        let count = es_json(
            es.count(CountParts::Index(&[index]))
                .body(json!({"query": {"range": {"wseq": {"gt": low}}}}))
                .send()
                .await,
        )
        .await?;
        let count = count["count"].as_u64().context("no count in _count")?;
        // Every write up to `low` has been seen, so `seen - low` of the documents counted are too.
        if count > seen - low {
            let mut after = low;
            loop {
                let page = es_json(
                    es.search(SearchParts::Index(&[index]))
                        .body(json!({
                            "query": {"range": {"wseq": {"gt": after}}},
                            "sort": [{"wseq": "asc"}],
                            "size": 10000,
                            // wseq comes back as the sort value: no stored field (not even
                            // _id) is read, which kept a search thread busy decompressing.
                            "stored_fields": "_none_",
                            "track_total_hits": false
                        }))
                        .send()
                        .await,
                )
                .await?;
                let t = shared.now();
                let hits = page["hits"]["hits"].as_array().cloned().unwrap_or_default();
                for h in &hits {
                    if let Some(w) = h["sort"][0].as_u64() {
                        seen += u64::from(marks.set_once(w, t));
                        after = w;
                    }
                }
                if hits.len() < 10000 {
                    break;
                }
            }
            while low < shared.plan.total && marks.get(low + 1).is_some() {
                low += 1;
            }
        }
        stats.add(sent.elapsed());
    }
    Ok(stats)
}

/// The index's refreshes so far and the milliseconds they took (primaries).
async fn refreshes(es: &Elasticsearch, index: &str) -> anyhow::Result<(u64, u64)> {
    let stats = es_json(
        es.indices()
            .stats(IndicesStatsParts::IndexMetric(&[index], &["refresh"]))
            .send()
            .await,
    )
    .await?;
    let r = &stats["_all"]["primaries"]["refresh"];
    Ok((
        r["total"].as_u64().unwrap_or(0),
        r["total_time_in_millis"].as_u64().unwrap_or(0),
    ))
}

/// Reads the topic from its beginning with a plain consumer (assigned, no group) and records
/// when each write's event arrived: what the capture, Kafka and one fetch add.
fn topic_probe(
    shared: &Shared,
    brokers: &str,
    topic: &str,
    ready: &mpsc::Sender<anyhow::Result<()>>,
) -> anyhow::Result<PollStats> {
    let setup = || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "sluice-latency-probe")
            .set("enable.auto.commit", "false")
            .create()?;
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .with_context(|| format!("metadata of {topic}"))?;
        let mut tpl = TopicPartitionList::new();
        for t in md.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            }
        }
        consumer.assign(&tpl)?;
        anyhow::Ok(consumer)
    };
    let consumer = match setup() {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            c
        }
        Err(e) => {
            let _ = ready.send(Err(anyhow::anyhow!("{e:#}")));
            return Err(e);
        }
    };
    let marks = &shared.probes[TOPIC];
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let t = shared.now();
        let w = m
            .payload()
            .and_then(|p| serde_json::from_slice::<Value>(p).ok())
            .and_then(|v| v["data"]["wseq"].as_u64());
        if let Some(w) = w {
            marks.set_once(w, t);
        }
    }
    Ok(PollStats::default())
}

fn es_client(url: &str) -> anyhow::Result<Elasticsearch> {
    let url = Url::parse(url).with_context(|| format!("OpenSearch URL {url}"))?;
    Ok(Elasticsearch::new(
        TransportBuilder::new(SingleNodeConnectionPool::new(url)).build()?,
    ))
}

async fn es_json(
    resp: Result<elasticsearch::http::response::Response, elasticsearch::Error>,
) -> anyhow::Result<Value> {
    let resp = resp.context("OpenSearch request")?;
    let status = resp.status_code();
    let body = resp.text().await.context("OpenSearch response")?;
    if !status.is_success() {
        bail!("OpenSearch answered {status}: {body}");
    }
    Ok(serde_json::from_str(&body)?)
}

/// Latencies in ms of the writes in `range` that `keep` keeps, from commit to probe `i`'s time
/// (infinite when the probe never saw the write).
fn latencies(
    shared: &Shared,
    i: usize,
    range: std::ops::RangeInclusive<u64>,
    keep: impl Fn(u64) -> bool,
) -> Vec<f64> {
    let mut lat: Vec<f64> = range
        .filter(|w| keep(*w))
        .map(|w| match (shared.commits.get(w), shared.probes[i].get(w)) {
            (Some(c), Some(s)) => (s as f64 - c as f64) / 1e6,
            _ => f64::INFINITY,
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    lat
}

/// Nearest-rank percentile of sorted values (NaN for none).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(v: f64) -> String {
    if v.is_infinite() {
        "not seen".into()
    } else {
        format!("{v:.1}")
    }
}

/// The database number of a `redis://host:port/N` URL (0 without one).
fn redis_db(url: &str) -> u32 {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split_once('/')
        .and_then(|(_, db)| db.split(['?', '#']).next()?.parse().ok())
        .unwrap_or(0)
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
