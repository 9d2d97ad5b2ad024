//! Snapshots and backfills: chunked, lock-free reads of a table by primary-key range, merged
//! into the live binlog stream with the DBLog watermark method, so every snapshot row gets its
//! `seq` from the stream's own generator at the point where it is correct (docs/snapshots.md).
//!
//! Two halves share one [`Hook`]: the *driver* task reads chunks (low watermark, SELECT, high
//! watermark) on its own connection; the binlog reader calls [`Hook::observe`] after every
//! decoded event, which remembers keys changed between the watermarks and, at the high
//! watermark, puts the surviving chunk rows into the stream as `source = "snapshot"` INSERTs.
//! Progress is saved next to the checkpoint and gated by its `seq`, so a restarted capture
//! continues after the last chunk Kafka acknowledged.

pub mod row;
pub mod sql;
pub mod value;
pub mod window;

use crate::binlog::mariadb::code;
use crate::checkpoint::FileStore;
use crate::config::{CaptureConfig, FilterConfig};
use crate::decoder::{Decoder, Output};
use crate::error::{Backoff, CaptureError};
use crate::filter::Filter;
use crate::publish::now_ms;
use crate::run::Prepared;
use crate::source::SourceClient;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Value};
use regex::Regex;
use row::{SnapTable, SnapshotRow};
use serde::{Deserialize, Serialize};
use sluice_config::Problems;
use sluice_event::{ChangeEvent, EventType, Position};
use std::collections::{HashSet, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use value::{KeyValue, Kind};
use window::Window;

/// Rows per chunk SELECT.
pub const DEFAULT_CHUNK_SIZE: usize = 10_000;
/// The signalling table Sluice creates for watermarks and on-demand requests.
pub const DEFAULT_SIGNAL_TABLE: &str = "sluice.sluice_signal";

/// The `[snapshot]` section; without it the capture never snapshots.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// `initial`: a new instance (no checkpoint yet) loads `tables` once while it starts
    /// streaming; `never` (default): only on demand (`sluice-capture snapshot`).
    #[serde(default)]
    pub mode: Mode,
    /// `database.table` to load for `mode = "initial"`; empty means every table the
    /// `[filter]` selects.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Rows per chunk SELECT (and the most rows held in memory).
    #[serde(default = "default_chunk_size")]
    pub chunk_size: usize,
    /// `table`: watermark rows in `signal_table` (exact, needs write access); `position`:
    /// binlog positions before and after each chunk (read-only user, weaker; see the docs).
    #[serde(default)]
    pub watermarks: Watermarks,
    /// `database.table` of the signalling table, created if missing.
    #[serde(default = "default_signal_table")]
    pub signal_table: String,
    /// Snapshot rows per second at most, to spare the primary; 0 = no limit.
    #[serde(default)]
    pub max_rows_per_sec: u64,
}

/// When a snapshot runs without being asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Never,
    Initial,
}

/// How chunk reads are placed in the binlog stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Watermarks {
    #[default]
    Table,
    Position,
}

fn default_chunk_size() -> usize {
    DEFAULT_CHUNK_SIZE
}
fn default_signal_table() -> String {
    DEFAULT_SIGNAL_TABLE.to_owned()
}

impl SnapshotConfig {
    /// Reports problems under `snapshot.`; the filter must let the signalling table through.
    pub fn validate(&self, filter: &FilterConfig, p: &mut Problems) {
        if self.chunk_size == 0 || self.chunk_size > 1_000_000 {
            p.add("snapshot.chunk_size", "must be between 1 and 1000000");
        }
        for (i, t) in self.tables.iter().enumerate() {
            if split_table(t).is_none() {
                p.add(
                    format!("snapshot.tables[{i}]"),
                    format!("`{t}` is not database.table"),
                );
            }
        }
        if split_table(&self.signal_table).is_none() {
            p.add(
                "snapshot.signal_table",
                format!("`{}` is not database.table", self.signal_table),
            );
        } else if self.watermarks == Watermarks::Table {
            let compiled = |v: &Vec<String>| -> Vec<Regex> {
                v.iter().filter_map(|r| Regex::new(r).ok()).collect()
            };
            let name = &self.signal_table;
            let included = filter.include.is_empty()
                || compiled(&filter.include).iter().any(|r| r.is_match(name));
            let excluded = compiled(&filter.exclude).iter().any(|r| r.is_match(name));
            if !included || excluded {
                p.add(
                    "snapshot.signal_table",
                    format!("the capture must read the rows of {name} from the binlog, but [filter] drops them; add \"^{}$\" to filter.include and keep it out of filter.exclude (its rows never reach Kafka)", regex::escape(name)),
                );
            }
        }
        if self.watermarks == Watermarks::Position && self.signal_table != DEFAULT_SIGNAL_TABLE {
            // Harmless, but says the user may expect a table that is never written.
            p.add(
                "snapshot.signal_table",
                "unused with watermarks = \"position\"; remove it",
            );
        }
    }
}

