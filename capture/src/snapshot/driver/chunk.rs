//! One job's chunks: low watermark, SELECT, high watermark, then accounting once emitted.

use super::{Driver, Outcome};
use crate::checkpoint::FileStore;
use crate::clock::now_ms;
use crate::config::snapshot::Watermarks;
use crate::error::CaptureError;
use crate::output::{SnapTable, SnapshotRow};
use crate::snapshot::hook::{ChunkRows, Emitted, Pending};
use crate::snapshot::job::JobState;
use crate::snapshot::sql;
use crate::snapshot::table::{session, table_meta, TableMeta};
use crate::snapshot::value::{self, KeyValue};
use crate::snapshot::window::Window;
use mysql_async::prelude::Queryable;
use mysql_async::{Params, Value};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Chunks posted and not yet emitted by the reader, at most: the next chunk is read while the
/// reader is still on its way to the previous high watermark.
const PIPELINE: usize = 2;
/// Chunks emitted and not yet covered by a saved checkpoint, at most: bounds the snapshot rows
/// waiting for Kafka (memory) when the broker is slower than the source.
const MAX_UNACKED_CHUNKS: usize = 8;

/// A chunk the driver posted: what to account when the reader emitted it.
struct Posted {
    id: String,
    rows: usize,
    last_key: Option<Vec<KeyValue>>,
    /// Its SELECT returned fewer rows than a chunk: the table ends here.
    last: bool,
}

impl Driver {
    pub(super) async fn run_job(&mut self, i: usize) -> Result<Outcome, CaptureError> {
        let mut conn = session(&self.client).await?;
        let (database, table, filter) = {
            let j = &self.jobs[i];
            (j.database.clone(), j.table.clone(), j.filter.clone())
        };
        let meta = table_meta(&mut conn, &self.client, &database, &table, &self.filter).await?;
        let size = self.snap.chunk_size;
        let first_sql = sql::chunk_select(
            &database,
            &table,
            &meta.select,
            &meta.pk,
            false,
            filter.as_deref(),
            size,
        );
        let next_sql = sql::chunk_select(
            &database,
            &table,
            &meta.select,
            &meta.pk,
            true,
            filter.as_deref(),
            size,
        );
        let first = conn
            .prep(&first_sql)
            .await
            .map_err(|e| self.sql_err(&database, &table, e))?;
        let next = conn
            .prep(&next_sql)
            .await
            .map_err(|e| self.sql_err(&database, &table, e))?;
        let (signal_db, signal_table) = self.hook.shared.signal.clone();
        let insert = sql::insert_signal(&signal_db, &signal_table);
        {
            let j = &mut self.jobs[i];
            if j.state == JobState::Pending {
                j.state = JobState::Running;
                j.started_ms = now_ms();
            }
            j.estimate = meta.estimate;
        }
        let label = format!("{database}.{table}");
        metrics::gauge!("sluice_capture_snapshot_rows_estimate", "table" => label.clone())
            .set(meta.estimate as f64);
        let started = Instant::now();
        let mut last_high_id: u64 = 0;
        let mut posted: VecDeque<Posted> = VecDeque::new();
        let mut unacked: VecDeque<i64> = VecDeque::new();
        let mut cursor = self.jobs[i].last_key.clone();
        let mut rows_posted: u64 = 0;
        let mut table_done = false;
        while !table_done {
            if self.cancel.is_cancelled() {
                return Ok(Outcome::Stopped);
            }
            while posted.len() >= PIPELINE {
                if !self.account(i, &label, &mut posted, &mut unacked).await? {
                    return Ok(self.stopped_or_again());
                }
            }
            if !self.wait_acked(&mut unacked).await {
                return Ok(Outcome::Stopped);
            }
            self.chunk_no += 1;
            let id = format!("{}-{}", self.run_id, self.chunk_no);
            let mut pending = Pending {
                id: id.clone(),
                window: Window::new(&database, &table),
                rows: None,
                to: None,
            };
            if self.hook.shared.watermarks == Watermarks::Position {
                // Every event the reader handles from now on counts: that includes all
                // transactions the SELECT below might not see (see docs/snapshots.md for the
                // one race this leaves).
                pending.window.open();
            }
            self.hook.lock().chunks.push_back(pending);
            if self.hook.shared.watermarks == Watermarks::Table {
                conn.exec_drop(
                    &insert,
                    (&self.hook.shared.instance, "low", &id, 0u64, None::<String>),
                )
                .await
                .map_err(|e| self.client.err(e))?;
            }
            let params: Option<Vec<Value>> = match &cursor {
                None => None,
                Some(k) => Some(key_params(k).ok_or_else(|| {
                    CaptureError::Check(format!(
                        "the stored snapshot position of {label} in {} is not readable; remove that job from the file to start the table again",
                        self.store.path().display()
                    ))
                })?),
            };
            let t_select = Instant::now();
            let rows: Vec<mysql_async::Row> = match params {
                None => conn.exec(&first, ()).await,
                Some(p) => conn.exec(&next, Params::Positional(p)).await,
            }
            .map_err(|e| self.sql_err(&database, &table, e))?;
            let n = rows.len();
            let t_convert = Instant::now();
            let (events, last_key) = self.to_events(&meta, &database, &table, rows);
            tracing::debug!(
                chunk = %id,
                rows = n,
                select_ms = (t_convert - t_select).as_millis() as u64,
                convert_ms = t_convert.elapsed().as_millis() as u64,
                "chunk read"
            );
            if n == 0 {
                // Nothing after the cursor: no high watermark, nothing to emit.
                self.hook.lock().chunks.retain(|c| c.id != id);
                break;
            }
            if let Some(c) = self.hook.lock().chunks.iter_mut().find(|c| c.id == id) {
                c.rows = Some(events);
            }
            match self.hook.shared.watermarks {
                Watermarks::Table => {
                    conn.exec_drop(
                        &insert,
                        (
                            &self.hook.shared.instance,
                            "high",
                            &id,
                            n as u64,
                            None::<String>,
                        ),
                    )
                    .await
                    .map_err(|e| self.client.err(e))?;
                    last_high_id = conn.last_insert_id().unwrap_or(0);
                }
                Watermarks::Position => {
                    let to = self.client.current_end(&mut conn).await?;
                    if let Some(c) = self.hook.lock().chunks.iter_mut().find(|c| c.id == id) {
                        c.to = Some(to);
                    }
                }
            }
            table_done = n < size;
            cursor = last_key.clone();
            posted.push_back(Posted {
                id,
                rows: n,
                last_key,
                last: table_done,
            });
            rows_posted += n as u64;
            self.throttle(started, rows_posted).await;
        }
        while !posted.is_empty() {
            if !self.account(i, &label, &mut posted, &mut unacked).await? {
                return Ok(self.stopped_or_again());
            }
        }
        let j = &mut self.jobs[i];
        j.state = JobState::Done;
        j.updated_ms = now_ms();
        metrics::gauge!("sluice_capture_snapshot_eta_seconds", "table" => label.clone()).set(0.0);
        tracing::info!(table = %label, rows = j.rows, chunks = j.chunks, "snapshot done");
        self.save(0);
        if last_high_id > 0 {
            let prune = sql::prune_signals(&signal_db, &signal_table);
            if let Err(e) = conn
                .exec_drop(prune, (&self.hook.shared.instance, last_high_id))
                .await
            {
                tracing::warn!(error = %e, "cannot delete old watermark rows from {signal_db}.{signal_table}");
            }
        }
        let _ = conn.disconnect().await;
        Ok(Outcome::Done)
    }

