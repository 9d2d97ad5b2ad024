//! The four probes: their names, start on threads of their own, readiness, poll statistics, stop.

mod cache;
mod replica;
mod search;
mod topic;

pub use cache::precreate_keys;

use crate::marks::Shared;
use crate::RunArgs;
use anyhow::Context as _;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

pub const CACHE: usize = 0;
pub const REPLICA: usize = 1;
pub const SEARCH: usize = 2;
pub const TOPIC: usize = 3;
pub const PROBE_NAMES: [&str; 4] = [
    "cache key deleted",
    "replica row visible",
    "search-visible",
    "on the topic",
];

/// Where a probe says whether it could connect (or subscribe) before it starts watching.
type Ready = mpsc::Sender<anyhow::Result<()>>;

/// A running probe's thread.
pub type Probe = JoinHandle<anyhow::Result<PollStats>>;

/// Round trips of one polling probe, for its resolution.
#[derive(Default)]
pub struct PollStats {
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

    pub fn mean_ms(&self) -> f64 {
        if self.polls == 0 {
            0.0
        } else {
            self.total.as_secs_f64() * 1000.0 / self.polls as f64
        }
    }
}

/// Starts the probes (cache, replica, search, topic) and returns once all are connected.
pub fn start(shared: &Arc<Shared>, args: &RunArgs) -> anyhow::Result<Vec<Probe>> {
    let c = &args.common;
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
            on_own_runtime(cache::watch(&s, &url, &prefix, &tx))
        }));
    }
    {
        let (s, tx) = (shared.clone(), ready_tx.clone());
        let url = format!("{}/{}", c.mysql_url, c.replica_db);
        let poll = Duration::from_millis(args.replica_poll_ms);
        probes.push(std::thread::spawn(move || {
            on_own_runtime(replica::watch(&s, &url, poll, &tx))
        }));
    }
    {
        let (s, tx) = (shared.clone(), ready_tx.clone());
        let (url, index) = (c.es_url.clone(), c.index.clone());
        let poll = Duration::from_millis(args.es_poll_ms);
        probes.push(std::thread::spawn(move || {
            on_own_runtime(search::watch(&s, &url, &index, poll, &tx))
        }));
    }
    {
        let (s, tx) = (shared.clone(), ready_tx.clone());
        let (brokers, topic) = (args.brokers.clone(), args.topic.clone());
        probes.push(std::thread::spawn(move || {
            topic::watch(&s, &brokers, &topic, &tx)
        }));
    }
    drop(ready_tx);
    for _ in 0..probes.len() {
        ready_rx.recv().context("a probe failed to start")??;
    }
    Ok(probes)
}

/// Stops the probes and returns their poll statistics (cache, replica, search, topic).
pub fn stop(shared: &Shared, probes: Vec<Probe>) -> Vec<PollStats> {
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

/// Tells `start` how the probe's connection went, and hands the connection on.
fn announce<T>(ready: &Ready, connected: anyhow::Result<T>) -> anyhow::Result<T> {
    match connected {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            Ok(c)
        }
        Err(e) => {
            let _ = ready.send(Err(anyhow::anyhow!("{e:#}")));
            Err(e)
        }
    }
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
