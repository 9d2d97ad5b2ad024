//! Built-in alerts: `lag`, `no_traffic` and `errors` conditions over the readings, with alert
//! hours, repeats and resolved notices, delivered to the log and to webhooks.

mod config;
mod engine;
mod hours;
mod notify;

pub use config::{
    validate, AlertConfig, AlertKind, WebhookConfig, WebhookFormat, DEFAULT_ERRORS_WINDOW_SECONDS,
    DEFAULT_REPEAT_SECONDS, DEFAULT_WEBHOOK_ATTEMPTS, DEFAULT_WEBHOOK_BACKOFF_MS,
    DEFAULT_WEBHOOK_TIMEOUT_MS,
};
pub use engine::{Active, Engine, Notice, NoticeStatus};
pub use hours::{AlertHours, Schedule};
pub use notify::{body, Notifier, Source};
