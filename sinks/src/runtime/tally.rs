//! What the sink counts for its operators: per rule, events written, failures and the commit
//! time of the newest event written; per partition, how far behind its end it is; from these,
//! the lag in seconds per rule and for the whole member (docs/operations.md).

use super::Tp;
use serde_json::{json, Value};
use sluice_ops::{Frame, Reading};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Shared by the workers (which count) and the monitor (which reads once a second).
pub struct Tally {
    rules: Vec<RuleTally>,
    partitions: Mutex<BTreeMap<Tp, Partition>>,
}

#[derive(Default)]
struct RuleTally {
    events: AtomicU64,
    failures: AtomicU64,
    /// Wall clock (Unix ms) of the last event written.
    last_event_ms: AtomicI64,
    /// Source commit time (`ts_ms`) of the newest event written; 0 before any.
    written_ts_ms: AtomicI64,
}

/// One assigned partition's position.
#[derive(Debug, Clone, Default)]
struct Partition {
    /// The high watermark minus the next offset to commit.
    behind: i64,
    lag_seconds: f64,
    /// When it was last seen with nothing behind (Unix ms); `None` if never.
    caught_up_at: Option<i64>,
}

/// A partition's position as the dispatcher reads it once a second.
pub struct Position {
    pub tp: Tp,
    /// The next offset to commit (every earlier message is done); -1 before any.
    pub done: i64,
    /// The source commit time of the newest message done; 0 before any.
    pub done_ts_ms: i64,
    /// The partition's high watermark as the consumer last heard it; -1 if unknown.
    pub high: i64,
}

