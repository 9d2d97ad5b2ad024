//! The chaos run (scripts/chaos.sh, docs/reliability.md): the whole pipeline under a seeded
//! random workload while a fault schedule strikes, then proof that nothing was lost.
//!
//! The parts: the shared MariaDB as the source (one database of its own); a private Apache
//! Kafka broker; a fleet of two capture workers capturing the source transactionally; one
//! sluice-sink writing a MySQL replica (a private MariaDB), an OpenSearch index (the shared
//! node) and Redis invalidations (a private Redis). Every connection from the pipeline to a
//! server other than Kafka goes through a [`TcpProxy`] that the schedule delays and cuts. The
//! faults: SIGKILL of a capture worker and of the sink (restarted), SIGKILL and restart of the
//! broker, the replica and Redis, SIGSTOP of a worker or the sink past their session timeouts,
//! network delays, cuts and refusals. At the end the replica and the index must equal the source,
//! every changed row's stale cache key must be gone, each key's version must never have gone
//! backwards in the targets (sampled throughout), and the dead-letter topic must be empty.

mod check;
mod faults;
mod workload;

pub use check::Sample;
pub use faults::{Fault, Schedule};
pub use workload::{Done, Workload};

use crate::broker::PrivateBroker;
use crate::fleet::Fleet;
use crate::mariadb::PrivateMariaDb;
use crate::redis_server::PrivateRedis;
use crate::tcp_proxy::TcpProxy;
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::process::Child;

/// How long and how hard.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// How long the workload and the faults run.
    pub duration: Duration,
    /// Mean seconds between faults.
    pub fault_every: Duration,
    /// Workload transactions per second, about.
    pub rate: u32,
    /// How long the pipeline may take to converge after the last fault.
    pub converge_within: Duration,
}

/// What a run did and found.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub done: Done,
    pub faults: BTreeMap<&'static str, usize>,
    pub converged_after: Duration,
    pub samples: usize,
    pub source_rows: usize,
    pub dead_letters: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.done;
        writeln!(f, "chaos run, seed {}", self.seed)?;
        writeln!(
            f,
            "  workload: {} transactions ({} large), {} row changes, {} key changes, {} deletes, {} DDL; {} rows at the end",
            d.transactions, d.large_transactions, d.row_changes, d.key_changes, d.deletes, d.ddl, self.source_rows
        )?;
        let total: usize = self.faults.values().sum();
        writeln!(f, "  faults: {total} in all")?;
        for (kind, n) in &self.faults {
            writeln!(f, "    {kind:<28} {n}")?;
        }
        writeln!(
            f,
            "  converged {:.1} s after the last fault: replica = source, index = source, {} stale cache keys all deleted, dead letters {}",
            self.converged_after.as_secs_f64(),
            d.changed.len(),
            self.dead_letters
        )?;
        write!(
            f,
            "  per-key order: {} samples of the replica and the index, no version ever went back",
            self.samples
        )
    }
}

/// Everything the run started, so the fault schedule can reach it.
pub struct Rig {
    pub db: String,
    pub topic: String,
    pub broker: PrivateBroker,
    pub replica: PrivateMariaDb,
    pub redis: PrivateRedis,
    pub src_proxy: TcpProxy,
    pub rep_proxy: TcpProxy,
    pub redis_proxy: TcpProxy,
    pub es_proxy: TcpProxy,
    pub fleet: Fleet,
    pub sink: Option<Child>,
    pub sink_config: PathBuf,
    pub sink_starts: usize,
    pub index: String,
}

impl Rig {
    /// Starts (or starts again) the sink process.
    pub fn start_sink(&mut self) {
        self.sink_starts += 1;
        let log = self
            .fleet
            .dir
            .join(format!("sink-{}.log", self.sink_starts));
        self.sink = Some(crate::process::spawn_run(
            &crate::process::sink_binary(),
            &self.sink_config,
            &[],
            &[],
            &log,
        ));
    }
}

