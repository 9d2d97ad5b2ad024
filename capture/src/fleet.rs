//! A fleet worker: the fleet's instances shared among its workers through Kafka group
//! membership (docs/fleet.md).
//!
//! Every worker joins the consumer group `sluice-fleet.<name>` on the control topic, whose
//! partition i stands for the i-th instance by name. Kafka's group coordinator balances the
//! partitions (cooperative-sticky: a rebalance moves only what must move); owning a partition
//! means capturing its instance. A worker that leaves drains and commits its instances before
//! the group hands them on; one that dies or stalls past `fleet.session_timeout_ms` loses them,
//! and its transactional producers are fenced by the new owners', so it can never publish a
//! duplicate. Nothing is ever consumed from the control topic.

use crate::config::fleet::FleetConfig;
use crate::config::CaptureConfig;
use crate::error::CaptureError;
use crate::run::Role;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, Rebalance};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a worker waits for its instances to drain when the group takes them away.
const DRAIN: Duration = Duration::from_secs(20);

/// What the group told the worker, handed from librdkafka's callbacks to the worker's loop.
enum Change {
    Assigned(Vec<i32>),
    /// Revoked partitions; the callback waits on the sender until the instances are drained,
    /// so the group hands them on only then.
    Revoked(Vec<i32>, std::sync::mpsc::SyncSender<()>),
}

/// The control consumer's context: rebalances become [`Change`]s.
struct Membership {
    changes: mpsc::UnboundedSender<Change>,
}

impl ClientContext for Membership {}

impl ConsumerContext for Membership {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts = tpl.elements().iter().map(|e| e.partition()).collect();
            let (done, drained) = std::sync::mpsc::sync_channel(1);
            if self.changes.send(Change::Revoked(parts, done)).is_ok() {
                let _ = drained.recv_timeout(DRAIN);
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts = tpl.elements().iter().map(|e| e.partition()).collect();
                let _ = self.changes.send(Change::Assigned(parts));
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "fleet rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// An instance this worker captures.
struct Running {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Outcome>,
}

/// How an instance's capture on this worker ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Released (revoked, or the worker stops).
    Released,
    /// Another worker's producer fenced this one's.
    Fenced,
}

/// Runs the worker until `cancel`: joins the fleet's group and captures the instances the
/// group gives it. `path` is the fleet file, read again whenever an instance (re)starts, so an
/// edited instance (a migrated source) is picked up.
pub async fn run(
    path: &Path,
    fleet: FleetConfig,
    cancel: CancellationToken,
    ready: Arc<AtomicBool>,
) -> Result<(), CaptureError> {
    let client = client_config(&fleet);
    ensure_control_topic(&fleet, &client).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let consumer: BaseConsumer<Membership> = client
        .create_with_context(Membership { changes: tx })
        .map_err(|source| CaptureError::Kafka {
            what: format!(
                "creating the fleet's control consumer for {}",
                fleet.control_topic
            ),
            source,
        })?;
    consumer
        .subscribe(&[&fleet.control_topic])
        .map_err(|source| CaptureError::Kafka {
            what: format!("joining fleet {} on {}", fleet.name, fleet.control_topic),
            source,
        })?;
    tracing::info!(fleet = %fleet.name, worker = %fleet.worker, instances = fleet.instances.len(), topic = %fleet.control_topic, "joining the fleet");
    // librdkafka's group protocol runs in the thread that polls the consumer (rebalance
    // callbacks included), and a revocation waits there until the instances are drained.
    let consumer = Arc::new(consumer);
    let polling = {
        let consumer = Arc::clone(&consumer);
        let stop = cancel.clone();
        std::thread::Builder::new()
            .name("fleet-membership".into())
            .spawn(move || {
                while !stop.is_cancelled() {
                    if let Some(Err(e)) = consumer.poll(Duration::from_millis(100)) {
                        tracing::warn!(error = %e, "fleet control consumer");
                    }
                }
            })
            .map_err(|e| {
                CaptureError::Topic(format!("starting the fleet's membership thread: {e}"))
            })?
    };
    let role = Role::Fleet {
        fleet: fleet.name.clone(),
        worker: fleet.worker.clone(),
    };
    let mut worker = Worker {
        path: path.to_owned(),
        fleet,
        role,
        running: BTreeMap::new(),
        owned: BTreeMap::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            change = rx.recv() => match change {
                Some(Change::Assigned(parts)) => {
                    ready.store(true, Ordering::Relaxed);
                    worker.assigned(&parts);
                }
                Some(Change::Revoked(parts, done)) => {
                    worker.revoked(&parts).await;
                    let _ = done.send(());
                }
                None => break,
            },
            _ = tick.tick() => worker.restart_ended().await,
        }
    }
    // Drain every instance, then leave the group (the membership thread ends with `cancel`;
    // dropping the consumer closes it, and the group rebalances at once instead of after the
    // session timeout).
    let all: Vec<i32> = worker.owned.keys().copied().collect();
    worker.revoked(&all).await;
    // Closing the consumer revokes what is left: with the channel closed the callback does
    // not wait for a drain nobody would report.
    drop(rx);
    let _ = tokio::task::spawn_blocking(move || {
        let _ = polling.join();
        drop(consumer);
    })
    .await;
    tracing::info!("left the fleet");
    Ok(())
}

