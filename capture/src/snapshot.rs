//! Snapshots and backfills: chunked, lock-free reads of a table by primary-key range.
//!
//! The chunks are merged into the live binlog stream with the DBLog watermark method, so every
//! snapshot row gets its `seq` from the stream's own generator at the point where it is correct
//! (docs/snapshots.md).
//!
//! Two halves share one [`Hook`]: the *driver* task reads chunks (low watermark, SELECT, high
//! watermark) on its own connection; the binlog reader calls [`Hook::observe`] after every
//! decoded event, which remembers keys changed between the watermarks and, at the high
//! watermark, puts the surviving chunk rows into the stream as `source = "snapshot"` INSERTs.
//! Progress is saved next to the checkpoint and gated by its `seq`, so a restarted capture
//! continues after the last chunk Kafka acknowledged.
//!
//! Where things are: `hook` (the reader's side), `driver` (the task; `driver/chunk` reads one
//! table), `table` (what a table's SELECT needs), `sql`, `window` and `value` (chunk rows as
//! events; the row type is `crate::output::SnapshotRow`), `job` and `progress` (what is done, on
//! disk), `request` (asking for a snapshot: signalling table, admin endpoint) and `command`
//! (`sluice-capture snapshot`); the `[snapshot]` config is in `crate::config::snapshot`.

mod command;
mod driver;
mod hook;
mod job;
mod progress;
mod request;
pub mod sql;
mod table;
pub mod value;
pub mod window;

pub use command::{command, status, SnapshotArgs};
pub use driver::{start, Snapshots};
pub use hook::Hook;
pub use job::{Job, JobState};
pub use progress::ProgressStore;
pub use request::{admin, request, Request};
