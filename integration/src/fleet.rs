//! A capture fleet in tests: a fleet file over instances of the shared MariaDB (one database
//! each, each its own replica `server_id`), worker processes started from it, which instance
//! each worker owns (its `/status.json`), and a read_committed reader of the instances' topics
//! that notes when each event arrived.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sluice_event::ChangeEvent;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::Child;

/// Partitions of every instance's topic.
pub const PARTITIONS: i32 = 3;

/// A fleet file and its running workers.
pub struct Fleet {
    pub name: String,
    pub dir: PathBuf,
    pub file: PathBuf,
    /// Instance names, sorted (instance i stands for control partition i); each captures the
    /// database of the same name into the topic of the same name.
    pub instances: Vec<String>,
    pub workers: BTreeMap<String, Worker>,
}

/// One worker process.
pub struct Worker {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Fleet {
    /// Writes a fleet file over `databases` of the shared MariaDB, every instance starting at
    /// `start` (`<file>:<pos>`), with `session_timeout_ms`.
    pub fn new(name: &str, databases: &[String], start: &str, session_timeout_ms: u64) -> Fleet {
        Fleet::on(
            &crate::kafka_brokers(),
            &crate::mysql_url(),
            name,
            databases,
            start,
            session_timeout_ms,
        )
    }

    /// [`Fleet::new`] with the Kafka bootstrap servers `brokers` and the source URL `url`.
    pub fn on(
        brokers: &str,
        url: &str,
        name: &str,
        databases: &[String],
        start: &str,
        session_timeout_ms: u64,
    ) -> Fleet {
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).expect("fleet dir");
        // Replica ids unique among this run's concurrent tests and fleets.
        let base = 30_000 + (std::process::id() % 5_000) * 8;
        let mut text = format!(
            "[fleet]\nname = \"{name}\"\nworker = \"${{WORKER}}\"\nsession_timeout_ms = {session_timeout_ms}\n\
             [kafka]\nbrokers = [\"{brokers}\"]\n[metrics]\nlisten = \"${{LISTEN}}\"\n\
             [publish]\ntopic = \"{{instance}}\"\ncreate_topics = true\npartitions = {PARTITIONS}\n\
             [checkpoint]\ndir = \"{state}\"\ntopic = \"{name}.checkpoints\"\n",
            state = dir.join("state").display(),
        );
        let mut instances = databases.to_vec();
        instances.sort();
        for (i, db) in instances.iter().enumerate() {
            text.push_str(&format!(
                "[[instances]]\ninstance = \"{db}\"\n[instances.source]\nurl = \"{url}\"\nserver_id = {id}\nstart = \"{start}\"\n[instances.filter]\ninclude = [\"{db}\\\\..*\"]\n",
                id = base + i as u32,
            ));
        }
        let file = dir.join("fleet.toml");
        std::fs::write(&file, text).expect("write the fleet file");
        Fleet {
            name: name.to_owned(),
            dir,
            file,
            instances,
            workers: BTreeMap::new(),
        }
    }

    /// Starts worker `name` (`sluice-capture run --config <fleet file>`).
    pub fn start(&mut self, name: &str) {
        let port = crate::free_port().expect("a free port");
        let log = self.dir.join(format!("{name}.log"));
        let listen = format!("127.0.0.1:{port}");
        let child = crate::process::spawn_run(
            &crate::process::capture_binary(),
            &self.file,
            &[],
            &[("WORKER", name), ("LISTEN", &listen)],
            &log,
        );
        self.workers
            .insert(name.to_owned(), Worker { child, port, log });
    }

    /// The instances worker `name` owns, from its status page (`None` if it does not answer).
    pub async fn owned(&self, name: &str) -> Option<Vec<String>> {
        let w = self.workers.get(name)?;
        let url = format!("http://127.0.0.1:{}/status.json", w.port);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .ok()?;
        let body: serde_json::Value = client.get(url).send().await.ok()?.json().await.ok()?;
        Some(
            body["info"]["owned"]
                .as_array()?
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        )
    }

    /// Which live worker owns each instance (workers in `skip` are not asked: stopped ones).
    pub async fn owners(&self, skip: &[&str]) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for name in self.workers.keys() {
            if skip.contains(&name.as_str()) {
                continue;
            }
            for i in self.owned(name).await.unwrap_or_default() {
                out.entry(i).or_default().push(name.clone());
            }
        }
        out
    }

    /// The log of worker `name`.
    pub fn log(&self, name: &str) -> String {
        self.workers
            .get(name)
            .and_then(|w| std::fs::read_to_string(&w.log).ok())
            .unwrap_or_default()
    }
}

/// Events as a read_committed consumer of every instance's topic sees them, with when each
/// arrived, read on a thread of its own until dropped.
pub struct Arrivals {
    pub seen: Arc<Mutex<Vec<Arrival>>>,
    stop: Arc<AtomicBool>,
}

/// One event and when it arrived.
#[derive(Clone)]
pub struct Arrival {
    pub at: Instant,
    pub partition: i32,
    pub event: ChangeEvent,
}

impl Arrivals {
    /// Reads `topics` (partitions `0..PARTITIONS`, from the beginning) with
    /// `isolation.level=read_committed`.
    pub fn start(topics: &[String]) -> Arrivals {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", crate::kafka_brokers())
            .set("group.id", crate::unique_name("fleet_reader"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .create()
            .expect("create a consumer");
        let mut tpl = TopicPartitionList::new();
        for t in topics {
            for p in 0..PARTITIONS {
                tpl.add_partition_offset(t, p, Offset::Beginning)
                    .expect("a partition offset");
            }
        }
        consumer.assign(&tpl).expect("assign the fleet's topics");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&seen), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                    let event = ChangeEvent::decode(m.payload().unwrap_or_default())
                        .unwrap_or_else(|e| panic!("offset {} of {}: {e}", m.offset(), m.topic()));
                    s.lock().unwrap_or_else(|p| p.into_inner()).push(Arrival {
                        at: Instant::now(),
                        partition: m.partition(),
                        event,
                    });
                }
            }
        });
        Arrivals { seen, stop }
    }

    /// Every arrival so far.
    pub fn all(&self) -> Vec<Arrival> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many events of `instance` arrived.
    pub fn count(&self, instance: &str) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|a| a.event.instance == instance)
            .count()
    }
}

impl Drop for Arrivals {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Creates each of `dbs` with a table `t (<columns>)` on the shared source and returns the
/// binlog position right after (`<file>:<pos>`): where captures of them start.
pub async fn source_tables(
    conn: &mut mysql_async::Conn,
    dbs: &[String],
    columns: &str,
) -> Result<String, String> {
    use mysql_async::prelude::Queryable;
    for db in dbs {
        conn.query_drop(format!(
            "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t ({columns})"
        ))
        .await
        .map_err(|e| format!("create {db}: {e}"))?;
    }
    let (file, pos): (String, u64) = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .map_err(|e| format!("SHOW MASTER STATUS: {e}"))?
        .and_then(|row: mysql_async::Row| Some((row.get(0)?, row.get(1)?)))
        .ok_or("the source's binary log is off")?;
    Ok(format!("{file}:{pos}"))
}
