//! The alert state machine: each frame of readings moves every alert between quiet, pending and
//! firing, and yields the notices to send. Time is the frame's, so tests drive the clock.

use super::config::{AlertConfig, AlertKind, DEFAULT_ERRORS_WINDOW_SECONDS};
use super::hours::Schedule;
use crate::readings::Frame;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Whether a notice tells of an alert starting (or still) firing, or of its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeStatus {
    Firing,
    Resolved,
}

/// One message to the log and the webhooks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    pub status: NoticeStatus,
    /// The alert's name.
    pub alert: String,
    pub kind: &'static str,
    /// The table or rule (or, for `no_traffic`, the pattern) it is about.
    pub subject: String,
    /// The lag in seconds, the failures in the window, or the seconds without traffic.
    pub value: f64,
    /// The configured threshold in the same unit.
    pub threshold: f64,
    /// When the condition began to hold (Unix ms).
    pub since_ms: i64,
    /// When this notice was made (Unix ms).
    pub at_ms: i64,
    /// One line for people.
    pub summary: String,
    /// The webhooks to tell; empty means all.
    #[serde(skip)]
    pub webhooks: Vec<String>,
}

/// An alert that is pending or firing, as `GET /alerts` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Active {
    pub alert: String,
    pub kind: &'static str,
    pub subject: String,
    /// `pending` (the condition holds, not yet for `for_seconds`) or `firing`.
    pub state: &'static str,
    /// Firing outside the alert's hours: not told until they begin.
    pub muted: bool,
    pub value: f64,
    pub threshold: f64,
    pub since_ms: i64,
    pub firing_since_ms: Option<i64>,
    /// When a firing notice was last sent.
    pub notified_ms: Option<i64>,
    pub summary: String,
}

/// Every configured alert and the state of each (alert, subject) pair.
pub struct Engine {
    alerts: Vec<Compiled>,
    /// What a subject is called in summaries: "table" or "rule".
    noun: &'static str,
    states: BTreeMap<(usize, String), State>,
    /// The first frame's time: a pattern that never had traffic has been silent since then.
    started_ms: Option<i64>,
}

struct Compiled {
    cfg: AlertConfig,
    glob: globset::GlobMatcher,
    hours: Option<Schedule>,
    /// `errors`: per subject, (frame time, failures so far) over the window.
    samples: HashMap<String, VecDeque<(i64, u64)>>,
}

struct State {
    since_ms: i64,
    value: f64,
    firing_since_ms: Option<i64>,
    notified_ms: Option<i64>,
}

impl Engine {
    /// Compiles validated alerts; an alert whose pattern or hours do not parse (validation
    /// refuses those) matches nothing or is always in hours.
    pub fn new(alerts: &[AlertConfig], noun: &'static str) -> Engine {
        let alerts = alerts
            .iter()
            .map(|cfg| Compiled {
                glob: globset::Glob::new(&cfg.pattern)
                    .unwrap_or_else(|_| globset::Glob::new("").expect("the empty glob"))
                    .compile_matcher(),
                hours: cfg.hours.as_ref().and_then(|h| h.schedule().ok()),
                samples: HashMap::new(),
                cfg: cfg.clone(),
            })
            .collect();
        Engine {
            alerts,
            noun,
            states: BTreeMap::new(),
            started_ms: None,
        }
    }

