//! End-to-end tests of the sink's consumer-group membership on Apache Kafka: the whole pipeline
//! (`sluice-capture` and `sluice-sink` as processes, MariaDB as source and MySQL-replica target)
//! with 6 s group sessions, under writes.
//!
//! - The broker frozen (SIGSTOP) for longer than the session timeout: when it answers again the
//!   sink's session has expired; it must rejoin by itself, consume again within seconds, and the
//!   replica converge.
//! - A snapshot of a 20,000-row composite-key table under about a thousand concurrent writes of
//!   every kind (updates, deletes, inserts, key changes, range updates): the replica converges.

use mysql_async::prelude::Queryable;
use sluice_integration::broker::PrivateBroker;
use sluice_integration::capture::{kafka_table, CaptureToml};
use sluice_integration::process::{
    assert_running, capture_binary, sink_binary, spawn_run, tail, terminate,
};
use sluice_integration::sink::SinkToml;
use sluice_integration::wait::Deadline;
use sluice_integration::{create_topic_on, kafka_brokers, mysql, mysql_url, unique_name};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::Child;

const PARTITIONS: i32 = 4;
/// The sink's `session.timeout.ms`, as in the runs where a sink lost its session under load.
const SESSION_MS: u32 = 6_000;

/// The table on both sides: a composite primary key, and on the replica a version column.
fn table(version: bool) -> String {
    format!(
        "t (tenant INT NOT NULL, id BIGINT NOT NULL, v BIGINT NOT NULL, name VARCHAR(40) NOT NULL, \
         amount DECIMAL(12,2) NOT NULL,{} PRIMARY KEY (tenant, id)) ENGINE=InnoDB",
        if version { " version BIGINT NULL," } else { "" }
    )
}

/// Source and replica databases, the topic, the two processes and their logs.
struct Pipeline {
    src: String,
    rep: String,
    brokers: String,
    sink_config: sluice_sinks::SinkConfig,
    dir: PathBuf,
    capture: Child,
    sink: Child,
}

impl Pipeline {
    /// Creates `rows` source rows, the topic, and starts the capture and the sink. With
    /// `snapshot`, the rows come before the capture's start position and an initial snapshot
    /// (chunks of 2,000 rows) brings them; else the capture reads their inserts.
    async fn start(name: &str, brokers: &str, rows: u64, snapshot: bool) -> Pipeline {
        let src = unique_name(&format!("{name}_src"));
        let rep = format!("{src}_rep");
        let mut c = mysql::conn().await;
        mysql::create_database(&mut c, &src, &[&table(false)]).await;
        mysql::create_database(&mut c, &rep, &[&table(true)]).await;
        let before = mysql::binlog_end(&mut c).await;
        if rows > 0 {
            c.query_drop(format!(
                "INSERT INTO {src}.t SELECT seq % 10, seq, seq, CONCAT('row-', seq), seq / 4 \
                 FROM {src}.seq_1_to_{rows}"
            ))
            .await
            .unwrap();
        }
        let (file, pos) = if snapshot {
            mysql::binlog_end(&mut c).await
        } else {
            before
        };
        let topic = format!("sluice.{src}");
        create_topic_on(brokers, &topic, PARTITIONS).await.unwrap();
        let dir = std::env::temp_dir().join(unique_name(name));
        std::fs::create_dir_all(&dir).unwrap();

        let snapshot = if snapshot {
            format!(
                "[snapshot]\nsignal_table = \"{src}.sluice_signal\"\nmode = \"initial\"\n\
                 tables = [\"{src}.t\"]\nchunk_size = 2000\n"
            )
        } else {
            String::new()
        };
        let capture_toml = CaptureToml {
            // A range of replica ids of their own, apart from the other tests' ids.
            server_id: 3_000_000 + rand::random::<u32>() % 1_000_000,
            start: Some(format!("{file}:{pos}")),
            heartbeat_secs: Some(1),
            kafka: format!(
                "{}[kafka.options]\n\"socket.timeout.ms\" = \"5000\"\n",
                kafka_table(brokers)
            ),
            checkpoint_interval_ms: Some(100),
            include: format!(r"^{src}\.(t|sluice_signal)$"),
            metrics: true,
            extra: snapshot,
            ..CaptureToml::new(&src, &dir)
        }
        .text();
        let group = unique_name("g");
        let head = SinkToml {
            brokers: brokers.to_owned(),
            session_timeout_ms: SESSION_MS,
            linger_ms: 10,
            max_items: 200,
            max_backoff_ms: 500,
            ..SinkToml::new(&topic, &group)
        };
        let sink_toml = format!(
            r#"{head}[targets.replica]
type = "mysql"
url = "{url}/{rep}"
pool_size = 4
[[rules]]
name = "t"
target = "replica"
match = {{ tables = ["{src}.t"] }}
[rules.mysql]
version_column = "version"
"#,
            head = head.text(),
            url = mysql_url(),
        );
        let capture_cfg = dir.join("capture.toml");
        let sink_cfg = dir.join("sink.toml");
        std::fs::write(&capture_cfg, capture_toml).unwrap();
        let sink_config = sluice_integration::sink::parse(&sink_toml, &[]);
        std::fs::write(&sink_cfg, sink_toml).unwrap();
        let capture = spawn_run(
            &capture_binary(),
            &capture_cfg,
            &[],
            &[],
            &dir.join("capture.log"),
        );
        let sink = spawn_run(&sink_binary(), &sink_cfg, &[], &[], &dir.join("sink.log"));
        Pipeline {
            src,
            rep,
            brokers: brokers.to_owned(),
            sink_config,
            dir,
            capture,
            sink,
        }
    }

