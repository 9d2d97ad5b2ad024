//! The binlog reader's side of a snapshot: signal rows, chunk windows, rows at high watermarks.

use super::request::Request;
use super::window::Window;
use crate::binlog::mariadb::code;
use crate::clock::now_ms;
use crate::config::snapshot::{split_table, SnapshotConfig, Watermarks};
use crate::config::CaptureConfig;
use crate::decoder::Decoder;
use crate::output::{Output, SnapshotRow};
use sluice_event::{ChangeEvent, EventType, Position};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// A chunk's rows as events (the window compares their Kafka keys).
pub(super) type ChunkRows = Vec<SnapshotRow>;

/// The chunk being read: its window, and its rows once the SELECT returned.
pub(super) struct Pending {
    pub(super) id: String,
    pub(super) window: Window,
    pub(super) rows: Option<ChunkRows>,
    /// Position mode: the window ends once the reader passed this binlog position (read
    /// after the SELECT); it starts when the driver posts the chunk, before the SELECT.
    pub(super) to: Option<(String, u64)>,
}

/// What the reader did with a chunk.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Emitted {
    pub(super) id: String,
    /// `seq` of the chunk's last position; a checkpoint at or past it covers the chunk.
    pub(super) seq: i64,
    pub(super) rows: u64,
    pub(super) dropped: u64,
    /// Its high watermark came without its rows (cannot happen while the driver posts rows
    /// before writing the watermark); the driver reads the chunk again.
    pub(super) lost: bool,
}

#[derive(Default)]
pub(super) struct State {
    /// Chunks posted by the driver, oldest first; their windows follow each other in the
    /// binlog because one connection writes their watermarks in order.
    pub(super) chunks: VecDeque<Pending>,
    /// Chunks the reader put into the stream, for the driver to account.
    pub(super) emitted: VecDeque<Emitted>,
    pub(super) requests: Vec<(i64, Request)>,
    /// The next checkpoint must carry at least this `seq` (snapshot rows came after it).
    fix_seq: Option<i64>,
}

pub(super) struct Shared {
    pub(super) instance: String,
    pub(super) signal: (String, String),
    pub(super) watermarks: Watermarks,
    state: Mutex<State>,
    /// Requests arrived.
    pub(super) wake: Notify,
    /// A chunk was emitted.
    pub(super) emitted: Notify,
}

/// The binlog reader's side of the snapshot (cheap to clone).
#[derive(Clone)]
pub struct Hook {
    pub(super) shared: Arc<Shared>,
}

impl Hook {
    pub(super) fn new(cfg: &CaptureConfig, snap: &SnapshotConfig) -> Hook {
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
    pub(super) fn forget_chunks(&self) {
        let mut st = self.lock();
        st.chunks.clear();
        st.emitted.clear();
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
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
