//! Batches of events encoded as Kafka messages on the reader's thread, and their reuse.

use crate::checkpoint::Checkpoint;
use crate::output::Output;
use sluice_event::EventType;
use std::sync::{Arc, Mutex, MutexGuard};

/// Events encoded as Kafka messages on the thread that decoded them, handed to the publisher
/// in one piece: keys and values back to back in one buffer, checkpoints in between. The
/// decoded rows are freed on the thread that allocated them, and the publisher only hands
/// bytes to librdkafka (decoded rows freed on the publisher's thread, and encoded there,
/// made it the capture's busiest thread).
#[derive(Default)]
pub struct Encoded {
    pub(super) bytes: Vec<u8>,
    pub(super) items: Vec<Item>,
    /// Items that are messages.
    pub(super) messages: usize,
    /// The tables of the messages, one entry per change of table.
    pub(super) tables: Vec<Names>,
}

pub(super) enum Item {
    /// A message: its key ends at `key_end` in `bytes`, its value at `value_end`.
    Message {
        key_end: usize,
        value_end: usize,
        seq: i64,
        kind: EventType,
        table: usize,
        /// The source commit time, for the lag of what Kafka has not acknowledged yet.
        ts_ms: i64,
    },
    /// Every message before this one completes a transaction.
    Commit(Checkpoint),
}

pub(super) struct Names {
    pub(super) database: String,
    pub(super) table: String,
    /// `database.table`, for the header.
    pub(super) qualified: String,
}

/// Emptied batches on their way back to the reader, which fills them again instead of
/// allocating a new buffer for every batch and growing it by copying.
#[derive(Clone, Default)]
pub struct Spares(Arc<Mutex<Vec<Encoded>>>);

/// Spares kept at most (the channel to the publisher holds 4 batches).
const SPARES: usize = 4;
/// A batch whose buffer grew beyond this (a huge row) is freed, not kept.
const SPARE_MAX_BYTES: usize = 4 << 20;

impl Spares {
    fn lock(&self) -> MutexGuard<'_, Vec<Encoded>> {
        // A panic while holding the lock leaves a plain list of empty batches.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An empty batch: a spare, or a new one with room for `outputs` outputs of `bytes` bytes
    /// in all (growing a new batch by copying cost the reader fresh pages of memory, which the
    /// kernel clears, slowly on these VMs).
    pub fn take(&self, outputs: usize, bytes: usize) -> Encoded {
        self.lock().pop().unwrap_or_else(|| Encoded {
            bytes: Vec::with_capacity(bytes),
            items: Vec::with_capacity(outputs + outputs / 8),
            ..Encoded::default()
        })
    }

    /// Keeps `batch` for reuse, emptied.
    pub(super) fn put(&self, mut batch: Encoded) {
        if batch.bytes.capacity() > SPARE_MAX_BYTES {
            return;
        }
        batch.bytes.clear();
        batch.items.clear();
        batch.tables.clear();
        batch.messages = 0;
        let mut spares = self.lock();
        if spares.len() < SPARES {
            spares.push(batch);
        }
    }
}

impl Encoded {
    /// Encodes one output (and drops it here).
    pub fn push(&mut self, out: Output) {
        let bytes = &mut self.bytes;
        let key_end;
        let (seq, kind, database, table, ts_ms) = match &out {
            Output::Commit(cp) => {
                self.items.push(Item::Commit(cp.clone()));
                return;
            }
            Output::Row(r) => {
                r.write_key(bytes);
                key_end = bytes.len();
                r.write_json(bytes);
                (r.seq, r.kind, r.database(), r.table_name(), r.ts_ms)
            }
            Output::Snapshot(r) => {
                r.write_key(bytes);
                key_end = bytes.len();
                r.write_json(bytes);
                (
                    r.seq,
                    EventType::Insert,
                    r.database(),
                    r.table_name(),
                    r.ts_ms,
                )
            }
            Output::Event(ev) => {
                bytes.extend_from_slice(&ev.key());
                key_end = bytes.len();
                ev.encode_into(bytes);
                (
                    ev.seq,
                    ev.kind,
                    ev.database.as_str(),
                    ev.table.as_str(),
                    ev.ts_ms,
                )
            }
        };
        let same = self
            .tables
            .last()
            .is_some_and(|n| n.database == database && n.table == table);
        if !same {
            self.tables.push(Names {
                database: database.to_owned(),
                table: table.to_owned(),
                qualified: format!("{database}.{table}"),
            });
        }
        self.messages += 1;
        self.items.push(Item::Message {
            key_end,
            value_end: self.bytes.len(),
            seq,
            kind,
            table: self.tables.len() - 1,
            ts_ms,
        });
    }
}