/// The control consumer's settings: the fleet's `[kafka]` connection, its group, and timings
/// that move a dead worker's instances within seconds.
fn client_config(fleet: &FleetConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in fleet.kafka.client_properties() {
        c.set(k, v);
    }
    let session = fleet.session_timeout_ms;
    c.set("group.id", format!("sluice-fleet.{}", fleet.name))
        .set("client.id", format!("sluice-fleet.{}", fleet.worker))
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", session.to_string())
        .set("heartbeat.interval.ms", (session / 6).max(100).to_string())
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "latest");
    c
}

/// Creates the control topic (one partition per instance) when it is missing; refuses one with
/// fewer partitions than instances.
async fn ensure_control_topic(
    fleet: &FleetConfig,
    client: &ClientConfig,
) -> Result<(), CaptureError> {
    let n = fleet.instances.len() as i32;
    crate::topics::create_topic(client, &fleet.control_topic, n, 1, &[]).await?;
    let topic = fleet.control_topic.clone();
    let client = client.clone();
    let have = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client.create()?;
        let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        Ok::<_, rdkafka::error::KafkaError>(crate::topics::partition_count(&md, &topic))
    })
    .await
    .map_err(|e| CaptureError::Topic(format!("reading the control topic: {e}")))?
    .map_err(|source| CaptureError::Kafka {
        what: format!("reading the metadata of {}", fleet.control_topic),
        source,
    })?
    .unwrap_or(0) as i32;
    check_partitions(&fleet.control_topic, have, n)
}

/// One control partition per instance, at least.
fn check_partitions(topic: &str, have: i32, instances: i32) -> Result<(), CaptureError> {
    if have < instances {
        return Err(CaptureError::Check(format!(
            "the fleet's control topic {topic} has {have} partitions for {instances} instances; each instance needs one: add partitions (kafka-topics.sh --alter --topic {topic} --partitions {instances}) or set fleet.control_topic to a new topic"
        )));
    }
    if have > instances {
        tracing::info!(
            topic,
            partitions = have,
            instances,
            "the control topic has more partitions than instances; the rest stand for nothing"
        );
    }
    Ok(())
}

/// The worker's instances and what it needs to (re)start them.
struct Worker {
    path: PathBuf,
    fleet: FleetConfig,
    role: Role,
    running: BTreeMap<String, Running>,
    /// Control partitions this worker owns, and the instance each stands for.
    owned: BTreeMap<i32, String>,
}

impl Worker {
    fn assigned(&mut self, parts: &[i32]) {
        for &p in parts {
            let Some(cfg) = self.fleet.instances.get(p as usize).cloned() else {
                continue;
            };
            self.owned.insert(p, cfg.instance.clone());
            self.start(cfg);
        }
        self.report();
    }

    async fn revoked(&mut self, parts: &[i32]) {
        let mut stopping = Vec::new();
        for p in parts {
            if let Some(name) = self.owned.remove(p) {
                if let Some(r) = self.running.remove(&name) {
                    r.cancel.cancel();
                    stopping.push((name, r.task));
                }
            }
        }
        for (name, task) in stopping {
            match tokio::time::timeout(DRAIN, task).await {
                Ok(_) => tracing::info!(instance = %name, "released instance {name}"),
                Err(_) => {
                    tracing::warn!(instance = %name, "instance {name} did not drain within {} s; its open transaction is aborted by the next owner", DRAIN.as_secs())
                }
            }
        }
        self.report();
    }

