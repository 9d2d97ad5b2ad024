//! The capture's commands: `run` (binlog → Kafka with checkpoints), `tail` (binlog → stdout),
//! `check` and `position`; and the binlog reading loop with reconnects that they share.

use crate::binlog::mariadb::code;
use crate::binlog::TableMap;
use crate::checkpoint::{Checkpoint, FileStore};
use crate::clients;
use crate::clock::now_ms;
use crate::config::{CaptureConfig, StartAt};
use crate::decoder::{Decoder, Header};
use crate::error::{Backoff, CaptureError};
use crate::filter::Filter;
use crate::kafka_store::KafkaStore;
use crate::output::Output;
use crate::publish::{self, Publisher, Spares};
use crate::source::{CheckResult, CheckStatus, DumpStream, Flavor, SchemaCache, SourceClient};
use crate::topics::Topics;
use futures::{FutureExt as _, StreamExt as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// `tail` writes to stdout once this many bytes of lines are ready.
const STDOUT_CHUNK: usize = 1 << 20;

/// Bytes reserved per output for its encoded key and value in a new batch (grown where rows
/// are larger). Batches are reused: about 10 are ever made (the channel's 4, the spares, the
/// one being filled and the one being sent). 1024 instead, so that the benchmark's 530-byte
/// events fit without growing, was no faster (six alternating runs each).
const ENCODED_ROW_HINT: usize = 512;

/// Where outputs of the decoder go.
pub enum Emit {
    /// `tail`: JSON lines, written into `buf` and handed to stdout in large writes.
    Stdout { out: std::io::Stdout, buf: Vec<u8> },
    /// `run`: the publisher task, through a bounded channel, as Kafka messages encoded here
    /// into batches the publisher hands back.
    Channel(mpsc::Sender<publish::Encoded>, Spares),
    /// Tests: collect in memory.
    Memory(Vec<Output>),
}

impl Emit {
    async fn emit(&mut self, out: &mut Vec<Output>) -> Result<(), CaptureError> {
        if out.is_empty() {
            return Ok(());
        }
        match self {
            Emit::Stdout { out: w, buf } => {
                for o in out.drain(..) {
                    match o {
                        Output::Row(r) => r.write_json(buf),
                        Output::Snapshot(r) => r.write_json(buf),
                        Output::Event(ev) => ev.encode_into(buf),
                        Output::Commit(_) => continue,
                    }
                    buf.push(b'\n');
                }
                if buf.len() >= STDOUT_CHUNK {
                    w.write_all(buf).map_err(CaptureError::Stdout)?;
                    buf.clear();
                }
            }
            Emit::Channel(tx, spares) => {
                // Batches of BATCH_OUTPUTS (less than twice that for the last), also when one
                // event brought many more (a snapshot chunk of 10,000 rows), so they stay small
                // enough to reuse and the channel bounds memory.
                let mut left = out.len();
                let mut outputs = out.drain(..);
                while left > 0 {
                    let n = if left < 2 * BATCH_OUTPUTS {
                        left
                    } else {
                        BATCH_OUTPUTS
                    };
                    left -= n;
                    let mut batch = spares.take(n, n * ENCODED_ROW_HINT);
                    for o in outputs.by_ref().take(n) {
                        batch.push(o);
                    }
                    if tx.send(batch).await.is_err() {
                        // The publisher stopped; its error is reported by whoever joins it.
                        return Err(publisher_stopped());
                    }
                }
            }
            Emit::Memory(v) => v.append(out),
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), CaptureError> {
        if let Emit::Stdout { out, buf } = self {
            out.write_all(buf).map_err(CaptureError::Stdout)?;
            buf.clear();
            out.flush().map_err(CaptureError::Stdout)?;
        }
        Ok(())
    }
}

/// What the reader reports when the publisher ended first; the publisher's own error, reported
/// by whoever joins it, says why.
fn publisher_stopped() -> CaptureError {
    CaptureError::Topic("the publisher stopped".into())
}

/// What the start-up resolved: server family, where to start, and the checks' results.
pub struct Prepared {
    pub client: SourceClient,
    pub flavor: Flavor,
    pub start: Checkpoint,
    /// MariaDB GTID state to start from (first connection only).
    pub gtid: Option<String>,
    pub checks: Vec<CheckResult>,
    /// The server checksums binlog events.
    pub checksums: bool,
}

/// Connects, runs the start-up checks and resolves the start position (checkpoint first).
/// A start position that cannot be resolved becomes a failed `position` check.
pub async fn prepare(
    cfg: &CaptureConfig,
    checkpoint: Option<Checkpoint>,
    start_override: Option<StartAt>,
) -> Result<Prepared, CaptureError> {
    let client = SourceClient::new(&cfg.source)?;
    let mut conn = client.connect().await?;
    let facts = client.facts(&mut conn).await?;
    let flavor = facts.flavor();
    let resolved = resolve_start(
        &client,
        &mut conn,
        &facts,
        checkpoint,
        start_override.unwrap_or_else(|| cfg.start_at()),
    )
    .await;
    let _ = conn.disconnect().await;
    let (start, gtid, mut checks) = match resolved {
        Ok((start, gtid)) => {
            let position = (!start.file.is_empty()).then_some(start.file.as_str());
            let checks = facts.checks(&client.addr, cfg.source.allow_partial_row_image, position);
            (start, gtid, checks)
        }
        Err(e) => {
            let mut checks = facts.checks(&client.addr, cfg.source.allow_partial_row_image, None);
            checks.push(CheckResult {
                name: "position",
                status: CheckStatus::Fail,
                message: e.to_string(),
            });
            (fresh(String::new(), 4), None, checks)
        }
    };
    checks.sort_by_key(|c| c.name == "position");
    let checksums = facts
        .variables
        .get("binlog_checksum")
        .is_none_or(|v| !v.eq_ignore_ascii_case("NONE"));
    Ok(Prepared {
        client,
        flavor,
        start,
        gtid,
        checks,
        checksums,
    })
}

async fn resolve_start(
    client: &SourceClient,
    conn: &mut mysql_async::Conn,
    facts: &crate::source::ServerFacts,
    checkpoint: Option<Checkpoint>,
    start: StartAt,
) -> Result<(Checkpoint, Option<String>), CaptureError> {
    Ok(match (checkpoint, start) {
        (Some(cp), _) => (cp, None),
        (None, StartAt::End) => {
            let (file, pos) = client.current_end(conn).await?;
            (fresh(file, pos), None)
        }
        (None, StartAt::Oldest) => {
            let file = facts.binlogs.first().cloned().ok_or_else(|| {
                CaptureError::Check(format!("SHOW BINARY LOGS on {} lists no files (binary log off, or the user lacks REPLICATION CLIENT / BINLOG MONITOR)", client.addr))
            })?;
            (fresh(file, 4), None)
        }
        (None, StartAt::File { file, pos }) => (fresh(file, pos), None),
        (None, StartAt::Gtid(g)) => {
            let mut cp = fresh(String::new(), 4);
            cp.gtid = Some(g.clone());
            (cp, Some(g))
        }
    })
}

fn fresh(file: String, pos: u64) -> Checkpoint {
    Checkpoint {
        file,
        pos,
        gtid: None,
        seq: 0,
        saved_ms: 0,
    }
}

/// Fails with every failed check's message; logs warnings.
pub fn enforce(checks: &[CheckResult]) -> Result<(), CaptureError> {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| format!("{}: {}", c.name, c.message))
        .collect();
    for c in checks.iter().filter(|c| c.status == CheckStatus::Warn) {
        tracing::warn!(check = c.name, "{}", c.message);
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CaptureError::Check(format!(
            "start-up checks failed:\n  {}",
            failed.join("\n  ")
        )))
    }
}