/// `database.table` → (database, table).
pub fn split_table(s: &str) -> Option<(String, String)> {
    let (d, t) = s.split_once('.')?;
    (!d.is_empty() && !t.is_empty() && !t.contains('.')).then(|| (d.to_owned(), t.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// Progress: the jobs, saved next to the checkpoint and gated by its `seq`.

/// One table to snapshot and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The request that asked for it (`initial` for the start-up snapshot).
    pub request: String,
    pub database: String,
    pub table: String,
    /// Extra condition of a partial backfill (`--where`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    pub state: JobState,
    /// Key of the last row of the last chunk emitted; the next chunk starts after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_key: Option<Vec<KeyValue>>,
    /// Rows emitted (after the window dropped the ones the binlog carried).
    pub rows: u64,
    /// Rows the server estimated at the start (information_schema.TABLES), for the ETA.
    pub estimate: u64,
    pub chunks: u64,
    pub started_ms: i64,
    pub updated_ms: i64,
    /// Why a job failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Pending,
    Running,
    Done,
    Failed,
}

impl Job {
    fn new(request: &str, database: &str, table: &str, filter: Option<String>) -> Job {
        Job {
            request: request.to_owned(),
            database: database.to_owned(),
            table: table.to_owned(),
            filter,
            state: JobState::Pending,
            last_key: None,
            rows: 0,
            estimate: 0,
            chunks: 0,
            started_ms: 0,
            updated_ms: 0,
            error: None,
        }
    }

    /// `database.table`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.database, self.table)
    }

    /// Rows per second since the job started.
    pub fn rate(&self) -> f64 {
        let secs = (self.updated_ms - self.started_ms) as f64 / 1000.0;
        if secs > 0.0 {
            self.rows as f64 / secs
        } else {
            0.0
        }
    }

    /// Seconds left at the current rate, from the server's row estimate.
    pub fn eta_secs(&self) -> Option<f64> {
        let rate = self.rate();
        (rate > 0.0 && self.state == JobState::Running)
            .then(|| self.estimate.saturating_sub(self.rows) as f64 / rate)
    }

    /// One line for the CLI: a bar, rows, rate, ETA.
    pub fn line(&self) -> String {
        let pct = if self.state == JobState::Done {
            100.0
        } else if self.estimate > 0 {
            (self.rows as f64 * 100.0 / self.estimate as f64).min(99.0)
        } else {
            0.0
        };
        let filled = (pct / 5.0) as usize;
        let bar = format!("{}{}", "#".repeat(filled), ".".repeat(20 - filled.min(20)));
        let eta = match self.eta_secs() {
            Some(s) => format!(" ETA {}s", s.round() as u64),
            None => String::new(),
        };
        let state = match self.state {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "FAILED",
        };
        let mut line = format!(
            "{:<32} [{bar}] {pct:5.1}% {} rows (~{} estimated), {} chunks, {:.0} rows/s{eta} {state}",
            self.name(),
            self.rows,
            self.estimate,
            self.chunks,
            self.rate()
        );
        if let Some(e) = &self.error {
            line.push_str(": ");
            line.push_str(e);
        }
        line
    }
}

/// The jobs as of one point of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    /// The stream's `seq` when these jobs became true: once a checkpoint covers it, the
    /// chunks it counts are acknowledged by Kafka.
    seq: i64,
    jobs: Vec<Job>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ProgressFile {
    entries: Vec<Entry>,
}

/// `<checkpoint dir>/<instance>.snapshot.json`: recent job lists, each with the `seq` from which
/// it holds. On start the newest one the checkpoint covers wins, so progress never runs
/// ahead of what Kafka acknowledged.
#[derive(Debug, Clone)]
pub struct ProgressStore {
    path: PathBuf,
    checkpoints: FileStore,
}

impl ProgressStore {
    pub fn new(dir: &Path, instance: &str) -> ProgressStore {
        ProgressStore {
            path: dir.join(format!("{instance}.snapshot.json")),
            checkpoints: FileStore::new(dir, instance),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<Option<ProgressFile>, CaptureError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                CaptureError::CheckpointFormat {
                    path: self.path.display().to_string(),
                    detail: e.to_string(),
                }
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(self.io(source)),
        }
    }

    /// Whether any snapshot was ever planned by this instance.
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// The jobs the checkpoint with `seq` covers (none yet: only the entries at seq 0).
    pub fn confirmed(&self, seq: i64) -> Result<Vec<Job>, CaptureError> {
        let file = self.read()?.unwrap_or_default();
        Ok(pick(&file.entries, seq)
            .map(|e| e.jobs.clone())
            .unwrap_or_default())
    }

    /// Forgets entries a checkpoint at `seq` does not cover: they belong to a run that stopped
    /// before Kafka acknowledged them, and the `seq`s of this run may be lower.
    pub fn reset_to(&self, seq: i64) -> Result<Vec<Job>, CaptureError> {
        let jobs = self.confirmed(seq)?;
        if self.exists() {
            let file = ProgressFile {
                entries: vec![Entry {
                    seq: 0,
                    jobs: jobs.clone(),
                }],
            };
            self.write(&file)?;
        }
        Ok(jobs)
    }

    /// The newest jobs written, acknowledged or not (for `snapshot --status`).
    pub fn latest(&self) -> Result<Vec<Job>, CaptureError> {
        let file = self.read()?.unwrap_or_default();
        Ok(file
            .entries
            .last()
            .map(|e| e.jobs.clone())
            .unwrap_or_default())
    }

    /// Records `jobs` as of stream `seq`, forgetting entries the checkpoint made obsolete.
    pub fn save(&self, seq: i64, jobs: &[Job]) -> Result<(), CaptureError> {
        let acked = self.checkpoints.load()?.map(|c| c.seq).unwrap_or(0);
        let mut file = self.read().unwrap_or_default().unwrap_or_default();
        file.entries = prune(std::mem::take(&mut file.entries), acked);
        file.entries.push(Entry {
            seq,
            jobs: jobs.to_vec(),
        });
        self.write(&file)
    }

    fn write(&self, file: &ProgressFile) -> Result<(), CaptureError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        let tmp = self.path.with_extension("json.tmp");
        let bytes =
            serde_json::to_vec_pretty(file).map_err(|e| self.io(std::io::Error::other(e)))?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| self.io(e))?;
        f.write_all(&bytes).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))
    }

    fn io(&self, source: std::io::Error) -> CaptureError {
        CaptureError::CheckpointIo {
            path: self.path.display().to_string(),
            source,
        }
    }
}

