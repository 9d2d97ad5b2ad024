//! What a binary measures of itself once a second: its lag and, per subject (a table in the
//! capture, a rule in the sink), lag, events and failures so far.

use serde::Serialize;

/// One subject's figures at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    /// `database.table` in the capture, the rule's name in the sink; `other` past the cap.
    pub subject: String,
    /// Seconds by which what this subject has delivered trails the source (0 when caught up).
    pub lag_seconds: f64,
    /// Events of the subject since the process started.
    pub events_total: u64,
    /// Failures of the subject since the process started (dead letters, failed writes).
    pub errors_total: u64,
    /// When (Unix ms, wall clock) the subject's last event was seen; `None` before the first.
    pub last_event_ms: Option<i64>,
}

/// Every subject's reading at `at_ms`, with the whole process's lag.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Frame {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The process's lag in seconds (the capture's instance, the sink's assignment).
    pub lag_seconds: f64,
    pub subjects: Vec<Reading>,
}

/// Names subjects with a cap: the first `cap` distinct names are kept, later ones become
/// [`OTHER`], so a source with thousands of tables cannot grow the metrics without bound.
#[derive(Debug)]
pub struct Subjects {
    cap: usize,
    known: std::collections::HashSet<String>,
}

/// The subject that stands for every name past the cap.
pub const OTHER: &str = "other";

/// Default cap on distinct subjects (`metrics.max_subjects`).
pub const DEFAULT_MAX_SUBJECTS: usize = 1000;

impl Subjects {
    /// Keeps at most `cap` names.
    pub fn new(cap: usize) -> Subjects {
        Subjects {
            cap,
            known: Default::default(),
        }
    }

    /// `name` while fewer than `cap` names are known or it is one of them, else [`OTHER`].
    pub fn name<'a>(&mut self, name: &'a str) -> &'a str {
        if self.known.contains(name) {
            return name;
        }
        if self.known.len() < self.cap {
            self.known.insert(name.to_owned());
            return name;
        }
        OTHER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_past_the_cap_become_other() {
        let mut s = Subjects::new(2);
        assert_eq!(s.name("a.x"), "a.x");
        assert_eq!(s.name("a.y"), "a.y");
        assert_eq!(s.name("a.z"), OTHER);
        assert_eq!(s.name("a.x"), "a.x", "a known name stays");
    }
}