impl Tally {
    /// Counters for `rules` rules.
    pub fn new(rules: usize) -> Tally {
        Tally {
            rules: (0..rules).map(|_| RuleTally::default()).collect(),
            partitions: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Tp, Partition>> {
        self.partitions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `n` events of `rule` were written; the newest was committed at the source at `ts_ms`.
    pub fn written(&self, rule: usize, n: u64, ts_ms: i64, now_ms: i64) {
        if let Some(r) = self.rules.get(rule) {
            r.events.fetch_add(n, Ordering::Relaxed);
            r.last_event_ms.store(now_ms, Ordering::Relaxed);
            r.written_ts_ms.fetch_max(ts_ms, Ordering::Relaxed);
        }
    }

    /// `n` events of `rule` could not be written (dead-lettered or stopping the sink).
    pub fn failed(&self, rule: usize, n: u64) {
        if let Some(r) = self.rules.get(rule) {
            r.failures.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Takes the assigned partitions' positions at `now_ms`: a partition with nothing behind
    /// has no lag; one behind trails by the time since its newest event done, counted at most
    /// from when it was last caught up (a quiet partition that receives a message is not an
    /// hour late because its previous message is an hour old). Returns each partition's lag.
    pub fn positions(&self, positions: Vec<Position>, now_ms: i64) -> Vec<(Tp, i64, f64)> {
        let mut parts = self.lock();
        parts.retain(|tp, _| positions.iter().any(|p| p.tp == *tp));
        positions
            .into_iter()
            .map(|p| {
                let part = parts.entry(p.tp.clone()).or_default();
                part.behind = if p.high >= 0 && p.done >= 0 {
                    (p.high - p.done).max(0)
                } else {
                    0
                };
                part.lag_seconds = if part.behind == 0 {
                    part.caught_up_at = Some(now_ms);
                    0.0
                } else {
                    let from = p.done_ts_ms.max(part.caught_up_at.unwrap_or(0));
                    if from > 0 {
                        ((now_ms - from).max(0) / 1000) as f64
                    } else {
                        0.0
                    }
                };
                (p.tp, part.behind, part.lag_seconds)
            })
            .collect()
    }

    /// The member's lag: its most lagging partition's.
    pub fn lag_seconds(&self) -> f64 {
        self.lock()
            .values()
            .map(|p| p.lag_seconds)
            .fold(0.0, f64::max)
    }

    /// One reading per rule at `now_ms`. A rule trails by the time since the commit of its
    /// newest event written, but never by more than the member (whose partitions carry every
    /// rule's events), and not at all when nothing is behind.
    pub fn frame(&self, names: &[(String, String)], now_ms: i64) -> Frame {
        let member = self.lag_seconds();
        let subjects = self
            .rules
            .iter()
            .zip(names)
            .map(|(r, (rule, _target))| {
                let written = r.written_ts_ms.load(Ordering::Relaxed);
                let lag = if member == 0.0 {
                    0.0
                } else if written == 0 {
                    member
                } else {
                    (((now_ms - written).max(0) / 1000) as f64).min(member)
                };
                let last = r.last_event_ms.load(Ordering::Relaxed);
                Reading {
                    subject: rule.clone(),
                    lag_seconds: lag,
                    events_total: r.events.load(Ordering::Relaxed),
                    errors_total: r.failures.load(Ordering::Relaxed),
                    last_event_ms: (last > 0).then_some(last),
                }
            })
            .collect();
        Frame {
            at_ms: now_ms,
            lag_seconds: member,
            subjects,
        }
    }

    /// The assignment for the status page: per topic, each partition's messages behind and lag.
    pub fn assignment(&self) -> Value {
        let mut topics: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        let parts = self.lock();
        for ((topic, partition), p) in parts.iter() {
            topics.entry(topic).or_default().push(json!({
                "partition": partition, "behind": p.behind, "lag_seconds": p.lag_seconds,
            }));
        }
        json!(topics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(done: i64, ts: i64, high: i64) -> Vec<Position> {
        vec![Position {
            tp: ("t".into(), 0),
            done,
            done_ts_ms: ts,
            high,
        }]
    }

    fn names() -> Vec<(String, String)> {
        vec![("busy".into(), "es".into()), ("quiet".into(), "es".into())]
    }

    #[test]
    fn a_caught_up_member_has_no_lag_whatever_its_rules_last_saw() {
        let t = Tally::new(2);
        t.written(0, 10, 1_000, 1_500);
        t.positions(pos(10, 1_000, 10), 100_000);
        let f = t.frame(&names(), 100_000);
        assert_eq!(f.lag_seconds, 0.0);
        assert!(f.subjects.iter().all(|r| r.lag_seconds == 0.0));
        assert_eq!(f.subjects[0].events_total, 10);
        assert_eq!(f.subjects[1].last_event_ms, None);
    }

    #[test]
    fn behind_the_lag_counts_from_the_newest_event_done() {
        let t = Tally::new(2);
        t.written(0, 10, 50_000, 51_000);
        // Never caught up: a backlog from the start.
        let lags = t.positions(pos(10, 50_000, 500), 80_000);
        assert_eq!(lags[0].1, 490);
        assert_eq!(lags[0].2, 30.0);
        let f = t.frame(&names(), 80_000);
        assert_eq!(f.lag_seconds, 30.0);
        assert_eq!(f.subjects[0].lag_seconds, 30.0);
        // A rule with nothing written trails by the member's lag.
        assert_eq!(f.subjects[1].lag_seconds, 30.0);
    }

    #[test]
    fn a_quiet_partition_that_receives_a_message_is_late_only_since_it_was_caught_up() {
        let t = Tally::new(2);
        t.positions(pos(10, 1_000, 10), 3_600_000);
        let lags = t.positions(pos(10, 1_000, 11), 3_602_000);
        assert_eq!(lags[0].2, 2.0);
    }

    #[test]
    fn a_rule_whose_own_events_are_recent_trails_by_less_than_the_member() {
        let t = Tally::new(2);
        t.written(0, 1, 70_000, 75_000);
        t.positions(pos(10, 40_000, 20), 80_000);
        let f = t.frame(&names(), 80_000);
        assert_eq!(f.lag_seconds, 40.0);
        assert_eq!(f.subjects[0].lag_seconds, 10.0);
    }

    #[test]
    fn failures_are_counted_per_rule() {
        let t = Tally::new(2);
        t.failed(1, 3);
        assert_eq!(t.frame(&names(), 0).subjects[1].errors_total, 3);
    }
}