/// The newest entry at or before `seq`.
fn pick(entries: &[Entry], seq: i64) -> Option<&Entry> {
    entries.iter().rev().find(|e| e.seq <= seq)
}

/// Keeps the newest entry the checkpoint covers and everything after it.
fn prune(entries: Vec<Entry>, acked: i64) -> Vec<Entry> {
    let keep_from = entries.iter().rposition(|e| e.seq <= acked).unwrap_or(0);
    entries.into_iter().skip(keep_from).collect()
}

// ---------------------------------------------------------------------------------------------
// The hook the binlog reader calls, and the state it shares with the driver.

/// An on-demand request read from the signalling table (or the admin endpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    pub tables: Vec<String>,
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// A chunk's rows as events (the window compares their Kafka keys).
type ChunkRows = Vec<SnapshotRow>;

/// Requests from the admin endpoint, for the driver running in this process.
static ADMIN: Mutex<Vec<Request>> = Mutex::new(Vec::new());

/// `POST /snapshot` on the capture's metrics port, body `{"tables":["db.t"],"where":"..."}`:
/// queues a snapshot in the capture running in this process (the way to ask for one with
/// `watermarks = "position"`, where there is no signalling table). Answers 202 with the request
/// id; progress as for any request (`sluice-capture snapshot`, /metrics).
pub async fn admin(body: String) -> (axum::http::StatusCode, String) {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        tables: Vec<String>,
        #[serde(default, rename = "where")]
        filter: Option<String>,
    }
    let bad = |msg: String| (axum::http::StatusCode::BAD_REQUEST, msg + "\n");
    let b = match serde_json::from_str::<Body>(&body) {
        Ok(b) => b,
        Err(e) => {
            return bad(format!(
                "the body must be {{\"tables\":[\"database.table\"],\"where\":\"<optional SQL>\"}}: {e}"
            ))
        }
    };
    if b.tables.is_empty() {
        return bad("`tables` is empty; name at least one database.table".into());
    }
    if let Some(t) = b.tables.iter().find(|t| split_table(t).is_none()) {
        return bad(format!("`{t}` is not database.table"));
    }
    let id = format!("http-{:x}", now_ms());
    ADMIN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(Request {
            id: id.clone(),
            tables: b.tables,
            filter: b.filter,
        });
    (
        axum::http::StatusCode::ACCEPTED,
        format!("{{\"id\":\"{id}\"}}\n"),
    )
}

/// The chunk being read: its window, and its rows once the SELECT returned.
struct Pending {
    id: String,
    window: Window,
    rows: Option<ChunkRows>,
    /// Position mode: the window ends once the reader passed this binlog position (read
    /// after the SELECT); it starts when the driver posts the chunk, before the SELECT.
    to: Option<(String, u64)>,
}

/// What the reader did with a chunk.
#[derive(Debug, Clone, PartialEq)]
struct Emitted {
    id: String,
    /// `seq` of the chunk's last position; a checkpoint at or past it covers the chunk.
    seq: i64,
    rows: u64,
    dropped: u64,
    /// Its high watermark came without its rows (cannot happen while the driver posts rows
    /// before writing the watermark); the driver reads the chunk again.
    lost: bool,
}

#[derive(Default)]
struct State {
    /// Chunks posted by the driver, oldest first; their windows follow each other in the
    /// binlog because one connection writes their watermarks in order.
    chunks: VecDeque<Pending>,
    /// Chunks the reader put into the stream, for the driver to account.
    emitted: VecDeque<Emitted>,
    requests: Vec<(i64, Request)>,
    /// The next checkpoint must carry at least this `seq` (snapshot rows came after it).
    fix_seq: Option<i64>,
}

struct Shared {
    instance: String,
    signal: (String, String),
    watermarks: Watermarks,
    state: Mutex<State>,
    /// Requests arrived.
    wake: Notify,
    /// A chunk was emitted.
    emitted: Notify,
}

/// The binlog reader's side of the snapshot (cheap to clone).
#[derive(Clone)]
pub struct Hook {
    shared: Arc<Shared>,
}

impl Hook {
    fn new(cfg: &CaptureConfig, snap: &SnapshotConfig) -> Hook {
        let signal = split_table(&snap.signal_table)
            .unwrap_or_else(|| (String::from("sluice"), String::from("sluice_signal")));
        Hook {
            shared: Arc::new(Shared {
                instance: cfg.instance.clone(),
                signal,
                watermarks: snap.watermarks,
                state: Mutex::new(State::default()),
                wake: Notify::new(),
                emitted: Notify::new(),
            }),
        }
    }

