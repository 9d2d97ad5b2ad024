//! What Sluice's two binaries tell the people who run them, beyond `/metrics`: per-subject
//! readings (tables in the capture, rules in the sink), the last hour of them in memory,
//! built-in alerts (lag, no traffic, errors) with alert hours sent to the log and to webhooks,
//! and the status page. Each binary measures; this crate keeps, judges and shows.

pub mod alerts;
pub mod history;
pub mod monitor;
pub mod page;
pub mod readings;
pub mod recent;

pub use monitor::{now_ms, rfc3339, Monitor};
pub use readings::{Frame, Reading, Subjects, DEFAULT_MAX_SUBJECTS, OTHER};
pub use recent::Recent;
