//! The binlog reading loop with reconnects, and where its outputs go (Kafka, stdout, memory).

use super::prepare::Prepared;
use crate::binlog::mariadb::code;
use crate::binlog::TableMap;
use crate::clock::now_ms;
use crate::config::CaptureConfig;
use crate::decoder::{Decoder, Header};
use crate::error::{Backoff, CaptureError};
use crate::filter::Filter;
use crate::output::Output;
use crate::publish::{self, Spares};
use crate::source::{DumpStream, SchemaCache};
use futures::{FutureExt as _, StreamExt as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// `tail` writes to stdout once this many bytes of lines are ready.
pub(super) const STDOUT_CHUNK: usize = 1 << 20;

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

    pub(super) fn flush(&mut self) -> Result<(), CaptureError> {
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
pub(super) fn publisher_stopped() -> CaptureError {
    CaptureError::Topic("the publisher stopped".into())
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
    let mut decoder = Decoder::new(&cfg.instance, filter, prep.start.clone())
        .with_detector(crate::detect::Detector::new(&cfg.detect));
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
                crate::tally::get().error();
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
    let tally = crate::tally::get();
    // The binlog file last told to the tally.
    let mut file = String::new();
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
                decoder.add_table(map)?;
            }
            code::HEARTBEAT => tally.caught_up(),
            _ => {}
        }
        // One clock reading per event, for its `capture_ms` and the lag (reading the clock was
        // 2.4% of the reader's samples, twice per event).
        let now = now_ms();
        decoder.handle(h, event.data(), now, &mut out)?;
        if let Some(s) = &opts.snapshot {
            s.observe(decoder, h.event_type, &mut out);
        }
        // Every event with a time moves the read position (heartbeats and artificial events
        // carry none), so tables the filter drops keep the lag true too.
        if h.timestamp > 0 && h.event_type != code::HEARTBEAT {
            tally.read(i64::from(h.timestamp) * 1000, u64::from(h.log_pos));
            if decoder.file() != file {
                file.clear();
                file.push_str(decoder.file());
                tally.file(&file);
            }
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