    /// Drops every posted chunk and unaccounted emission (the driver starts over from the
    /// last chunk it accounted).
    fn forget_chunks(&self) {
        let mut st = self.lock();
        st.chunks.clear();
        st.emitted.clear();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written in a way that
        // matters more than stopping; keep going with what is there.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Called by the binlog reader after the decoder handled an event of `event_type` and
    /// before `out` is published: consumes signal rows, tracks the window, and puts a
    /// finished chunk into `out` at its high watermark.
    pub fn observe(&self, decoder: &mut Decoder, event_type: u8, out: &mut Vec<Output>) {
        let mut st = self.lock();
        if out.is_empty() && st.chunks.is_empty() {
            return;
        }
        let mut result: Vec<Output> = Vec::with_capacity(out.len());
        for o in out.drain(..) {
            match o {
                Output::Event(ev)
                    if ev.database == self.shared.signal.0 && ev.table == self.shared.signal.1 =>
                {
                    self.signal(&mut st, decoder, *ev, &mut result);
                }
                Output::Event(ev) => {
                    if ev.kind != EventType::Ddl {
                        let mut key: Option<Vec<u8>> = None;
                        for c in st.chunks.iter_mut() {
                            if c.window.wants(&ev.database, &ev.table) {
                                let k = key.get_or_insert_with(|| ev.key()).clone();
                                c.window.observe(&ev.database, &ev.table, k);
                            }
                        }
                    }
                    result.push(Output::Event(ev));
                }
                Output::Row(r)
                    if r.database() == self.shared.signal.0
                        && r.table_name() == self.shared.signal.1 =>
                {
                    self.signal(&mut st, decoder, r.to_change_event(), &mut result);
                }
                Output::Row(r) => {
                    let mut key: Option<Vec<u8>> = None;
                    for c in st.chunks.iter_mut() {
                        if c.window.wants(r.database(), r.table_name()) {
                            let k = key.get_or_insert_with(|| r.key()).clone();
                            c.window.observe(r.database(), r.table_name(), k);
                        }
                    }
                    result.push(Output::Row(r));
                }
                // Only this hook makes snapshot rows, below; none come from the decoder.
                Output::Snapshot(r) => result.push(Output::Snapshot(r)),
                Output::Commit(mut cp) => {
                    if let Some(s) = st.fix_seq.take() {
                        cp.seq = cp.seq.max(s);
                    }
                    result.push(Output::Commit(cp));
                }
            }
        }
        // Position mode emits only between transactions: after a commit, or at a heartbeat of
        // an idle source.
        if self.shared.watermarks == Watermarks::Position
            && (matches!(result.last(), Some(Output::Commit(_))) || event_type == code::HEARTBEAT)
        {
            loop {
                let at = decoder.resume_point();
                let passed = st.chunks.front().is_some_and(|c| {
                    c.rows.is_some()
                        && c.to.as_ref().is_some_and(|(file, pos)| {
                            (at.file.as_str(), at.pos) >= (file.as_str(), *pos)
                        })
                });
                if !passed {
                    break;
                }
                let at = Position {
                    file: at.file.clone(),
                    offset: at.pos,
                    row: 0,
                    gtid: at.gtid.clone(),
                };
                if let Some(c) = st.chunks.pop_front() {
                    // Before the commit marker, so the checkpoint it becomes covers the rows;
                    // at a heartbeat, a marker of the boundary the stream is idle at.
                    let commit = match result.pop() {
                        Some(Output::Commit(cp)) => cp,
                        other => {
                            result.extend(other);
                            decoder.resume_point().clone()
                        }
                    };
                    let n = c.rows.as_ref().map_or(0, Vec::len) as u64;
                    self.emit(&mut st, decoder, c, n, now_ms(), at, &mut result);
                    let mut cp = commit;
                    cp.seq = cp.seq.max(decoder.resume_point().seq);
                    st.fix_seq = None;
                    result.push(Output::Commit(cp));
                }
            }
        }
        *out = result;
    }

    fn signal(
        &self,
        st: &mut State,
        decoder: &mut Decoder,
        ev: ChangeEvent,
        out: &mut Vec<Output>,
    ) {
        let text = |k: &str| ev.data.get(k).and_then(|v| v.as_str()).unwrap_or("");
        if text("instance") != self.shared.instance || ev.kind != EventType::Insert {
            return;
        }
        let chunk = text("chunk").to_owned();
        match text("kind") {
            "low" => {
                if let Some(c) = st.chunks.iter_mut().find(|c| c.id == chunk) {
                    c.window.open();
                }
            }
            "high" => {
                let nrows = ev.data.get("nrows").and_then(|v| v.as_u64()).unwrap_or(0);
                let ours = st
                    .chunks
                    .front()
                    .is_some_and(|c| c.id == chunk && c.rows.is_some() && c.window.is_open());
                let pos = Position {
                    row: 0,
                    ..ev.pos.clone()
                };
                if ours {
                    if let Some(c) = st.chunks.pop_front() {
                        self.emit(st, decoder, c, nrows, ev.ts_ms, pos, out);
                    }
                } else {
                    if let Some(i) = st.chunks.iter().position(|c| c.id == chunk) {
                        // Ours, but not ready: never expected; read it again rather than
                        // emit rows at the wrong place.
                        st.chunks.remove(i);
                        st.emitted.push_back(Emitted {
                            id: chunk.clone(),
                            seq: 0,
                            rows: 0,
                            dropped: 0,
                            lost: true,
                        });
                        self.shared.emitted.notify_one();
                    }
                    // A high watermark of an earlier run, read again after a restart: its rows
                    // are gone (the driver reads that chunk again), but it moves `seq` as it
                    // did the first time, so the events after it keep their numbers.
                    let mut last = None;
                    for _ in 0..nrows {
                        last = Some(decoder.next_seq(ev.ts_ms));
                    }
                    if let Some(s) = last {
                        st.fix_seq = Some(s);
                    }
                }
            }
            "snapshot" => match serde_json::from_str::<Request>(text("payload")) {
                Ok(req) => {
                    st.requests.push((ev.seq, req));
                    self.shared.wake.notify_one();
                }
                Err(e) => tracing::error!(
                    row = %text("payload"),
                    "ignoring a snapshot request in {}.{} whose payload is not {{\"id\":..,\"tables\":[..]}}: {e}",
                    self.shared.signal.0,
                    self.shared.signal.1
                ),
            },
            other => tracing::debug!(kind = other, "ignoring signal row"),
        }
    }

    /// Puts the surviving rows of `c` into `out` with `seq`s taken at this point: one per row
    /// the SELECT returned (`nrows`), so the numbering does not depend on the window.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        st: &mut State,
        decoder: &mut Decoder,
        c: Pending,
        nrows: u64,
        ts_ms: i64,
        pos: Position,
        out: &mut Vec<Output>,
    ) {
        let rows = c.rows.unwrap_or_default();
        let total = rows.len() as u64;
        let n = nrows.max(total);
        let seqs: Vec<i64> = (0..n).map(|_| decoder.next_seq(ts_ms)).collect();
        let surviving = c.window.close(rows, SnapshotRow::key);
        let emitted = surviving.len() as u64;
        let last = surviving.len().saturating_sub(1);
        let file: Arc<str> = Arc::from(pos.file.as_str());
        let gtid: Option<Arc<str>> = pos.gtid.as_deref().map(Arc::from);
        for (k, (i, mut ev)) in surviving.into_iter().enumerate() {
            ev.seq = seqs
                .get(i)
                .copied()
                .unwrap_or_else(|| decoder.next_seq(ts_ms));
            ev.ts_ms = ts_ms;
            ev.file = file.clone();
            ev.offset = pos.offset;
            ev.row = i as u32;
            ev.gtid = gtid.clone();
            ev.txn_last = k == last;
            out.push(Output::Snapshot(Box::new(ev)));
        }
        let seq = seqs.last().copied().unwrap_or(0);
        if seq > 0 {
            st.fix_seq = Some(seq);
        }
        st.emitted.push_back(Emitted {
            id: c.id,
            seq,
            rows: emitted,
            dropped: total - emitted,
            lost: false,
        });
        self.shared.emitted.notify_one();
    }
}