    /// Waits for the reader to emit the oldest posted chunk and records it in the job and the
    /// progress file; false when its rows were lost and the chunk must be read again.
    async fn account(
        &mut self,
        i: usize,
        label: &str,
        posted: &mut VecDeque<Posted>,
        unacked: &mut VecDeque<i64>,
    ) -> Result<bool, CaptureError> {
        let Some(p) = posted.pop_front() else {
            return Ok(true);
        };
        let Some(done) = self.wait_emitted(&p.id).await else {
            return Ok(false);
        };
        if done.lost {
            return Ok(false);
        }
        let j = &mut self.jobs[i];
        j.rows += done.rows;
        j.chunks += 1;
        j.last_key = p.last_key;
        j.updated_ms = now_ms();
        if p.last {
            j.state = JobState::Done;
        }
        let label = label.to_owned();
        metrics::counter!("sluice_capture_snapshot_chunks_total", "table" => label.clone())
            .increment(1);
        metrics::counter!("sluice_capture_snapshot_rows_dropped_total", "table" => label.clone())
            .increment(done.dropped);
        metrics::gauge!("sluice_capture_snapshot_rows", "table" => label.clone())
            .set(j.rows as f64);
        metrics::gauge!("sluice_capture_snapshot_rows_per_second", "table" => label.clone())
            .set(j.rate());
        metrics::gauge!("sluice_capture_snapshot_eta_seconds", "table" => label)
            .set(j.eta_secs().unwrap_or(0.0));
        tracing::debug!(chunk = %p.id, rows = p.rows, emitted = done.rows, "chunk emitted");
        unacked.push_back(done.seq);
        self.save(done.seq);
        Ok(true)
    }

    /// Why an attempt ended early: the driver is stopping, or a chunk must be read again.
    fn stopped_or_again(&self) -> Outcome {
        if self.cancel.is_cancelled() {
            Outcome::Stopped
        } else {
            Outcome::Again
        }
    }