    fn logs(&self) -> String {
        format!(
            "sink log:\n{}\ncapture log:\n{}",
            tail(&self.dir.join("sink.log"), 40),
            tail(&self.dir.join("capture.log"), 20)
        )
    }

    /// Sum of the group's committed offsets; `None` when the broker did not answer.
    async fn committed(&self) -> Option<i64> {
        self.offsets().await.map(|(committed, _)| committed)
    }

    /// Sums of the group's committed offsets and of the high watermarks.
    async fn offsets(&self) -> Option<(i64, i64)> {
        let positions = sluice_integration::sink::positions(&self.sink_config).await?;
        Some(positions.iter().fold((0, 0), |(c, h), (committed, high)| {
            (c + committed.unwrap_or(0), h + high)
        }))
    }

    /// Count and checksum of the source columns, in key order.
    async fn digest(c: &mut mysql_async::Conn, db: &str) -> (u64, u64) {
        let row: (u64, Option<u64>) = c
            .query_first(format!(
                "SELECT COUNT(*), SUM(CRC32(CONCAT_WS('|', tenant, id, v, name, amount))) FROM {db}.t"
            ))
            .await
            .unwrap()
            .unwrap();
        (row.0, row.1.unwrap_or(0))
    }

    /// Waits until the replica holds exactly the source's rows.
    async fn converged(&mut self, secs: u64) {
        let mut c = mysql::conn().await;
        let deadline = Deadline::after(secs);
        loop {
            self.assert_alive();
            let src = Self::digest(&mut c, &self.src).await;
            let rep = Self::digest(&mut c, &self.rep).await;
            if src == rep {
                return;
            }
            let (offsets, topic) = if deadline.passed() {
                (self.offsets().await, self.topic_rows().await)
            } else {
                (None, 0)
            };
            let what = || {
                format!(
                    "the replica to equal the source (rows, checksum: source {src:?}, replica {rep:?}; \
                     committed and high offsets {offsets:?}; rows the topic's events leave: {topic}); {}",
                    self.logs()
                )
            };
            deadline.sleep(Duration::from_millis(500), what).await;
        }
    }

    /// How many rows the topic's events leave when applied in order (to tell a capture that
    /// lost events from a sink that lost writes).
    async fn topic_rows(&self) -> usize {
        let (brokers, topic) = (self.brokers.clone(), format!("sluice.{}", self.src));
        let high = self.offsets().await.map_or(0, |(_, high)| high) as usize;
        tokio::task::spawn_blocking(move || {
            let mut seen = 0;
            let events =
                sluice_integration::kafka::read_events(&brokers, &topic, PARTITIONS, 60, |_| {
                    seen += 1;
                    seen >= high
                });
            let mut rows = std::collections::BTreeSet::new();
            for (_, e) in events {
                let key = format!("{:?}|{:?}", e.data.get("tenant"), e.data.get("id"));
                match e.kind {
                    sluice_event::EventType::Delete => {
                        rows.remove(&key);
                    }
                    _ => {
                        rows.insert(key);
                    }
                }
            }
            rows.len()
        })
        .await
        .unwrap()
    }

    /// Fails the test when either process has exited.
    fn assert_alive(&mut self) {
        assert_running(
            &mut self.capture,
            "sluice-capture",
            &self.dir.join("capture.log"),
        );
        assert_running(&mut self.sink, "sluice-sink", &self.dir.join("sink.log"));
    }