// ---------------------------------------------------------------------------------------------
// Starting and stopping with the run loop.

/// A running snapshot driver.
pub struct Snapshots {
    hook: Hook,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Snapshots {
    /// The reader's side.
    pub fn hook(&self) -> Hook {
        self.hook.clone()
    }

    /// Stops the driver (a chunk in flight is read again by the next run).
    pub async fn stop(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Snapshots {
    /// A run loop dropped without `stop` (an aborted task) must not leave the driver writing
    /// watermarks nobody reads.
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

/// Starts the driver when `[snapshot]` is configured. `resumed_seq` is the `seq` of the
/// checkpoint the capture starts from (None for a new instance): progress it covers continues;
/// a new instance with `mode = "initial"` plans its tables (refusing tables without a key).
pub async fn start(
    cfg: &CaptureConfig,
    prep: &Prepared,
    resumed_seq: Option<i64>,
    cancel: &CancellationToken,
) -> Result<Option<Snapshots>, CaptureError> {
    let Some(snap) = cfg.snapshot.clone() else {
        return Ok(None);
    };
    let client = prep.client.clone();
    let filter =
        Filter::new(&cfg.filter).map_err(|e| CaptureError::Check(format!("filter: {e}")))?;
    let store = ProgressStore::new(&cfg.checkpoint.dir, &cfg.instance);
    let hook = Hook::new(cfg, &snap);
    let mut conn = session(&client).await?;
    if snap.watermarks == Watermarks::Table {
        for stmt in sql::create_signal_table(&hook.shared.signal.0, &hook.shared.signal.1) {
            conn.query_drop(stmt).await.map_err(|e| {
                CaptureError::Check(format!(
                    "cannot create the snapshot signalling table {} on {}: {e}; grant CREATE, SELECT, INSERT, DELETE on `{}`.* to the capture user, create the table yourself (docs/snapshots.md), or set snapshot.watermarks = \"position\" for a read-only user",
                    snap.signal_table, client.addr, hook.shared.signal.0
                ))
            })?;
        }
    }
    let mut jobs = store.reset_to(resumed_seq.unwrap_or(0))?;
    if snap.mode == Mode::Initial && resumed_seq.is_none() && jobs.is_empty() {
        jobs = initial_jobs(&mut conn, &client, &snap, &filter, &hook.shared.signal).await?;
        tracing::info!(tables = jobs.len(), "initial snapshot planned");
        store.save(0, &jobs)?;
    }
    let _ = conn.disconnect().await;
    for j in jobs.iter_mut().filter(|j| j.state == JobState::Running) {
        tracing::info!(table = %j.name(), rows = j.rows, "resuming the snapshot after the last acknowledged chunk");
    }
    let stop = cancel.child_token();
    let driver = Driver {
        hook: hook.clone(),
        client,
        filter,
        store,
        snap,
        jobs,
        run_id: format!("{:x}", now_ms()),
        chunk_no: 0,
        // Entries of this run come after the checkpoint it starts from.
        last_seq: resumed_seq.unwrap_or(0),
        cancel: stop.clone(),
    };
    let task = tokio::spawn(driver.run());
    Ok(Some(Snapshots { hook, stop, task }))
}

/// The jobs of an initial snapshot: `snapshot.tables`, or every base table the filter selects.
async fn initial_jobs(
    conn: &mut Conn,
    client: &SourceClient,
    snap: &SnapshotConfig,
    filter: &Filter,
    signal: &(String, String),
) -> Result<Vec<Job>, CaptureError> {
    let tables: Vec<(String, String)> = if snap.tables.is_empty() {
        let all: Vec<(String, String)> = conn
            .query("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ('mysql','information_schema','performance_schema','sys') ORDER BY TABLE_SCHEMA, TABLE_NAME")
            .await
            .map_err(|e| client.err(e))?;
        all.into_iter()
            .filter(|(d, t)| filter.table(d, t) && (d, t) != (&signal.0, &signal.1))
            .collect()
    } else {
        snap.tables.iter().filter_map(|t| split_table(t)).collect()
    };
    let mut problems = Vec::new();
    for (d, t) in &tables {
        if let Err(e) = table_meta(conn, client, d, t, filter).await {
            problems.push(e.to_string());
        }
    }
    if !problems.is_empty() {
        return Err(CaptureError::Check(format!(
            "snapshot.mode = \"initial\" cannot load every table:\n  {}\nlist the tables to load in snapshot.tables, or leave these out with filter.exclude",
            problems.join("\n  ")
        )));
    }
    Ok(tables
        .iter()
        .map(|(d, t)| Job::new("initial", d, t, None))
        .collect())
}

/// A connection for snapshot reads: UTC timestamps and utf8mb4 text, as the decoder renders.
async fn session(client: &SourceClient) -> Result<Conn, CaptureError> {
    let mut conn = client.connect().await?;
    conn.query_drop("SET time_zone = '+00:00', NAMES utf8mb4")
        .await
        .map_err(|e| client.err(e))?;
    Ok(conn)
}

/// What a chunk SELECT needs to know about a table.
#[derive(Debug, Clone)]
struct TableMeta {
    /// Columns in events, in table order, with how to read them.
    columns: Vec<(String, Kind)>,
    pk: Vec<String>,
    /// Position of each key column in the SELECT list.
    pk_index: Vec<usize>,
    /// The SELECT list: `columns`, then key columns the filter drops from events.
    select: Vec<String>,
    estimate: u64,
}

/// Columns, key and row estimate; a missing table, a table without a primary key, or one the
/// filter does not publish is a definite error with what to do.
async fn table_meta(
    conn: &mut Conn,
    client: &SourceClient,
    database: &str,
    table: &str,
    filter: &Filter,
) -> Result<TableMeta, CaptureError> {
    let cols: Vec<(String, String, Option<String>, Option<u64>)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, DATETIME_PRECISION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await
        .map_err(|e| client.err(e))?;
    if cols.is_empty() {
        return Err(CaptureError::Check(format!(
            "{database}.{table} does not exist on {} (or the capture user cannot see it); check the name and grant SELECT on it",
            client.addr
        )));
    }
    if !filter.table(database, table) {
        return Err(CaptureError::Check(format!(
            "{database}.{table} is not published by this capture's [filter]; a snapshot of it would go nowhere: add it to filter.include"
        )));
    }
    let pk: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await
        .map_err(|e| client.err(e))?;
    if pk.is_empty() {
        return Err(CaptureError::Check(format!(
            "{database}.{table} has no primary key; Sluice snapshots read by key ranges and refuse tables without one: add a primary key (ALTER TABLE {} ADD PRIMARY KEY (...)), or backfill its targets another way (docs/snapshots.md)",
            sql::qualified(database, table)
        )));
    }
    let has_longtext = cols.iter().any(|c| c.1.eq_ignore_ascii_case("longtext"));
    let json: HashSet<String> = if has_longtext {
        let checks: Vec<String> = conn
            .exec(
                "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
                (database, table),
            )
            .await
            .unwrap_or_default();
        checks
            .iter()
            .filter_map(|c| {
                let inner = c.trim().strip_prefix("json_valid(")?.strip_suffix(')')?;
                Some(inner.trim_matches('`').to_owned())
            })
            .collect()
    } else {
        HashSet::new()
    };
    let dropped = filter.dropped(database, table);
    let columns: Vec<(String, Kind)> = cols
        .iter()
        .filter(|c| dropped.is_none_or(|d| !d.contains(&c.0)))
        .map(|(name, data_type, charset, fsp)| {
            (
                name.clone(),
                Kind::of(data_type, charset.as_deref(), *fsp, json.contains(name)),
            )
        })
        .collect();
    let mut select: Vec<String> = columns.iter().map(|c| c.0.clone()).collect();
    let mut pk_index = Vec::with_capacity(pk.len());
    for k in &pk {
        match select.iter().position(|c| c == k) {
            Some(i) => pk_index.push(i),
            None => {
                select.push(k.clone());
                pk_index.push(select.len() - 1);
            }
        }
    }
    let estimate: Option<Option<u64>> = conn
        .exec_first(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (database, table),
        )
        .await
        .map_err(|e| client.err(e))?;
    Ok(TableMeta {
        columns,
        pk,
        pk_index,
        select,
        estimate: estimate.flatten().unwrap_or(0),
    })
}

// ---------------------------------------------------------------------------------------------
// The driver: one chunk at a time, one table after another.

struct Driver {
    hook: Hook,
    client: SourceClient,
    filter: Filter,
    store: ProgressStore,
    snap: SnapshotConfig,
    jobs: Vec<Job>,
    run_id: String,
    chunk_no: u64,
    /// The highest stream `seq` progress was saved at.
    last_seq: i64,
    cancel: CancellationToken,
}

/// How a job attempt ended.
enum Outcome {
    Done,
    Stopped,
    /// A chunk has to be read again (see [`Emitted::lost`]).
    Again,
}

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
    async fn run(mut self) {
        let mut backoff = Backoff::default();
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            self.take_requests();
            let Some(i) = self
                .jobs
                .iter()
                .position(|j| matches!(j.state, JobState::Pending | JobState::Running))
            else {
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    _ = self.hook.shared.wake.notified() => continue,
                    // Admin requests arrive without a wake-up.
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            };
            let outcome = self.run_job(i).await;
            self.hook.forget_chunks();
            match outcome {
                Ok(Outcome::Done) => backoff.reset(),
                Ok(Outcome::Stopped) => return,
                Ok(Outcome::Again) => {
                    tracing::warn!(table = %self.jobs[i].name(), "a chunk's high watermark came without its rows; reading again after the last emitted chunk");
                }
                Err(e) if e.is_transient() => {
                    let delay = backoff.next_delay();
                    tracing::warn!(table = %self.jobs[i].name(), error = %e, retry_in_ms = delay.as_millis() as u64, "snapshot interrupted; continuing after the last emitted chunk");
                    tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                Err(e) => {
                    tracing::error!(table = %self.jobs[i].name(), "snapshot refused: {e}");
                    metrics::counter!("sluice_capture_snapshot_failed_total", "table" => self.jobs[i].name()).increment(1);
                    let job = &mut self.jobs[i];
                    job.state = JobState::Failed;
                    job.error = Some(e.to_string());
                    job.updated_ms = now_ms();
                    self.save(0);
                }
            }
        }
    }

    /// Moves requests the reader saw into the job list (a request seen again after a restart
    /// is recognised by its id).
    fn take_requests(&mut self) {
        let mut requests = std::mem::take(&mut self.hook.lock().requests);
        let admin = std::mem::take(&mut *ADMIN.lock().unwrap_or_else(|p| p.into_inner()));
        requests.extend(admin.into_iter().map(|r| (self.last_seq, r)));
        for (seq, req) in requests {
            if self.jobs.iter().any(|j| j.request == req.id) {
                continue;
            }
            for t in &req.tables {
                let mut job = match split_table(t) {
                    Some((d, tb)) => Job::new(&req.id, &d, &tb, req.filter.clone()),
                    None => {
                        let mut j = Job::new(&req.id, t, "", None);
                        j.state = JobState::Failed;
                        j.error = Some(format!("`{t}` is not database.table"));
                        j
                    }
                };
                job.updated_ms = now_ms();
                tracing::info!(request = %req.id, table = %job.name(), filter = ?req.filter, "snapshot requested");
                self.jobs.push(job);
            }
            self.save(seq);
        }
    }

    fn save(&mut self, seq: i64) {
        self.last_seq = self.last_seq.max(seq);
        if let Err(e) = self.store.save(self.last_seq, &self.jobs) {
            tracing::warn!(error = %e, "cannot save snapshot progress; a restart repeats more chunks");
        }
    }

    async fn run_job(&mut self, i: usize) -> Result<Outcome, CaptureError> {
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
                .map(|((_, kind), v)| value::cell(*kind, v))
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

// ---------------------------------------------------------------------------------------------
// The CLI side: asking a running capture for a snapshot, and showing progress.

/// Inserts a snapshot request for `tables` into the signalling table, after checking that
/// each table can be snapshotted; returns the request id.
pub async fn request(
    cfg: &CaptureConfig,
    tables: &[String],
    filter: Option<&str>,
) -> Result<String, CaptureError> {
    let Some(snap) = &cfg.snapshot else {
        return Err(CaptureError::Check(
            "this config has no [snapshot] section, so the running capture ignores requests; add [snapshot] (docs/snapshots.md) and restart it".into(),
        ));
    };
    if snap.watermarks == Watermarks::Position {
        return Err(CaptureError::Check(
            "snapshot.watermarks = \"position\" (read-only user): there is no signalling table to write a request to; use snapshot.mode = \"initial\" with a new instance name, or a user with write access to the signalling table".into(),
        ));
    }
    let client = SourceClient::new(&cfg.source)?;
    let table_filter =
        Filter::new(&cfg.filter).map_err(|e| CaptureError::Check(format!("filter: {e}")))?;
    let mut conn = session(&client).await?;
    let mut problems = Vec::new();
    for t in tables {
        match split_table(t) {
            None => problems.push(format!("`{t}` is not database.table")),
            Some((d, tb)) => {
                if let Err(e) = table_meta(&mut conn, &client, &d, &tb, &table_filter).await {
                    problems.push(e.to_string());
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(CaptureError::Check(problems.join("\n")));
    }
    let (d, t) = split_table(&snap.signal_table).unwrap_or_default();
    let id = format!("req-{:x}", now_ms());
    let payload = serde_json::to_string(&Request {
        id: id.clone(),
        tables: tables.to_vec(),
        filter: filter.map(str::to_owned),
    })
    .map_err(|e| CaptureError::Check(format!("encoding the request: {e}")))?;
    conn.exec_drop(
        sql::insert_signal(&d, &t),
        (&cfg.instance, "snapshot", "", 0u64, payload),
    )
    .await
    .map_err(|e| {
        CaptureError::Check(format!(
            "cannot write the request into {} on {}: {e}; the table is created by a running capture with [snapshot]; grant INSERT on it",
            snap.signal_table, client.addr
        ))
    })?;
    let _ = conn.disconnect().await;
    Ok(id)
}

/// The jobs as last saved by the capture of this config (this machine's state dir).
pub fn status(cfg: &CaptureConfig) -> Result<Vec<Job>, CaptureError> {
    ProgressStore::new(&cfg.checkpoint.dir, &cfg.instance).latest()
}

/// `sluice-capture snapshot`: ask the running capture to backfill tables, or show progress.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// Tables to snapshot, `database.table`, comma-separated; none: show progress.
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// Only rows matching this SQL condition (e.g. "created_at >= '2026-01-01'").
    #[arg(long = "where")]
    pub filter: Option<String>,
    /// Print progress until the requested tables are done (needs this machine's state dir).
    #[arg(long)]
    pub wait: bool,
}

/// Runs `sluice-capture snapshot`: prints the request id, then progress lines with `--wait`.
pub async fn command(
    cfg: &CaptureConfig,
    args: &SnapshotArgs,
    cancel: CancellationToken,
) -> Result<(), CaptureError> {
    if args.tables.is_empty() {
        let jobs = status(cfg)?;
        if jobs.is_empty() {
            println!(
                "no snapshot recorded for instance {} in {}",
                cfg.instance,
                cfg.checkpoint.dir.display()
            );
        }
        for j in jobs {
            println!("{}", j.line());
        }
        return Ok(());
    }
    let id = request(cfg, &args.tables, args.filter.as_deref()).await?;
    println!(
        "snapshot {id} requested for {}; the running capture picks it up from the binlog",
        args.tables.join(", ")
    );
    if !args.wait {
        return Ok(());
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let jobs: Vec<Job> = status(cfg)?
            .into_iter()
            .filter(|j| j.request == id)
            .collect();
        if jobs.is_empty() {
            continue;
        }
        for j in &jobs {
            println!("{}", j.line());
        }
        if jobs
            .iter()
            .all(|j| matches!(j.state, JobState::Done | JobState::Failed))
        {
            let failed: Vec<String> = jobs
                .iter()
                .filter(|j| j.state == JobState::Failed)
                .map(|j| format!("{}: {}", j.name(), j.error.clone().unwrap_or_default()))
                .collect();
            return if failed.is_empty() {
                Ok(())
            } else {
                Err(CaptureError::Check(format!(
                    "snapshot {id} failed:\n  {}",
                    failed.join("\n  ")
                )))
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(rows: u64) -> Job {
        let mut j = Job::new("r", "d", "t", None);
        j.rows = rows;
        j
    }

    #[test]
    fn progress_never_runs_ahead_of_the_checkpoint() {
        let entries = vec![
            Entry {
                seq: 0,
                jobs: vec![job(0)],
            },
            Entry {
                seq: 100,
                jobs: vec![job(10)],
            },
            Entry {
                seq: 200,
                jobs: vec![job(20)],
            },
        ];
        // (checkpoint seq, rows of the picked entry)
        for (seq, want) in [
            (0, Some(0)),
            (99, Some(0)),
            (100, Some(10)),
            (250, Some(20)),
            (-1, None),
        ] {
            assert_eq!(
                pick(&entries, seq).map(|e| e.jobs[0].rows),
                want,
                "seq {seq}"
            );
        }
        let kept: Vec<i64> = prune(entries.clone(), 150).iter().map(|e| e.seq).collect();
        assert_eq!(kept, vec![100, 200]);
        let kept: Vec<i64> = prune(entries, -5).iter().map(|e| e.seq).collect();
        assert_eq!(kept, vec![0, 100, 200]);
    }

    #[test]
    fn progress_file_round_trip_gated_by_checkpoint() {
        let dir = std::env::temp_dir().join(format!("sluice-snap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = ProgressStore::new(&dir, "inst");
        assert!(store.confirmed(0).unwrap().is_empty());
        store.save(0, &[job(0)]).unwrap();
        store.save(500, &[job(5)]).unwrap();
        assert_eq!(store.confirmed(0).unwrap()[0].rows, 0);
        assert_eq!(store.confirmed(499).unwrap()[0].rows, 0);
        assert_eq!(store.confirmed(500).unwrap()[0].rows, 5);
        assert_eq!(store.latest().unwrap()[0].rows, 5);
        let _ = std::fs::remove_dir_all(&dir);
    }

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

    #[test]
    fn config_problems() {
        let snap = SnapshotConfig {
            mode: Mode::Initial,
            tables: vec!["nodot".into()],
            chunk_size: 0,
            watermarks: Watermarks::Table,
            signal_table: DEFAULT_SIGNAL_TABLE.into(),
            max_rows_per_sec: 0,
        };
        let filter = FilterConfig {
            include: vec!["^shop\\.".into()],
            ..FilterConfig::default()
        };
        let mut p = Problems::default();
        snap.validate(&filter, &mut p);
        let text = p.to_string();
        for want in [
            "snapshot.chunk_size",
            "snapshot.tables[0]",
            "snapshot.signal_table: the capture must read",
        ] {
            assert!(text.contains(want), "{want} missing in {text}");
        }
        let mut p = Problems::default();
        snap.validate(&FilterConfig::default(), &mut p);
        assert!(!p.to_string().contains("signal_table"), "{p}");
    }

    #[tokio::test]
    async fn admin_requests_are_checked_and_queued() {
        let (status, text) = admin("{\"tables\":[\"shop\"]}".into()).await;
        assert_eq!(status, axum::http::StatusCode::BAD_REQUEST);
        assert!(text.contains("`shop` is not database.table"), "{text}");
        let (status, text) = admin("tables=shop.orders".into()).await;
        assert_eq!(status, axum::http::StatusCode::BAD_REQUEST);
        assert!(text.contains("the body must be"), "{text}");
        let (status, text) =
            admin("{\"tables\":[\"shop.orders\"],\"where\":\"id > 5\"}".into()).await;
        assert_eq!(status, axum::http::StatusCode::ACCEPTED, "{text}");
        let queued = std::mem::take(&mut *ADMIN.lock().unwrap());
        assert_eq!(queued.len(), 1);
        assert!(text.contains(&queued[0].id));
        assert_eq!(queued[0].tables, vec!["shop.orders"]);
        assert_eq!(queued[0].filter.as_deref(), Some("id > 5"));
    }

    #[test]
    fn progress_line() {
        let mut j = job(50);
        j.state = JobState::Running;
        j.estimate = 100;
        j.started_ms = 0;
        j.updated_ms = 10_000;
        let line = j.line();
        assert!(line.contains("[##########..........]"), "{line}");
        assert!(
            line.contains(" 50.0%") && line.contains("5 rows/s") && line.contains("ETA 10s"),
            "{line}"
        );
    }
}