    /// Moves every alert on to `frame`; returns the notices due.
    pub fn evaluate(&mut self, frame: &Frame) -> Vec<Notice> {
        let started = *self.started_ms.get_or_insert(frame.at_ms);
        let mut notices = Vec::new();
        for i in 0..self.alerts.len() {
            let held = self.conditions(i, frame, started);
            let (alert, states) = (&self.alerts[i], &mut self.states);
            let threshold = threshold(&alert.cfg);
            for (subject, value) in &held {
                let s = states.entry((i, subject.clone())).or_insert(State {
                    since_ms: frame.at_ms,
                    value: *value,
                    firing_since_ms: None,
                    notified_ms: None,
                });
                s.value = *value;
                if s.firing_since_ms.is_none()
                    && frame.at_ms - s.since_ms >= alert.cfg.for_seconds as i64 * 1000
                {
                    s.firing_since_ms = Some(frame.at_ms);
                }
                let in_hours = alert.hours.as_ref().is_none_or(|h| h.contains(frame.at_ms));
                let repeat_ms = alert.cfg.repeat_seconds as i64 * 1000;
                let due = match s.notified_ms {
                    None => true,
                    Some(t) => repeat_ms > 0 && frame.at_ms - t >= repeat_ms,
                };
                if s.firing_since_ms.is_some() && in_hours && due {
                    s.notified_ms = Some(frame.at_ms);
                    notices.push(Notice {
                        status: NoticeStatus::Firing,
                        alert: alert.cfg.name.clone(),
                        kind: alert.cfg.kind.as_str(),
                        subject: subject.clone(),
                        value: *value,
                        threshold,
                        since_ms: s.since_ms,
                        at_ms: frame.at_ms,
                        summary: summary(&alert.cfg, self.noun, subject, *value, false),
                        webhooks: alert.cfg.webhooks.clone(),
                    });
                }
            }
            // Pairs whose condition no longer holds (or whose subject is gone) end here.
            let ended: Vec<String> = states
                .range((i, String::new())..(i + 1, String::new()))
                .map(|((_, subject), _)| subject.clone())
                .filter(|subject| !held.iter().any(|(s, _)| s == subject))
                .collect();
            for subject in ended {
                let Some(s) = states.remove(&(i, subject.clone())) else {
                    continue;
                };
                if s.notified_ms.is_some() && alert.cfg.send_resolved {
                    let value = alert.current(frame, started, &subject).unwrap_or(0.0);
                    notices.push(Notice {
                        status: NoticeStatus::Resolved,
                        alert: alert.cfg.name.clone(),
                        kind: alert.cfg.kind.as_str(),
                        subject: subject.clone(),
                        value,
                        threshold,
                        since_ms: s.since_ms,
                        at_ms: frame.at_ms,
                        summary: summary(&alert.cfg, self.noun, &subject, value, true),
                        webhooks: alert.cfg.webhooks.clone(),
                    });
                }
            }
        }
        notices
    }

    /// The pending and firing alerts at `at_ms`.
    pub fn active(&self, at_ms: i64) -> Vec<Active> {
        self.states
            .iter()
            .map(|((i, subject), s)| {
                let alert = &self.alerts[*i];
                let firing = s.firing_since_ms.is_some();
                Active {
                    alert: alert.cfg.name.clone(),
                    kind: alert.cfg.kind.as_str(),
                    subject: subject.clone(),
                    state: if firing { "firing" } else { "pending" },
                    muted: firing && alert.hours.as_ref().is_some_and(|h| !h.contains(at_ms)),
                    value: s.value,
                    threshold: threshold(&alert.cfg),
                    since_ms: s.since_ms,
                    firing_since_ms: s.firing_since_ms,
                    notified_ms: s.notified_ms,
                    summary: summary(&alert.cfg, self.noun, subject, s.value, false),
                }
            })
            .collect()
    }