    /// Waits until at most [`MAX_UNACKED_CHUNKS`] emitted chunks are not yet covered by the
    /// saved checkpoint; false when stopping.
    async fn wait_acked(&self, unacked: &mut VecDeque<i64>) -> bool {
        let checkpoints = FileStore::new(&self.store_dir(), &self.hook.shared.instance);
        loop {
            if unacked.len() < MAX_UNACKED_CHUNKS {
                return true;
            }
            let acked = checkpoints.load().ok().flatten().map_or(0, |c| c.seq);
            while unacked.front().is_some_and(|s| *s <= acked) {
                unacked.pop_front();
            }
            if unacked.len() < MAX_UNACKED_CHUNKS {
                return true;
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return false,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }

    fn store_dir(&self) -> PathBuf {
        self.store
            .path()
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    /// Waits until the reader emitted chunk `id` and takes its record; None when stopping.
    async fn wait_emitted(&self, id: &str) -> Option<Emitted> {
        loop {
            let notified = self.hook.shared.emitted.notified();
            {
                let mut st = self.hook.lock();
                if let Some(k) = st.emitted.iter().position(|e| e.id == id) {
                    return st.emitted.remove(k);
                }
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return None,
                _ = notified => {}
                // The notification is a wake-up only; the state is the truth.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Sleeps so that the job stays under `max_rows_per_sec`.
    async fn throttle(&self, started: Instant, rows: u64) {
        if self.snap.max_rows_per_sec == 0 {
            return;
        }
        let due = Duration::from_secs_f64(rows as f64 / self.snap.max_rows_per_sec as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::select! {
                _ = self.cancel.cancelled() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Chunk rows as snapshot rows of cells (seq and position are set at the high watermark);
    /// and the last row's key for the next chunk.
    fn to_events(
        &self,
        meta: &TableMeta,
        database: &str,
        table: &str,
        rows: Vec<mysql_async::Row>,
    ) -> (ChunkRows, Option<Vec<KeyValue>>) {
        let capture_ms = now_ms();
        let shared = Arc::new(SnapTable::new(
            Arc::from(self.hook.shared.instance.as_str()),
            database,
            table,
            meta.columns.iter().map(|(name, _)| name.clone()).collect(),
            meta.pk.clone(),
        ));
        let no_file: Arc<str> = Arc::from("");
        let mut out = Vec::with_capacity(rows.len());
        let mut last_key = None;
        let n = rows.len();
        for (r, row) in rows.into_iter().enumerate() {
            let values = row.unwrap();
            if r + 1 == n {
                last_key = Some(
                    meta.pk_index
                        .iter()
                        .map(|i| values.get(*i).map_or(KeyValue::Null, KeyValue::from))
                        .collect(),
                );
            }
            let cells = meta
                .columns
                .iter()
                .zip(values)
                .enumerate()
                .map(|(i, ((_, kind), v))| {
                    let cell = value::cell(*kind, v);
                    match meta.masks.get(i) {
                        Some(Some(m)) => masked(m, &cell),
                        _ => cell,
                    }
                })
                .collect();
            out.push(SnapshotRow {
                table: shared.clone(),
                cells,
                seq: 0,
                ts_ms: 0,
                capture_ms,
                file: no_file.clone(),
                offset: 0,
                row: 0,
                gtid: None,
                txn_last: false,
            });
        }
        (out, last_key)
    }

    fn sql_err(&self, database: &str, table: &str, e: mysql_async::Error) -> CaptureError {
        match &e {
            // Syntax errors and unknown columns come from a bad --where; say so.
            mysql_async::Error::Server(s) if matches!(s.code, 1054 | 1064 | 1142 | 1143) => {
                CaptureError::Check(format!(
                    "snapshot SELECT on {database}.{table} failed on {}: {}; check the --where condition and the capture user's SELECT grant",
                    self.client.addr, s.message
                ))
            }
            _ => self.client.err(e),
        }
    }
}

/// The chunk SELECT's parameters after `key`: the leading column, then the whole key
/// (see [`sql::chunk_select`]).
fn key_params(key: &[KeyValue]) -> Option<Vec<Value>> {
    let values: Vec<Value> = key.iter().map(KeyValue::to_value).collect::<Option<_>>()?;
    Some(match values.len() {
        1 => values,
        _ => {
            let mut p = Vec::with_capacity(values.len() + 1);
            p.push(values[0].clone());
            p.extend(values);
            p
        }
    })
}

/// `cell` after its `[filter.mask]` masking, as the binlog path masks the same value: the mask
/// applies to the value's JSON form, and its text result is a text cell.
fn masked(m: &sluice_rules::Masking, cell: &sluice_event::Cell) -> sluice_event::Cell {
    match m.apply(&cell.to_json()) {
        serde_json::Value::Null => sluice_event::Cell::Null,
        serde_json::Value::String(s) => sluice_event::Cell::Text(s),
        other => sluice_event::Cell::Json(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_key_parameters() {
        let k = vec![KeyValue::Int(3), KeyValue::Bytes("YQ==".into())];
        assert_eq!(
            key_params(&k),
            Some(vec![
                Value::Int(3),
                Value::Int(3),
                Value::Bytes(b"a".to_vec())
            ])
        );
        assert_eq!(key_params(&[KeyValue::UInt(9)]), Some(vec![Value::UInt(9)]));
        assert_eq!(sql::chunk_params(2), 3);
    }
}
