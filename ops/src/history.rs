//! The last hour in memory: one point every ten seconds of each subject's lag (the highest of
//! the step, so a short spike shows) and event rate, bounded (360 points per subject, subjects
//! capped upstream), for the status page's charts.

use crate::readings::Frame;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// Milliseconds between points.
pub const STEP_MS: i64 = 10_000;
/// Points kept per series: one hour.
pub const POINTS: usize = 360;

/// A series of points, stored by column as the page draws them.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Series {
    /// Unix ms of each point.
    pub t: VecDeque<i64>,
    /// Lag in seconds.
    pub lag: VecDeque<f64>,
    /// Events per second since the previous point.
    pub rate: VecDeque<f64>,
    #[serde(skip)]
    last: Option<(i64, u64)>,
}

impl Series {
    /// Raises the newest point's lag to `lag` (a frame within the point's step).
    fn raise(&mut self, lag: f64) {
        if let Some(l) = self.lag.back_mut() {
            *l = l.max(lag);
        }
    }

    fn push(&mut self, at_ms: i64, lag: f64, events_total: u64) {
        let rate = match self.last {
            Some((t, n)) if at_ms > t => {
                events_total.saturating_sub(n) as f64 * 1000.0 / (at_ms - t) as f64
            }
            _ => 0.0,
        };
        self.last = Some((at_ms, events_total));
        if self.t.len() == POINTS {
            self.t.pop_front();
            self.lag.pop_front();
            self.rate.pop_front();
        }
        self.t.push_back(at_ms);
        self.lag.push_back(lag);
        self.rate.push_back(rate);
    }

    /// The newest event rate.
    pub fn current_rate(&self) -> f64 {
        self.rate.back().copied().unwrap_or(0.0)
    }
}

/// The whole process's series and one per subject.
#[derive(Debug, Default)]
pub struct History {
    pub overall: Series,
    pub subjects: BTreeMap<String, Series>,
    step: Option<i64>,
}

impl History {
    /// Takes a point from `frame` when it starts a new ten-second step; within a step, keeps
    /// the highest lag in the step's point.
    pub fn record(&mut self, frame: &Frame) {
        let step = frame.at_ms.div_euclid(STEP_MS);
        if self.step.is_some_and(|s| s >= step) {
            self.overall.raise(frame.lag_seconds);
            for r in &frame.subjects {
                if let Some(s) = self.subjects.get_mut(&r.subject) {
                    s.raise(r.lag_seconds);
                }
            }
            return;
        }
        self.step = Some(step);
        let total = frame.subjects.iter().map(|r| r.events_total).sum();
        self.overall.push(frame.at_ms, frame.lag_seconds, total);
        for r in &frame.subjects {
            self.subjects.entry(r.subject.clone()).or_default().push(
                frame.at_ms,
                r.lag_seconds,
                r.events_total,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readings::Reading;

    fn frame(at_ms: i64, events: u64, lag: f64) -> Frame {
        Frame {
            at_ms,
            lag_seconds: lag,
            subjects: vec![Reading {
                subject: "a.b".into(),
                lag_seconds: lag,
                events_total: events,
                errors_total: 0,
                last_event_ms: None,
            }],
        }
    }

    #[test]
    fn one_point_per_step_with_the_rate_since_the_last() {
        let mut h = History::default();
        h.record(&frame(0, 0, 0.0));
        h.record(&frame(5_000, 50, 7.0)); // same step: only its lag counts
        h.record(&frame(10_000, 100, 2.0));
        let s = &h.subjects["a.b"];
        assert_eq!(s.t, [0, 10_000]);
        assert_eq!(s.rate, [0.0, 10.0]);
        assert_eq!(s.lag, [7.0, 2.0], "the step's highest lag");
        assert_eq!(h.overall.current_rate(), 10.0);
    }

    #[test]
    fn an_hour_is_kept_and_no_more() {
        let mut h = History::default();
        for i in 0..(POINTS as i64 + 40) {
            h.record(&frame(i * STEP_MS, i as u64, 0.0));
        }
        assert_eq!(h.overall.t.len(), POINTS);
        assert_eq!(h.overall.t.front(), Some(&(40 * STEP_MS)));
    }
}