    /// The (subject, value) pairs for which alert `i`'s condition holds in `frame`.
    fn conditions(&mut self, i: usize, frame: &Frame, started: i64) -> Vec<(String, f64)> {
        let alert = &mut self.alerts[i];
        let matching = frame
            .subjects
            .iter()
            .filter(|r| alert.glob.is_match(&r.subject));
        match alert.cfg.kind {
            AlertKind::Lag => {
                let t = alert.cfg.threshold_seconds.unwrap_or(f64::INFINITY);
                matching
                    .filter(|r| r.lag_seconds > t)
                    .map(|r| (r.subject.clone(), r.lag_seconds))
                    .collect()
            }
            AlertKind::NoTraffic => {
                let silent = silent_seconds(matching, frame.at_ms, started);
                let window = alert.cfg.window_seconds.unwrap_or(u64::MAX) as f64;
                if silent >= window {
                    vec![(alert.cfg.pattern.clone(), silent)]
                } else {
                    Vec::new()
                }
            }
            AlertKind::Errors => {
                let window_ms = alert
                    .cfg
                    .window_seconds
                    .unwrap_or(DEFAULT_ERRORS_WINDOW_SECONDS)
                    as i64
                    * 1000;
                let limit = alert.cfg.threshold.unwrap_or(u64::MAX);
                let mut held = Vec::new();
                for r in matching {
                    let q = alert.samples.entry(r.subject.clone()).or_default();
                    q.push_back((frame.at_ms, r.errors_total));
                    // Keep one sample at or before the window's start as the baseline.
                    while q.len() > 1 && q[1].0 <= frame.at_ms - window_ms {
                        q.pop_front();
                    }
                    let failures = r.errors_total.saturating_sub(q[0].1);
                    if failures > limit {
                        held.push((r.subject.clone(), failures as f64));
                    }
                }
                held
            }
        }
    }
}

impl Compiled {
    /// The value this alert measures for `subject` in `frame`, for a resolved notice.
    fn current(&self, frame: &Frame, started: i64, subject: &str) -> Option<f64> {
        let alert = self;
        match alert.cfg.kind {
            AlertKind::NoTraffic => Some(silent_seconds(
                frame
                    .subjects
                    .iter()
                    .filter(|r| alert.glob.is_match(&r.subject)),
                frame.at_ms,
                started,
            )),
            AlertKind::Lag => frame
                .subjects
                .iter()
                .find(|r| r.subject == subject)
                .map(|r| r.lag_seconds),
            AlertKind::Errors => alert
                .samples
                .get(subject)
                .and_then(|q| Some(q.back()?.1.saturating_sub(q.front()?.1) as f64)),
        }
    }
}

/// Seconds since the newest event of `readings`, or since `started` when none had any.
fn silent_seconds<'a>(
    readings: impl Iterator<Item = &'a crate::readings::Reading>,
    at_ms: i64,
    started: i64,
) -> f64 {
    let newest = readings
        .filter_map(|r| r.last_event_ms)
        .max()
        .unwrap_or(started);
    ((at_ms - newest).max(0) / 1000) as f64
}

fn threshold(cfg: &AlertConfig) -> f64 {
    match cfg.kind {
        AlertKind::Lag => cfg.threshold_seconds.unwrap_or(0.0),
        AlertKind::NoTraffic => cfg.window_seconds.unwrap_or(0) as f64,
        AlertKind::Errors => cfg.threshold.unwrap_or(0) as f64,
    }
}

fn summary(cfg: &AlertConfig, noun: &str, subject: &str, value: f64, resolved: bool) -> String {
    let what = match cfg.kind {
        AlertKind::Lag => format!(
            "{noun} {subject} is {value:.0} s behind (above {} s for {} s)",
            threshold(cfg),
            cfg.for_seconds
        ),
        AlertKind::NoTraffic => format!(
            "no event from {subject} for {value:.0} s (window {} s)",
            threshold(cfg)
        ),
        AlertKind::Errors => format!(
            "{noun} {subject} had {value:.0} failures in {} s (above {})",
            cfg.window_seconds.unwrap_or(DEFAULT_ERRORS_WINDOW_SECONDS),
            threshold(cfg)
        ),
    };
    let what = if resolved {
        match cfg.kind {
            AlertKind::Lag => format!("{noun} {subject} is back to {value:.0} s behind"),
            AlertKind::NoTraffic => format!("events from {subject} again"),
            AlertKind::Errors => format!("{noun} {subject} is below its failure threshold"),
        }
    } else {
        what
    };
    let status = if resolved { "RESOLVED" } else { "FIRING" };
    format!("[{status}] {}: {what}", cfg.name)
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