    async fn stop(mut self) {
        let _ = terminate(&mut self.sink, 30).await;
        let _ = terminate(&mut self.capture, 30).await;
    }
}

/// Random changes to `db.t` (keys `1..=rows` at first) until `stop` (or `max` changes), one
/// every `pace`: single-row updates, deletes, inserts of new keys, key changes and range
/// updates. Returns how many.
async fn workload(
    db: String,
    rows: i64,
    max: usize,
    pace: Duration,
    stop: Arc<AtomicBool>,
) -> usize {
    let mut c = mysql::conn().await;
    let mut next_id = 1_000_000i64;
    let mut n = 0;
    while n < max && !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(pace).await;
        let (op, id, x): (u32, i64, i64) = {
            use rand::Rng;
            let mut rng = rand::rng();
            (
                rng.random_range(0..100),
                rng.random_range(1..=rows),
                rng.random_range(0..1_000_000),
            )
        };
        // The rows were made with tenant = id % 10.
        let tenant = id % 10;
        let sql = match op {
            0..=39 => format!(
                "UPDATE {db}.t SET v = {x}, name = CONCAT('upd-', {x}), amount = amount + 1 \
                 WHERE tenant = {tenant} AND id = {id}"
            ),
            40..=59 => format!("DELETE FROM {db}.t WHERE tenant = {tenant} AND id = {id}"),
            60..=79 => {
                next_id += 1;
                format!("INSERT INTO {db}.t VALUES ({tenant}, {next_id}, {x}, 'new', {x} / 100)")
            }
            // A key change: the capture emits a DELETE of the old key and an INSERT of the new.
            80..=89 => format!(
                "UPDATE IGNORE {db}.t SET tenant = {}, id = id + 5000000 \
                 WHERE tenant = {tenant} AND id = {id}",
                (tenant + 1) % 10
            ),
            _ => format!(
                "UPDATE {db}.t SET v = v + 1, amount = amount * 2 \
                 WHERE tenant = {tenant} AND id BETWEEN {id} AND {id} + 100"
            ),
        };
        c.query_drop(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_rejoins_by_itself_after_the_broker_froze_past_its_session() {
    let broker = PrivateBroker::start("session_kafka").await.unwrap();
    let mut p = Pipeline::start("sess", &broker.brokers(), 2_000, false).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writes = tokio::spawn(workload(
        p.src.clone(),
        2_000,
        usize::MAX,
        Duration::from_millis(10),
        stop.clone(),
    ));
    // Under load: the sink has committed a good share before the broker freezes.
    let deadline = Deadline::after(120);
    while p.committed().await.unwrap_or(0) < 500 {
        deadline
            .sleep(Duration::from_millis(500), || {
                format!("the sink to commit 500 messages; {}", p.logs())
            })
            .await;
    }

    // Frozen for more than the session timeout, with the writes going on: the broker expires
    // the sink's session when it answers again (librdkafka also gives it up on its side).
    broker.freeze().unwrap();
    tokio::time::sleep(Duration::from_millis(u64::from(SESSION_MS) * 2)).await;
    broker.thaw().unwrap();
    let thawed = Instant::now();
    let at_thaw = p.committed().await.unwrap_or(0);

    // Consuming again within seconds: the committed offsets move on.
    let deadline = Deadline::after(60);
    loop {
        p.assert_alive();
        if p.committed().await.unwrap_or(0) > at_thaw {
            break;
        }
        deadline
            .sleep(Duration::from_millis(250), || {
                format!(
                    "the sink to commit past {at_thaw} after the broker answered again; {}\nbroker log:\n{}",
                    p.logs(),
                    broker.log_tail()
                )
            })
            .await;
    }
    let resumed = thawed.elapsed();
    assert!(
        resumed < Duration::from_secs(30),
        "the sink took {resumed:?} to consume again after the broker came back; {}",
        p.logs()
    );

    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let n = writes.await.unwrap();
    assert!(n > 500, "only {n} writes");
    p.converged(120).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_of_a_composite_key_table_under_writes_converges_with_short_sessions() {
    let mut p = Pipeline::start("snapkey", &kafka_brokers(), 20_000, true).await;
    // About a thousand changes, a few milliseconds apart, while the snapshot reads its chunks.
    let stop = Arc::new(AtomicBool::new(false));
    let n = workload(p.src.clone(), 20_000, 1_000, Duration::from_millis(3), stop).await;
    assert_eq!(n, 1_000);
    p.converged(240).await;
    p.assert_alive();
    p.stop().await;
}