    fn start(&mut self, cfg: CaptureConfig) {
        let name = cfg.instance.clone();
        if self
            .running
            .get(&name)
            .is_some_and(|r| !r.task.is_finished())
        {
            return;
        }
        metrics::counter!("sluice_fleet_takeovers_total").increment(1);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve(
            self.path.clone(),
            cfg,
            self.role.clone(),
            cancel.clone(),
        ));
        self.running.insert(name, Running { cancel, task });
    }

    /// Restarts owned instances whose capture ended (fenced while the group still gives the
    /// instance to this worker: after a session timeout the group may take a moment to agree).
    async fn restart_ended(&mut self) {
        let ended: Vec<String> = self
            .running
            .iter()
            .filter(|(_, r)| r.task.is_finished())
            .map(|(n, _)| n.clone())
            .collect();
        for name in ended {
            let Some(r) = self.running.remove(&name) else {
                continue;
            };
            let outcome = r.task.await.unwrap_or(Outcome::Released);
            let still_owned = self.owned.values().any(|n| *n == name);
            if !still_owned {
                continue;
            }
            if outcome == Outcome::Fenced {
                // Wait out a session timeout before fencing back: the group is moving the
                // instance elsewhere, or has just given it here again.
                metrics::counter!("sluice_fleet_instances_lost_total").increment(1);
                let pause = CancellationToken::new();
                let session = Duration::from_millis(self.fleet.session_timeout_ms);
                let (path, role) = (self.path.clone(), self.role.clone());
                let Some(cfg) = self
                    .fleet
                    .instances
                    .iter()
                    .find(|c| c.instance == name)
                    .cloned()
                else {
                    continue;
                };
                let cancel = pause.clone();
                let task = tokio::spawn(async move {
                    tokio::select! {
                        _ = cancel.cancelled() => return Outcome::Released,
                        _ = tokio::time::sleep(session) => {}
                    }
                    serve(path, cfg, role, cancel).await
                });
                self.running.insert(
                    name,
                    Running {
                        cancel: pause,
                        task,
                    },
                );
            }
        }
        self.report();
    }

    fn report(&self) {
        metrics::gauge!("sluice_fleet_instances_owned").set(self.owned.len() as f64);
        let names: Vec<&str> = self.owned.values().map(String::as_str).collect();
        tracing::debug!(instances = ?names, "owned instances");
        let mut shared = OWNED.lock().unwrap_or_else(|p| p.into_inner());
        *shared = names.iter().map(|s| s.to_string()).collect();
    }
}

/// The instances this process's worker owns, for the status page.
static OWNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The instances this worker owns now.
pub fn owned() -> Vec<String> {
    OWNED.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Captures one instance until `cancel` or until another worker fences it. The instance's
/// config is read again from the fleet file before every start and whenever its text changes
/// (checked every few seconds): the capture then drains and restarts with it, so a migrated
/// source (docs/fleet.md) needs no worker restart. Definite errors (a failed start-up check,
/// another fleet's live capture) are retried every 30 s.
async fn serve(
    path: PathBuf,
    cfg: CaptureConfig,
    role: Role,
    cancel: CancellationToken,
) -> Outcome {
    let name = cfg.instance.clone();
    let mut cfg = cfg;
    let mut seen = fingerprint(&path, &name);
    loop {
        let run = cancel.child_token();
        let ready = Arc::new(AtomicBool::new(false));
        let mut check = tokio::time::interval(CONFIG_CHECK);
        check.tick().await;
        let mut capture = Box::pin(crate::run::run_as(&cfg, None, run.clone(), ready, &role));
        let result = loop {
            tokio::select! {
                result = &mut capture => break Some(result),
                _ = check.tick() => {
                    let now = fingerprint(&path, &name);
                    if now.is_some() && now != seen {
                        tracing::info!(instance = %name, "instance {name}'s config changed; restarting it");
                        seen = now;
                        run.cancel();
                        let _ = (&mut capture).await;
                        break None;
                    }
                }
            }
        };
        drop(capture);
        match result {
            None => {}
            Some(Ok(())) => return Outcome::Released,
            Some(Err(e @ CaptureError::Fenced { .. })) => {
                tracing::warn!(instance = %name, error = %e, "lost instance {name} to another worker");
                return Outcome::Fenced;
            }
            Some(Err(e)) => {
                tracing::error!(instance = %name, error = %e, "instance {name} stopped; retrying in 30 s");
                tokio::select! {
                    _ = cancel.cancelled() => return Outcome::Released,
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                }
            }
        }
        if cancel.is_cancelled() {
            return Outcome::Released;
        }
        match crate::config::fleet::load(&path) {
            Ok(fleet) => {
                if let Some(fresh) = fleet.instances.into_iter().find(|c| c.instance == name) {
                    cfg = fresh;
                    seen = fingerprint(&path, &name);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the fleet file does not load; keeping instance {name}'s previous config")
            }
        }
    }
}

/// How often a running instance's config is compared with the fleet file.
const CONFIG_CHECK: Duration = Duration::from_secs(3);

/// The instance's merged config text as the fleet file gives it now (`None` if it does not load).
fn fingerprint(path: &Path, name: &str) -> Option<String> {
    crate::config::fleet::instance_text(path, name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn too_few_control_partitions_is_a_clear_error() {
        let err = super::check_partitions("sluice.fleet.main", 3, 4)
            .unwrap_err()
            .to_string();
        assert!(err.contains("3 partitions for 4 instances"), "{err}");
        assert!(err.contains("--partitions 4"), "{err}");
        assert!(super::check_partitions("t", 4, 4).is_ok());
        assert!(super::check_partitions("t", 9, 4).is_ok());
    }
}
