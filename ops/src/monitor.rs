//! The monitor each binary runs: once a second it takes a [`Frame`] of readings, keeps the hour
//! of history, moves the alerts on and sends their notices; it answers the status page and
//! `/alerts` from what it holds.

use crate::alerts::{Active, AlertConfig, Engine, Notifier, Source, WebhookConfig};
use crate::history::History;
use crate::readings::Frame;
use crate::recent::Recent;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Subjects whose history the status page charts (the latest, then the busiest).
pub const CHARTED: usize = 8;

/// The readings, history and alerts of one process.
pub struct Monitor {
    notifier: Notifier,
    recent: Arc<Recent>,
    started_ms: i64,
    inner: Mutex<Inner>,
}

struct Inner {
    engine: Engine,
    history: History,
    last: Frame,
    /// What the process reads and where it is, set by the binary.
    info: Value,
}

impl Monitor {
    /// A monitor for `alerts`, telling `webhooks`; `noun` names a subject in summaries
    /// ("table", "rule"); `recent` is the ring the log's warnings go to.
    pub fn new(
        alerts: &[AlertConfig],
        webhooks: &[WebhookConfig],
        source: Source,
        noun: &'static str,
        recent: Arc<Recent>,
        cancel: CancellationToken,
    ) -> Arc<Monitor> {
        Arc::new(Monitor {
            notifier: Notifier::start(webhooks, source, cancel),
            recent,
            started_ms: now_ms(),
            inner: Mutex::new(Inner {
                engine: Engine::new(alerts, noun),
                history: History::default(),
                last: Frame::default(),
                info: Value::Null,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes in one frame: history, alerts, notices.
    pub fn observe(&self, frame: Frame) {
        let notices = {
            let mut inner = self.lock();
            let notices = inner.engine.evaluate(&frame);
            inner.history.record(&frame);
            inner.last = frame;
            notices
        };
        for n in notices {
            self.notifier.send(n);
        }
    }

    /// Replaces what the status page shows of the process itself (source, position, topics,
    /// assignment: whatever the binary has to say, as JSON).
    pub fn set_info(&self, info: Value) {
        self.lock().info = info;
    }

    /// Calls `probe` every second with the time (Unix ms) and observes the frame it returns
    /// (and the process's info for the page), until `cancel`.
    pub fn spawn(
        self: &Arc<Self>,
        mut probe: impl FnMut(i64) -> (Frame, Value) + Send + 'static,
        cancel: CancellationToken,
    ) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => {
                        let (frame, info) = probe(now_ms());
                        me.set_info(info);
                        me.observe(frame);
                    }
                }
            }
        });
    }

    /// The pending and firing alerts.
    pub fn active(&self) -> Vec<Active> {
        let inner = self.lock();
        inner.engine.active(inner.last.at_ms.max(now_ms()))
    }

    /// `GET /alerts`.
    pub fn alerts_json(&self) -> Value {
        let active = self.active();
        json!({
            "firing": active.iter().filter(|a| a.state == "firing").collect::<Vec<_>>(),
            "pending": active.iter().filter(|a| a.state == "pending").collect::<Vec<_>>(),
        })
    }

    /// `GET /status.json`: everything the status page shows.
    pub fn status_json(&self) -> Value {
        let alerts = self.active();
        let inner = self.lock();
        let now = now_ms();
        let frame = &inner.last;
        let subjects: Vec<Value> = frame
            .subjects
            .iter()
            .map(|r| {
                let rate = inner
                    .history
                    .subjects
                    .get(&r.subject)
                    .map_or(0.0, |s| s.current_rate());
                json!({
                    "subject": r.subject,
                    "lag_seconds": r.lag_seconds,
                    "events_total": r.events_total,
                    "errors_total": r.errors_total,
                    "events_per_second": rate,
                    "idle_seconds": r.last_event_ms.map(|t| (frame.at_ms - t).max(0) / 1000),
                })
            })
            .collect();
        let mut charted: Vec<&crate::readings::Reading> = frame.subjects.iter().collect();
        charted.sort_by(|a, b| {
            b.lag_seconds
                .total_cmp(&a.lag_seconds)
                .then(b.events_total.cmp(&a.events_total))
        });
        let history: serde_json::Map<String, Value> = charted
            .iter()
            .take(CHARTED)
            .filter_map(|r| {
                let s = inner.history.subjects.get(&r.subject)?;
                Some((r.subject.clone(), json!(s)))
            })
            .collect();
        let source = self.notifier.source();
        json!({
            "binary": source.binary,
            "name": source.name,
            "version": env!("CARGO_PKG_VERSION"),
            "started_ms": self.started_ms,
            "now_ms": now,
            "at_ms": frame.at_ms,
            "lag_seconds": frame.lag_seconds,
            "info": inner.info,
            "subjects": subjects,
            "history": { "overall": inner.history.overall, "subjects": history },
            "alerts": alerts,
            "errors": self.recent.lines(),
        })
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Unix milliseconds as RFC 3339 in UTC with milliseconds (`2026-12-07T09:00:00.000Z`).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
