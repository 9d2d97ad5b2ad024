//! The last warnings and errors of the log, kept for the status page: a tracing layer that
//! copies each WARN and ERROR event into a bounded ring.

use serde::Serialize;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Lines kept.
pub const KEPT: usize = 50;

/// One warning or error.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub at_ms: i64,
    pub level: &'static str,
    pub target: String,
    pub message: String,
}

/// The ring of recent warnings and errors.
#[derive(Debug, Default)]
pub struct Recent {
    lines: Mutex<VecDeque<Line>>,
}

impl Recent {
    /// A new, empty ring.
    pub fn new() -> Arc<Recent> {
        Arc::default()
    }

    /// The layer to add to the tracing subscriber.
    pub fn layer(self: &Arc<Self>) -> RecentLayer {
        RecentLayer(self.clone())
    }

    /// The lines, oldest first.
    pub fn lines(&self) -> Vec<Line> {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn push(&self, line: Line) {
        let mut l = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if l.len() == KEPT {
            l.pop_front();
        }
        l.push_back(line);
    }
}

/// Copies WARN and ERROR events into a [`Recent`].
pub struct RecentLayer(Arc<Recent>);

impl<S: Subscriber> Layer<S> for RecentLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        self.0.push(Line {
            at_ms: chrono::Utc::now().timestamp_millis(),
            level: if level == Level::ERROR {
                "error"
            } else {
                "warn"
            },
            target: event.metadata().target().to_owned(),
            message: text.0,
        });
    }
}

/// The message, then ` key=value` for each other field.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn warnings_and_errors_are_kept_and_info_is_not() {
        let recent = Recent::new();
        let subscriber = tracing_subscriber::registry().with(recent.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("fine");
            tracing::warn!(table = "shop.orders", "slow write");
            for i in 0..KEPT {
                tracing::error!("failure {i}");
            }
        });
        let lines = recent.lines();
        assert_eq!(lines.len(), KEPT);
        assert_eq!(lines[0].message, "failure 0");
        assert_eq!(lines[KEPT - 1].level, "error");
        let recent = Recent::new();
        let subscriber = tracing_subscriber::registry().with(recent.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(table = "shop.orders", "slow write");
        });
        assert_eq!(recent.lines()[0].message, "slow write table=shop.orders");
    }
}
