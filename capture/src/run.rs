//! `run` (binlog → Kafka with checkpoints) and, below it, the capture's other commands.
//!
//! `prepare` resolves where reading starts, `read` is the binlog reading loop with reconnects
//! that every command shares, `tail` (binlog → stdout) and `inspect` (`check`, `position`) do
//! not publish, `migrate` moves a checkpoint to another server.

mod inspect;
pub mod migrate;
mod owner;
mod prepare;
mod read;
mod tail;

pub use inspect::{check, position};
pub use migrate::{migrate, MigrateArgs};
pub use owner::{fresh_ms, Role};
pub use prepare::{enforce, prepare, Prepared};
pub use read::{read_binlog, Emit, ReadOptions};
pub use tail::{collect, collect_raw, tail};

use crate::checkpoint::{Checkpoint, FileStore};
use crate::checkpoint_store;
use crate::clients;
use crate::config::CaptureConfig;
use crate::error::{Backoff, CaptureError};
use crate::kafka_store::KafkaStore;
use crate::publish::{self, Publisher, Spares};
use crate::topics::Topics;
use read::publisher_stopped;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// `run`: binlog → Kafka, checkpoints after acknowledgements, until `cancel`; or, with
/// `until`, until that position is read and everything before it acknowledged and saved.
pub async fn run(
    cfg: &CaptureConfig,
    until: Option<(String, u64)>,
    cancel: CancellationToken,
    ready: Arc<AtomicBool>,
) -> Result<(), CaptureError> {
    run_as(cfg, until, cancel, ready, &Role::Single).await
}

