//! What the capture counts for its operators: the reader's position and lag, per table the
//! events published and the commit times of those Kafka has not acknowledged yet, from which the
//! monitor takes its readings once a second (docs/operations.md).

use metrics::Counter;
use serde_json::{json, Value};
use sluice_event::EventType;
use sluice_ops::{Frame, Reading, Subjects, OTHER};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Shared by the reader (position), the publisher (events sent) and the monitor (readings).
pub struct Tally {
    instance: String,
    /// Source commit time (ms) of the last event read.
    read_ts_ms: AtomicI64,
    /// The reader waits at the end of the binlog.
    idle: AtomicBool,
    file_index: AtomicI64,
    position: AtomicI64,
    /// Kafka errors and reconnects so far.
    errors: AtomicU64,
    /// When the last checkpoint was saved (Unix ms); 0 before the first.
    checkpoint_ms: AtomicI64,
    published_bytes: Counter,
    tables: Mutex<Tables>,
}

struct Tables {
    names: Subjects,
    by_name: HashMap<(String, String), Table>,
    /// Every message numbered below this is acknowledged (the publisher's acknowledgement watermark).
    acked_below: u64,
}

struct Table {
    /// Capped labels: the table's own or `other`.
    database: String,
    table: String,
    events: u64,
    /// Wall clock (ms) of the last event published.
    last_event_ms: i64,
    /// Runs of events not yet acknowledged: (number of the run's last message, commit time of
    /// its first event), oldest first.
    pending: VecDeque<(u64, i64)>,
    counters: [Option<Counter>; 4],
}