/// Options of one binlog read.
pub struct ReadOptions {
    /// Stop at the end of the binlog instead of waiting for more (tail --until-end, benchmarks).
    pub until_end: bool,
    /// Set once the stream is open (for /readyz).
    pub ready: Arc<AtomicBool>,
    /// Sees every decoded event to merge snapshot chunks into the stream (`run` only).
    pub snapshot: Option<crate::snapshot::Hook>,
    /// Stop once this binlog position is reached (tail --until, benchmarks).
    pub until: Option<(String, u64)>,
}

/// Reads the binlog from `prep.start` into `emit` until cancelled, reconnecting with backoff
/// after transient errors and resuming from the last transaction boundary.
pub async fn read_binlog(
    cfg: &CaptureConfig,
    prep: &Prepared,
    emit: &mut Emit,
    opts: &ReadOptions,
    cancel: &CancellationToken,
) -> Result<Decoder, CaptureError> {
    let filter =
        Filter::new(&cfg.filter).map_err(|e| CaptureError::Check(format!("filter: {e}")))?;
    let mut decoder = Decoder::new(&cfg.instance, filter, prep.start.clone());
    decoder.set_checksums(prep.checksums);
    let mut schema = SchemaCache::new(prep.flavor);
    let mut backoff = Backoff::default();
    let mut gtid = prep.gtid.clone();
    let client = &prep.client;
    loop {
        let from = decoder.resume_point().clone();
        let until = opts.until.as_ref().map(|(f, p)| (f.as_str(), *p));
        let result = match client
            .stream(prep.flavor, &from, gtid.as_deref(), opts.until_end, until)
            .await
        {
            Ok(mut dump) => {
                opts.ready.store(true, Ordering::Relaxed);
                tracing::info!(file = %from.file, pos = from.pos, gtid = ?gtid, "reading the binlog of {}", client.addr);
                let mut batch = Batch::default();
                let result = read_stream(
                    prep,
                    &mut dump,
                    &mut decoder,
                    &mut schema,
                    emit,
                    opts,
                    cancel,
                    &mut backoff,
                    &mut batch,
                )
                .await;
                // What was decoded is handed on in every case, errors included: the decoder's
                // resume point is already past it.
                let result = batch.hand_on(emit).await.and(result);
                // Stopped on purpose (cancelled, or at `until`): no dump thread is left waiting.
                if result.is_ok() {
                    client.end_dump(dump).await;
                }
                result
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                emit.flush()?;
                return Ok(decoder);
            }
            Err(e) if e.is_transient() && !cancel.is_cancelled() => {
                opts.ready.store(false, Ordering::Relaxed);
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "binlog stream lost; reconnecting from {}:{}", decoder.resume_point().file, decoder.resume_point().pos);
                metrics::counter!("sluice_capture_reconnects_total").increment(1);
                decoder.rewind();
                schema.clear();
                // After the first connection, the file/pos boundary is exact; GTID is not needed.
                if !decoder.resume_point().file.is_empty() {
                    gtid = None;
                }
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(decoder),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Outputs are handed to [`Emit`] in batches of up to this many ...
const BATCH_OUTPUTS: usize = 1024;
/// ... or of the outputs of this many bytes of binlog events, whichever comes first; and
/// whenever the stream has nothing more buffered. One hand-over per rows event (~16 rows)
/// cost a wake-up of the publisher and of the reader each, as many as 19,000 per 300k rows.
const BATCH_BYTES: u64 = 1 << 20;

/// Outputs decoded but not yet handed on.
#[derive(Default)]
struct Batch {
    out: Vec<Output>,
    bytes: u64,
}

impl Batch {
    async fn hand_on(&mut self, emit: &mut Emit) -> Result<(), CaptureError> {
        self.bytes = 0;
        emit.emit(&mut self.out).await
    }
}

/// Decodes the events of `dump` into `batch`, handed to `emit` as it fills, until the server
/// ends a non-blocking stream, `until` is reached or `cancel` fires (all `Ok`), or an error.
#[allow(clippy::too_many_arguments)]
async fn read_stream(
    prep: &Prepared,
    dump: &mut DumpStream,
    decoder: &mut Decoder,
    schema: &mut SchemaCache,
    emit: &mut Emit,
    opts: &ReadOptions,
    cancel: &CancellationToken,
    backoff: &mut Backoff,
    batch: &mut Batch,
) -> Result<(), CaptureError> {
    let client = &prep.client;
    // The outputs of one event (the snapshot hook looks at one event's at a time).
    let mut out: Vec<Output> = Vec::with_capacity(256);
    let mut bytes: u64 = 0;
    // Looked up once: the macro finds the gauge in the registry on every call.
    let lag = metrics::gauge!("sluice_capture_lag_seconds");
    loop {
        let next = match dump.stream.next().now_or_never() {
            Some(n) => n,
            None => {
                // Nothing buffered: hand on and flush what we have before waiting.
                batch.hand_on(emit).await?;
                emit.flush()?;
                metrics::counter!("sluice_capture_binlog_bytes_total")
                    .increment(std::mem::take(&mut bytes));
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    n = dump.stream.next() => n,
                }
            }
        };
        let event = match next {
            // The server's end: asked for, or an `--until` that no event ends exactly on.
            None if dump.non_blocking => return Ok(()),
            None => {
                return Err(CaptureError::StreamEnded {
                    addr: client.addr.clone(),
                })
            }
            Some(Err(e)) => return Err(client.err(e)),
            Some(Ok(e)) => e,
        };
        backoff.reset();
        let hd = event.header();
        let h = Header {
            event_type: hd.event_type_raw(),
            timestamp: hd.timestamp(),
            server_id: hd.server_id(),
            log_pos: hd.log_pos(),
            event_size: hd.event_size(),
        };
        bytes += u64::from(h.event_size);
        match h.event_type {
            code::TABLE_MAP => {
                let mut map =
                    TableMap::parse(event.data(), 6).map_err(|e| CaptureError::Corrupt {
                        file: decoder.file().to_owned(),
                        offset: u64::from(h.log_pos.saturating_sub(h.event_size)),
                        detail: e.0,
                    })?;
                if decoder.schema_changed {
                    schema.clear();
                    decoder.schema_changed = false;
                }
                schema.enrich(client, &mut map).await?;
                decoder.add_table(map);
            }
            code::HEARTBEAT => lag.set(0.0),
            _ => {}
        }
        // One clock reading per event, for its `capture_ms` and the lag (reading the clock was
        // 2.4% of the reader's samples, twice per event).
        let now = now_ms();
        decoder.handle(h, event.data(), now, &mut out)?;
        if let Some(s) = &opts.snapshot {
            s.observe(decoder, h.event_type, &mut out);
        }
        let last_ts = match out.last() {
            Some(Output::Row(r)) => Some(r.ts_ms),
            Some(Output::Event(ev)) => Some(ev.ts_ms),
            Some(Output::Snapshot(r)) => Some(r.ts_ms),
            _ => None,
        };
        if let Some(ts_ms) = last_ts {
            lag.set(((now - ts_ms).max(0) as f64) / 1000.0);
        }
        batch.out.append(&mut out);
        batch.bytes += u64::from(h.event_size);
        if batch.out.len() >= BATCH_OUTPUTS || batch.bytes >= BATCH_BYTES {
            batch.hand_on(emit).await?;
        }
        if let Some((file, pos)) = &opts.until {
            let here = decoder.position();
            if !here.0.is_empty() && (here.0, here.1) >= (file.as_str(), *pos) {
                return Ok(());
            }
        }
    }
}

/// `run`: binlog → Kafka, checkpoints after acknowledgements, until `cancel`; or, with
/// `until`, until that position is read and everything before it acknowledged and saved.
pub async fn run(
    cfg: &CaptureConfig,
    until: Option<(String, u64)>,
    cancel: CancellationToken,
    ready: Arc<AtomicBool>,
) -> Result<(), CaptureError> {
    let store = FileStore::new(&cfg.checkpoint.dir, &cfg.instance);
    let kafka_store = cfg.checkpoint.kafka.then(|| KafkaStore {
        topic: cfg.checkpoint.topic.clone(),
        instance: cfg.instance.clone(),
        client: clients::admin_config(cfg),
    });
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
        let mut checkpoint = store.load()?;
        if let Some(k) = &kafka_store {
            k.ensure_topic().await?;
            if let Some(remote) = k.load().await? {
                if checkpoint
                    .as_ref()
                    .is_none_or(|local| remote.saved_ms > local.saved_ms)
                {
                    tracing::info!(file = %remote.file, pos = remote.pos, "using the newer checkpoint from {}", k.topic);
                    checkpoint = Some(remote);
                }
            }
        }
        match run_once(
            cfg,
            checkpoint,
            &store,
            kafka_store.clone(),
            until.clone(),
            &cancel,
            &ready,
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

async fn run_once(
    cfg: &CaptureConfig,
    checkpoint: Option<Checkpoint>,
    store: &FileStore,
    kafka_store: Option<KafkaStore>,
    until: Option<(String, u64)>,
    cancel: &CancellationToken,
    ready: &Arc<AtomicBool>,
) -> Result<(), CaptureError> {
    let resumed_seq = checkpoint.as_ref().map(|c| c.seq);
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
        interval: Duration::from_millis(cfg.checkpoint.interval_ms),
        spares: spares.clone(),
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

/// `tail`: binlog → JSON lines on stdout, from the configured start (or `start`).
pub async fn tail(
    cfg: &CaptureConfig,
    start: Option<StartAt>,
    until_end: bool,
    until: Option<(String, u64)>,
    cancel: CancellationToken,
) -> Result<(), CaptureError> {
    let prep = prepare(cfg, None, start).await?;
    enforce(&prep.checks)?;
    let mut emit = Emit::Stdout {
        out: std::io::stdout(),
        buf: Vec::with_capacity(STDOUT_CHUNK + (64 << 10)),
    };
    let opts = ReadOptions {
        until_end,
        ready: Arc::new(AtomicBool::new(false)),
        snapshot: None,
        until,
    };
    read_binlog(cfg, &prep, &mut emit, &opts, &cancel).await?;
    emit.flush()
}

/// Decodes from `start` to the current end of the binlog into memory (tests and tools); rows
/// come back as [`Output::Event`].
pub async fn collect(cfg: &CaptureConfig, start: StartAt) -> Result<Vec<Output>, CaptureError> {
    Ok(collect_raw(cfg, start)
        .await?
        .into_iter()
        .map(|o| match o {
            Output::Row(r) => Output::Event(Box::new(r.to_change_event())),
            Output::Snapshot(r) => Output::Event(Box::new(r.to_change_event())),
            other => other,
        })
        .collect())
}

/// [`collect`], with binlog rows left as the [`Output::Row`] the publisher encodes.
pub async fn collect_raw(cfg: &CaptureConfig, start: StartAt) -> Result<Vec<Output>, CaptureError> {
    let prep = prepare(cfg, None, Some(start)).await?;
    enforce(&prep.checks)?;
    let mut emit = Emit::Memory(Vec::new());
    let opts = ReadOptions {
        until_end: true,
        ready: Arc::new(AtomicBool::new(false)),
        snapshot: None,
        until: None,
    };
    read_binlog(cfg, &prep, &mut emit, &opts, &CancellationToken::new()).await?;
    match emit {
        Emit::Memory(v) => Ok(v),
        _ => Ok(Vec::new()),
    }
}

/// `position`: the stored checkpoint and the server's current position, as text lines.
pub async fn position(cfg: &CaptureConfig) -> Result<Vec<String>, CaptureError> {
    let store = FileStore::new(&cfg.checkpoint.dir, &cfg.instance);
    let mut lines = Vec::new();
    match store.load()? {
        Some(cp) => lines.push(format!(
            "checkpoint ({}): {}:{} gtid={} seq={} saved_ms={}",
            store.path().display(),
            cp.file,
            cp.pos,
            cp.gtid.as_deref().unwrap_or("-"),
            cp.seq,
            cp.saved_ms
        )),
        None => lines.push(format!(
            "checkpoint ({}): none yet; a new capture starts at source.start = {:?}",
            store.path().display(),
            cfg.source.start
        )),
    }
    let client = SourceClient::new(&cfg.source)?;
    let mut conn = client.connect().await?;
    let (file, pos) = client.current_end(&mut conn).await?;
    let facts = client.facts(&mut conn).await?;
    let gtid = facts
        .variables
        .get("gtid_binlog_pos")
        .or_else(|| facts.variables.get("gtid_executed"))
        .cloned()
        .unwrap_or_default();
    lines.push(format!(
        "server ({}): {file}:{pos} gtid={}",
        client.addr,
        if gtid.is_empty() { "-" } else { &gtid }
    ));
    let _ = conn.disconnect().await;
    Ok(lines)
}

/// `check`: every start-up check with its result.
pub async fn check(cfg: &CaptureConfig) -> Result<Vec<CheckResult>, CaptureError> {
    let store = FileStore::new(&cfg.checkpoint.dir, &cfg.instance);
    let prep = prepare(cfg, store.load()?, None).await?;
    let mut checks = prep.checks;
    checks.push(check_kafka(cfg).await);
    Ok(checks)
}

/// The `kafka` check: the brokers accept this config's credentials and certificates, and the
/// topic exists (when it does not depend on the table).
async fn check_kafka(cfg: &CaptureConfig) -> CheckResult {
    let result = async {
        let producer = clients::producer(cfg)?;
        let mut topics = Topics::new(cfg);
        match topics.fixed_name() {
            Some(t) => {
                let n = topics.partitions(&producer, &t).await?;
                Ok::<_, CaptureError>(format!("topic {t} has {n} partitions"))
            }
            None => {
                let brokers = producer.probe().await?;
                Ok(format!("connected ({brokers} brokers); topics depend on the table, created or checked on first use"))
            }
        }
    };
    match result.await {
        Ok(message) => CheckResult {
            name: "kafka",
            status: CheckStatus::Ok,
            message,
        },
        Err(e) => CheckResult {
            name: "kafka",
            status: CheckStatus::Fail,
            message: e.to_string(),
        },
    }
}
