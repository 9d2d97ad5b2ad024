//! The times every task records (each write's commit and each probe's sighting of it) on one clock.

use crate::plan::Plan;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Per write, a time in nanoseconds since `base` plus one (0: not yet), set once.
pub struct Marks(Vec<AtomicU64>);

impl Marks {
    pub fn new(total: u64) -> Marks {
        Marks((0..=total).map(|_| AtomicU64::new(0)).collect())
    }

    /// Sets write `w`'s time unless it has one; true if it was set now.
    pub fn set_once(&self, w: u64, nanos: u64) -> bool {
        self.0.get(w as usize).is_some_and(|m| {
            m.compare_exchange(0, nanos + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        })
    }

    pub fn get(&self, w: u64) -> Option<u64> {
        match self.0.get(w as usize)?.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n - 1),
        }
    }

    pub fn all_set(&self, range: std::ops::RangeInclusive<u64>) -> bool {
        range.into_iter().all(|w| self.get(w).is_some())
    }

    /// The first write from `from` on (up to `to`) without a time; `to + 1` when all have one.
    pub fn first_unset(&self, from: u64, to: u64) -> u64 {
        (from..=to)
            .find(|w| self.get(*w).is_none())
            .unwrap_or(to + 1)
    }
}

/// What every task shares: the clock, the plan, the commit times and each probe's times.
pub struct Shared {
    pub base: Instant,
    pub plan: Plan,
    pub commits: Marks,
    pub probes: [Marks; 4],
    pub stop: AtomicBool,
}

impl Shared {
    pub fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}