impl Tally {
    /// Counts for `instance`, with at most `max_tables` tables named in metrics.
    pub fn new(instance: &str, max_tables: usize) -> Tally {
        Tally {
            instance: instance.to_owned(),
            read_ts_ms: AtomicI64::new(0),
            idle: AtomicBool::new(false),
            file_index: AtomicI64::new(0),
            position: AtomicI64::new(0),
            errors: AtomicU64::new(0),
            checkpoint_ms: AtomicI64::new(0),
            published_bytes: metrics::counter!("sluice_capture_published_bytes_total"),
            tables: Mutex::new(Tables {
                names: Subjects::new(max_tables),
                by_name: HashMap::new(),
                acked_below: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The reader read an event committed at `ts_ms` that ends at `position` of its file.
    pub fn read(&self, ts_ms: i64, position: u64) {
        self.read_ts_ms.store(ts_ms, Ordering::Relaxed);
        self.idle.store(false, Ordering::Relaxed);
        self.position.store(position as i64, Ordering::Relaxed);
    }

    /// The reader moved to binlog file `file` (`mysql-bin.000042`).
    pub fn file(&self, file: &str) {
        let index = file
            .rsplit('.')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        self.file_index.store(index, Ordering::Relaxed);
    }

    /// A checkpoint was saved at `now_ms`.
    pub fn checkpoint_saved(&self, now_ms: i64) {
        self.checkpoint_ms.store(now_ms, Ordering::Relaxed);
    }

    /// The reader has read everything the server sent and waits.
    pub fn caught_up(&self) {
        self.idle.store(true, Ordering::Relaxed);
    }

    /// One Kafka error or reconnect.
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A new publisher numbers its messages from 0: what an earlier one left unacknowledged
    /// is forgotten.
    pub fn restart_numbering(&self) {
        let mut t = self.lock();
        t.acked_below = 0;
        for table in t.by_name.values_mut() {
            table.pending.clear();
        }
    }

    /// `n` events of `database.table` of type `kind` were handed to Kafka as messages
    /// `last + 1 - n ..= last`, the first committed at `first_ts_ms`, with `bytes` bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn sent(
        &self,
        database: &str,
        table: &str,
        kind: EventType,
        n: u64,
        last: u64,
        first_ts_ms: i64,
        bytes: u64,
        now_ms: i64,
    ) {
        self.published_bytes.increment(bytes);
        let mut t = self.lock();
        let t = &mut *t;
        let key = (database.to_owned(), table.to_owned());
        if !t.by_name.contains_key(&key) {
            let named = t.names.name(&format!("{database}.{table}")) != OTHER;
            let labels = if named {
                key.clone()
            } else {
                (OTHER.to_owned(), OTHER.to_owned())
            };
            t.by_name.insert(
                key.clone(),
                Table {
                    database: labels.0,
                    table: labels.1,
                    events: 0,
                    last_event_ms: 0,
                    pending: VecDeque::new(),
                    counters: Default::default(),
                },
            );
        }
        let Some(entry) = t.by_name.get_mut(&key) else {
            return;
        };
        entry.events += n;
        entry.last_event_ms = now_ms;
        match entry.pending.back_mut() {
            // Binlog times are whole seconds: runs of one second share an entry.
            Some((l, ts)) if *ts == first_ts_ms => *l = (*l).max(last),
            _ => entry.pending.push_back((last, first_ts_ms)),
        }
        let i = match kind {
            EventType::Insert => 0,
            EventType::Update => 1,
            EventType::Delete => 2,
            _ => 3,
        };
        let (db, tb) = (entry.database.clone(), entry.table.clone());
        entry.counters[i]
            .get_or_insert_with(|| {
                metrics::counter!("sluice_capture_events_total",
                    "database" => db, "table" => tb, "type" => kind.as_str())
            })
            .increment(n);
    }

    /// Every message numbered below `low` is acknowledged.
    pub fn acknowledged(&self, low: u64) {
        let mut t = self.lock();
        t.acked_below = t.acked_below.max(low);
    }

    /// The readings at `now_ms`, one per table (merged under `other` past the cap) and one for
    /// the instance itself, and sets the per-table and instance gauges.
    pub fn frame(&self, now_ms: i64) -> Frame {
        let read_lag = if self.idle.load(Ordering::Relaxed) {
            0.0
        } else {
            seconds(now_ms, self.read_ts_ms.load(Ordering::Relaxed))
        };
        let mut t = self.lock();
        let low = t.acked_below;
        let mut merged: HashMap<(String, String), Reading> = HashMap::new();
        let mut oldest_pending: Option<i64> = None;
        let mut events = 0;
        let mut last_event: Option<i64> = None;
        for table in t.by_name.values_mut() {
            while table.pending.front().is_some_and(|(l, _)| *l < low) {
                table.pending.pop_front();
            }
            let pending = table.pending.front().map(|(_, ts)| *ts);
            if let Some(ts) = pending {
                oldest_pending = Some(oldest_pending.map_or(ts, |o: i64| o.min(ts)));
            }
            let lag = pending.map_or(0.0, |ts| seconds(now_ms, ts));
            events += table.events;
            let last = (table.last_event_ms > 0).then_some(table.last_event_ms);
            last_event = last_event.max(last);
            let r = merged
                .entry((table.database.clone(), table.table.clone()))
                .or_insert_with(|| Reading {
                    subject: if table.database == OTHER {
                        OTHER.to_owned()
                    } else {
                        format!("{}.{}", table.database, table.table)
                    },
                    lag_seconds: 0.0,
                    events_total: 0,
                    errors_total: 0,
                    last_event_ms: None,
                });
            r.lag_seconds = r.lag_seconds.max(lag);
            r.events_total += table.events;
            r.last_event_ms = r.last_event_ms.max(last);
        }
        drop(t);
        let acked_lag = oldest_pending.map_or(read_lag, |ts| seconds(now_ms, ts).max(read_lag));
        metrics::gauge!("sluice_capture_lag_seconds", "stage" => "read").set(read_lag);
        metrics::gauge!("sluice_capture_lag_seconds", "stage" => "acked").set(acked_lag);
        metrics::gauge!("sluice_capture_binlog_file_index")
            .set(self.file_index.load(Ordering::Relaxed) as f64);
        metrics::gauge!("sluice_capture_binlog_position_bytes")
            .set(self.position.load(Ordering::Relaxed) as f64);
        let saved = self.checkpoint_ms.load(Ordering::Relaxed);
        if saved > 0 {
            metrics::gauge!("sluice_capture_checkpoint_age_seconds").set(seconds(now_ms, saved));
        }
        let mut subjects: Vec<Reading> = Vec::with_capacity(merged.len() + 1);
        for ((database, table), r) in merged {
            metrics::gauge!("sluice_capture_table_lag_seconds",
                "database" => database.clone(), "table" => table.clone())
            .set(r.lag_seconds);
            if let Some(last) = r.last_event_ms {
                metrics::gauge!("sluice_capture_table_idle_seconds",
                    "database" => database, "table" => table)
                .set(seconds(now_ms, last));
            }
            subjects.push(r);
        }
        subjects.sort_by(|a, b| a.subject.cmp(&b.subject));
        subjects.push(Reading {
            subject: self.instance.clone(),
            lag_seconds: acked_lag,
            events_total: events,
            errors_total: self.errors.load(Ordering::Relaxed),
            last_event_ms: last_event,
        });
        Frame {
            at_ms: now_ms,
            lag_seconds: acked_lag,
            subjects,
        }
    }

    /// The binlog position for the status page.
    pub fn position(&self) -> Value {
        json!({
            "file index": self.file_index.load(Ordering::Relaxed),
            "position": self.position.load(Ordering::Relaxed),
            "caught up": self.idle.load(Ordering::Relaxed),
            "checkpoint saved": match self.checkpoint_ms.load(Ordering::Relaxed) {
                0 => Value::Null,
                ms => json!(sluice_ops::rfc3339(ms)),
            },
        })
    }
}

static TALLY: std::sync::OnceLock<Tally> = std::sync::OnceLock::new();

/// Sets up the process's tally for `instance` (call once, before the capture runs; later calls
/// keep the first).
pub fn install(instance: &str, max_tables: usize) -> &'static Tally {
    TALLY.get_or_init(|| Tally::new(instance, max_tables))
}

/// The process's tally (one with default settings if [`install`] was not called, as in tests
/// that run the capture in-process).
pub fn get() -> &'static Tally {
    TALLY.get_or_init(|| Tally::new("capture", sluice_ops::DEFAULT_MAX_SUBJECTS))
}

/// Whole seconds from `from_ms` to `now_ms`, 0 if `from_ms` is unset or later.
fn seconds(now_ms: i64, from_ms: i64) -> f64 {
    if from_ms <= 0 {
        return 0.0;
    }
    ((now_ms - from_ms).max(0) / 1000) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_634_000_000;

    fn reading<'a>(f: &'a Frame, subject: &str) -> &'a Reading {
        f.subjects
            .iter()
            .find(|r| r.subject == subject)
            .unwrap_or_else(|| panic!("no reading of {subject} in {f:?}"))
    }

    #[test]
    fn a_table_is_late_by_its_oldest_unacknowledged_event_and_not_when_all_are_acknowledged() {
        let t = Tally::new("main", 10);
        t.read(NOW - 1_000, 4096);
        t.sent(
            "shop",
            "orders",
            EventType::Insert,
            3,
            2,
            NOW - 30_000,
            300,
            NOW - 29_000,
        );
        t.sent(
            "shop",
            "orders",
            EventType::Update,
            1,
            3,
            NOW - 5_000,
            100,
            NOW - 4_000,
        );
        t.sent(
            "shop",
            "users",
            EventType::Insert,
            1,
            4,
            NOW - 2_000,
            100,
            NOW - 1_000,
        );
        let f = t.frame(NOW);
        assert_eq!(reading(&f, "shop.orders").lag_seconds, 30.0);
        assert_eq!(reading(&f, "shop.orders").events_total, 4);
        assert_eq!(reading(&f, "shop.users").lag_seconds, 2.0);
        assert_eq!(
            f.lag_seconds, 30.0,
            "the instance: its oldest unacknowledged event"
        );
        assert_eq!(reading(&f, "main").events_total, 5);
        // Messages 0..=2 acknowledged: orders trails by its update only.
        t.acknowledged(3);
        assert_eq!(reading(&t.frame(NOW), "shop.orders").lag_seconds, 5.0);
        // Everything acknowledged and the reader at the end: nothing is late.
        t.acknowledged(5);
        t.caught_up();
        let f = t.frame(NOW);
        assert!(f.subjects.iter().all(|r| r.lag_seconds == 0.0), "{f:?}");
        assert_eq!(reading(&f, "shop.users").last_event_ms, Some(NOW - 1_000));
    }

    #[test]
    fn the_read_lag_counts_while_the_reader_is_behind() {
        let t = Tally::new("main", 10);
        t.read(NOW - 12_000, 4);
        t.file("mysql-bin.000007");
        let f = t.frame(NOW);
        assert_eq!(f.lag_seconds, 12.0);
        assert_eq!(reading(&f, "main").lag_seconds, 12.0);
        assert_eq!(t.position()["file index"], 7);
    }

    #[test]
    fn tables_past_the_cap_are_counted_as_other() {
        let t = Tally::new("main", 2);
        for (i, table) in ["a", "b", "c", "d"].iter().enumerate() {
            t.sent("db", table, EventType::Insert, 1, i as u64, NOW, 10, NOW);
        }
        let f = t.frame(NOW);
        let names: Vec<&str> = f.subjects.iter().map(|r| r.subject.as_str()).collect();
        assert_eq!(names, ["db.a", "db.b", "other", "main"]);
        assert_eq!(reading(&f, "other").events_total, 2);
    }

    #[test]
    fn a_new_publisher_forgets_what_the_old_one_left_unacknowledged() {
        let t = Tally::new("main", 10);
        t.sent("db", "t", EventType::Insert, 1, 100, NOW - 60_000, 10, NOW);
        t.restart_numbering();
        t.caught_up();
        assert_eq!(t.frame(NOW).lag_seconds, 0.0);
    }
}