/// [`run`], as `role` (alone, or a fleet's worker).
pub async fn run_as(
    cfg: &CaptureConfig,
    until: Option<(String, u64)>,
    cancel: CancellationToken,
    ready: Arc<AtomicBool>,
    role: &Role,
) -> Result<(), CaptureError> {
    let (store, kafka_store) = checkpoint_store::stores(cfg);
    if kafka_store.is_some() {
        // The checkpoint topic is read and created with clients whose librdkafka reports
        // nobody reads: a login or certificate the brokers refuse would only time out there.
        if let Err(e) = clients::producer(cfg)?.probe().await {
            if !e.is_transient() {
                return Err(e);
            }
        }
    }
    let mut backoff = Backoff::default();
    loop {
        // Transactional captures read their checkpoint only once the instance's producer has
        // fenced its previous owner and aborted what that one left open (`run_once`).
        let checkpoint = match &kafka_store {
            Some(_) if cfg.publish.transactional => None,
            _ => checkpoint_store::load_newer(&store, kafka_store.as_ref()).await?,
        };
        match run_once(
            cfg,
            checkpoint,
            &store,
            kafka_store.clone(),
            until.clone(),
            &cancel,
            &ready,
            role,
        )
        .await
        {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && !cancel.is_cancelled() => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "restarting from the last checkpoint");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Makes the transactional producer the instance's only one: refuses while another live
/// capture owns the instance (`role`), then fences every earlier producer of the instance
/// (aborting what it left open) and reads the last committed checkpoint.
async fn take_instance(
    cfg: &CaptureConfig,
    fast: &Arc<rdkafka::producer::BaseProducer<crate::acks::AckContext>>,
    kafka_store: &KafkaStore,
    role: &Role,
) -> Result<Option<Checkpoint>, CaptureError> {
    use rdkafka::producer::Producer as _;
    kafka_store.ensure_topic().await?;
    let before = kafka_store.load().await?;
    role.check_takeover(cfg, before.as_ref(), crate::clock::now_ms())?;
    let producer = Arc::clone(fast);
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || producer.init_transactions(Duration::from_secs(30)))
        .await
        .map_err(|e| CaptureError::Topic(format!("initialising transactions: {e}")))?
        .map_err(|e| {
            CaptureError::from_kafka(
                format!(
                    "initialising transactions (transactional.id {})",
                    cfg.transactional_id()
                ),
                e,
                &cfg.instance,
            )
        })?;
    let checkpoint = kafka_store.load().await?;
    tracing::info!(
        transactional_id = %cfg.transactional_id(),
        ms = started.elapsed().as_millis() as u64,
        file = checkpoint.as_ref().map(|c| c.file.as_str()),
        pos = checkpoint.as_ref().map(|c| c.pos),
        previous_owner = checkpoint.as_ref().and_then(|c| c.owner.as_deref()),
        "took instance {}",
        cfg.instance
    );
    Ok(checkpoint)
}

#[allow(clippy::too_many_arguments)]
async fn run_once(
    cfg: &CaptureConfig,
    checkpoint: Option<Checkpoint>,
    store: &FileStore,
    kafka_store: Option<KafkaStore>,
    until: Option<(String, u64)>,
    cancel: &CancellationToken,
    ready: &Arc<AtomicBool>,
    role: &Role,
) -> Result<(), CaptureError> {
    // The data producer first, connecting while MariaDB is checked and the binlog opened and
    // read (into the channel's batches): librdkafka asks for its idempotent producer id on a
    // timer that, with no broker connection up yet, retries only after 0.5-1 s, and holds
    // every message until then (measured: the first second of a run). Reading used to wait
    // for the connection too; now it starts 12-17 ms after exec instead of ~37 ms.
    let acks = Arc::new(crate::acks::Acks::default());
    let fast = Arc::new(publish::fast_producer(cfg, Arc::clone(&acks))?);
    let topics = Topics::new(cfg);
    let fixed_topic = topics.fixed_name();
    let connecting = tokio::spawn(publish::connect(Arc::clone(&fast), fixed_topic.clone()));
    let (checkpoint, txn) = match &kafka_store {
        Some(k) if cfg.publish.transactional => {
            let checkpoint = take_instance(cfg, &fast, k, role).await?;
            let txn = publish::Txn::new(
                k.topic.clone(),
                cfg.instance.clone(),
                role.owner(cfg),
                Duration::from_millis(cfg.publish.transaction_ms),
                cfg.publish.transaction_messages as u64,
                Duration::from_millis(cfg.checkpoint.interval_ms),
                checkpoint.clone(),
            );
            (checkpoint, Some(txn))
        }
        _ => (checkpoint, None),
    };
    let resumed_seq = checkpoint.as_ref().map(|c| c.seq);
    let prep = prepare(cfg, checkpoint, None).await?;
    enforce(&prep.checks)?;
    let snapshots = crate::snapshot::start(cfg, &prep.client, resumed_seq, cancel).await?;
    let producer = clients::producer(cfg)?;
    // 4 batches: with 8, each new batch was fresh memory the kernel clears first, and runs
    // were no faster (docs/performance.md).
    let (tx, rx) = mpsc::channel::<publish::Encoded>(4);
    let spares = Spares::default();
    let hard_stop = CancellationToken::new();
    let mut publisher = Publisher {
        fast,
        acks,
        producer,
        topics,
        store: store.clone(),
        kafka_store,
        window: cfg.publish.in_flight,
        interval: Duration::from_millis(match txn {
            Some(_) => cfg.publish.transaction_ms.min(cfg.checkpoint.interval_ms),
            None => cfg.checkpoint.interval_ms,
        }),
        spares: spares.clone(),
        txn,
    };
    let mut tasks = tokio::task::JoinSet::new();
    let stop = hard_stop.clone();
    tasks.spawn(async move {
        // The topic and its partitions before anything is sent: a missing topic stops the
        // capture here with the fix (or is created), and reading stops with it (below).
        if let Some(t) = fixed_topic {
            match connecting.await.ok().flatten() {
                Some(n) => publisher.topics.known(&t, n),
                None => {
                    publisher.topics.partitions(&publisher.producer, &t).await?;
                }
            }
        } else {
            // No topic to look up before the first event: connect anyway, so credentials the
            // brokers refuse stop the capture now rather than at the first event. A broker
            // that does not answer yet is left to the sends, which wait for it.
            match publisher.producer.probe().await {
                Err(e) if !e.is_transient() => return Err(e),
                Err(e) => tracing::warn!(error = %e, "Kafka is not reachable yet"),
                Ok(_) => {}
            }
        }
        publisher.run(rx, stop).await
    });
    let mut emit = Emit::Channel(tx, spares);
    let bounded = until.is_some();
    let opts = ReadOptions {
        until_end: false,
        ready: Arc::clone(ready),
        snapshot: snapshots.as_ref().map(|s| s.hook()),
        until,
    };
    let mut publisher_done = None;
    let read = tokio::select! {
        read = read_binlog(cfg, &prep, &mut emit, &opts, cancel) => read,
        // The publisher ended while reading went on: an error (a missing topic, a failed
        // delivery, a checkpoint that cannot be written). Reading stops too, also while the
        // tables it captures are quiet and it has nothing to hand on; the error is reported
        // below.
        Some(done) = tasks.join_next() => {
            publisher_done = Some(done);
            Err(publisher_stopped())
        }
    };
    if let Some(s) = snapshots {
        s.stop().await;
    }
    ready.store(false, Ordering::Relaxed);
    drop(emit);
    // `--until` reached: wait for every acknowledgement (the broker may be down for a while)
    // unless stopped. Then, or when stopped, let the publisher drain what was read, bounded.
    let grace = Duration::from_secs(15);
    let drained = if let Some(done) = publisher_done {
        Ok(Some(done))
    } else if bounded && read.is_ok() && !cancel.is_cancelled() {
        tokio::select! {
            done = tasks.join_next() => Ok(done),
            _ = cancel.cancelled() => tokio::time::timeout(grace, tasks.join_next()).await,
        }
    } else {
        tokio::time::timeout(grace, tasks.join_next()).await
    };
    hard_stop.cancel();
    let published = match drained {
        Ok(Some(Ok(r))) => r,
        Ok(Some(Err(e))) => Err(CaptureError::Topic(format!("publisher task failed: {e}"))),
        Ok(None) => Ok(()),
        Err(_) => {
            tracing::warn!("Kafka did not acknowledge everything within 15 s of stopping; the unacknowledged transactions will be read again on restart");
            Ok(())
        }
    };
    tasks.shutdown().await;
    match (read, published) {
        // A publisher error explains a reader stopped by the closed channel.
        (_, Err(e)) => Err(e),
        (Err(e), _) => Err(e),
        (Ok(_), Ok(())) => Ok(()),
    }
}