/// Runs the whole chaos run; `Err` says what did not hold.
pub async fn run(opts: Options) -> Result<Report, String> {
    let mut rig = setup().await?;
    let started = Instant::now();
    // The workload runs on while faults strike.
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = {
        let (db, redis_url, stop) = (rig.db.clone(), rig.redis.url(), stop.clone());
        let (seed, rate, duration) = (opts.seed, opts.rate, opts.duration);
        tokio::spawn(async move { write(seed, rate, duration, db, redis_url, stop).await })
    };
    let mut schedule = Schedule::new(opts.seed ^ 0x5eed, opts.fault_every);
    let mut sampler = check::Sampler::new(&rig).await?;
    let mut next_fault = Instant::now() + schedule.next_gap();
    while started.elapsed() < opts.duration && !writer.is_finished() {
        if Instant::now() >= next_fault {
            let fault = schedule.pick();
            eprintln!(
                "[chaos] {:>6.1} s: {}",
                started.elapsed().as_secs_f64(),
                fault.name()
            );
            faults::strike(fault, &mut rig, &mut schedule).await?;
            next_fault = Instant::now() + schedule.next_gap();
        }
        sampler.sample(&rig).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.cancel();
    let done = writer
        .await
        .map_err(|e| format!("the workload task failed: {e}"))??;
    faults::check_running(&mut rig)?;
    let last_fault = Instant::now();
    eprintln!(
        "[chaos] {:.1} s: faults over after {} transactions; waiting for the pipeline to converge",
        started.elapsed().as_secs_f64(),
        done.transactions
    );
    let source_rows = check::converge(&rig, &done, opts.converge_within, &mut sampler).await?;
    let converged_after = last_fault.elapsed();
    let dead_letters = check::dead_letters(&rig).await?;
    if dead_letters > 0 {
        return Err(format!("{dead_letters} messages in {}.dlq", rig.topic));
    }
    Ok(Report {
        seed: opts.seed,
        done,
        faults: schedule.counts,
        converged_after,
        samples: sampler.samples,
        source_rows,
        dead_letters,
    })
}

/// The workload until `stop` (or `duration`), about `rate` transactions a second; the DDL at
/// half time.
async fn write(
    seed: u64,
    rate: u32,
    duration: Duration,
    db: String,
    redis_url: String,
    stop: tokio_util::sync::CancellationToken,
) -> Result<Done, String> {
    let mut workload = Workload::new(seed, &db);
    let mut conn = mysql_async::Conn::from_url(crate::mysql_url())
        .await
        .map_err(|e| format!("connect to the source: {e}"))?;
    let started = Instant::now();
    let step_every = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut cache = None;
    while !stop.is_cancelled() && started.elapsed() < duration {
        if cache.is_none() {
            cache = redis_conn(&redis_url).await;
        }
        let ddl_now = started.elapsed() >= duration / 2;
        workload
            .step(&mut conn, cache.as_mut(), ddl_now)
            .await
            .map_err(|e| format!("the workload failed: {e}"))?;
        if workload.done.cache_misses > 0 {
            // Redis went away (a fault): connect again at the next step.
            cache = None;
            workload.done.cache_misses = 0;
        }
        tokio::time::sleep(step_every).await;
    }
    Ok(workload.done)
}

async fn redis_conn(url: &str) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url).ok()?;
    tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .ok()?
    .ok()
}

/// Starts every part.
async fn setup() -> Result<Rig, String> {
    let name = crate::unique_name("chaos");
    let db = name.clone();
    let mut conn = mysql_async::Conn::from_url(crate::mysql_url())
        .await
        .map_err(|e| format!("connect to MariaDB: {e}"))?;
    let start = crate::fleet::source_tables(
        &mut conn,
        std::slice::from_ref(&db),
        "id BIGINT PRIMARY KEY, v BIGINT NOT NULL, note VARCHAR(64)",
    )
    .await?;
    let (broker, replica, redis) = tokio::join!(
        PrivateBroker::start("chaos_kafka"),
        PrivateMariaDb::start("chaos_replica", &[]),
        PrivateRedis::start("chaos_redis"),
    );
    let (broker, replica, redis) = (broker?, replica?, redis?);
    let mut root = replica.root().await.map_err(|e| e.to_string())?;
    root.query_drop(
        "CREATE DATABASE rep; CREATE TABLE rep.t (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, note VARCHAR(64), extra INT NULL, seq_v BIGINT NULL)",
    )
    .await
    .map_err(|e| format!("create the replica table: {e}"))?;
    let src_proxy = TcpProxy::start("127.0.0.1:3307").await?;
    let rep_proxy = TcpProxy::start(&replica.url().replace("mysql://sluice:sluice@", "")).await?;
    let redis_proxy = TcpProxy::start(&redis.addr()).await?;
    let es = crate::es_url();
    let es_addr = es
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let es_proxy = TcpProxy::start(&es_addr).await?;
    let src_url = format!("mysql://sluice:sluice@{}", src_proxy.addr());
    let mut fleet = Fleet::on(
        &broker.brokers(),
        &src_url,
        &name,
        std::slice::from_ref(&db),
        &start,
        6_000,
    );
    let topic = db.clone();
    let index = format!("{name}_idx");
    let sink_config = fleet.dir.join("sink.toml");
    let group = format!("{name}_sink");
    let head = crate::sink::SinkToml {
        brokers: broker.brokers(),
        ..crate::sink::SinkToml::new(&topic, &group)
    }
    .text();
    let text = format!(
        r#"{head}[targets.replica]
type = "mysql"
url = "mysql://sluice:sluice@{rep}/rep"
pool_size = 2
timeout_ms = 5000
[targets.search]
type = "elasticsearch"
urls = ["http://{es}"]
timeout_ms = 5000
[targets.cache]
type = "redis"
url = "redis://{redis}"
[[rules]]
name = "replica"
target = "replica"
match = {{ tables = ["{db}.t"] }}
[rules.mysql]
table = "t"
version_column = "seq_v"
[[rules]]
name = "search"
target = "search"
match = {{ tables = ["{db}.t"] }}
[rules.elasticsearch]
index = "{index}"
[[rules]]
name = "cache"
target = "cache"
match = {{ tables = ["{db}.t"] }}
[rules.redis]
keys = ["t:{{id}}"]
"#,
        rep = rep_proxy.addr(),
        es = es_proxy.addr(),
        redis = redis_proxy.addr(),
    );
    std::fs::write(&sink_config, text).map_err(|e| e.to_string())?;
    for w in ["w1", "w2"] {
        fleet.start(w);
    }
    let mut rig = Rig {
        db,
        topic,
        broker,
        replica,
        redis,
        src_proxy,
        rep_proxy,
        redis_proxy,
        es_proxy,
        fleet,
        sink: None,
        sink_config,
        sink_starts: 0,
        index,
    };
    rig.start_sink();
    Ok(rig)
}
