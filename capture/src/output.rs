//! What the binlog reader hands the publisher, in binlog order: rows, DDL events, commit markers.

mod binlog_row;
mod snapshot_row;

pub use binlog_row::{RowEvent, Table};
pub use snapshot_row::{SnapTable, SnapshotRow};

use crate::checkpoint::Checkpoint;
use sluice_event::ChangeEvent;

/// What the decoder and the snapshot hook hand to the publisher, in binlog order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// DDL statements and snapshot rows.
    Event(Box<ChangeEvent>),
    /// A binlog row change, its row values already JSON: the rest of the event is written where
    /// it is published ([`RowEvent::write_json`]), once `txn_last` is known.
    Row(Box<RowEvent>),
    /// A snapshot row, as cells, written as event JSON where it is published.
    Snapshot(Box<SnapshotRow>),
    /// Every event before this one completes a transaction; once all are acknowledged, the
    /// checkpoint may be saved.
    Commit(Checkpoint),
}

impl Output {
    /// The event as a [`ChangeEvent`] (rows converted), `None` for a commit marker.
    pub fn into_change_event(self) -> Option<ChangeEvent> {
        match self {
            Output::Event(ev) => Some(*ev),
            Output::Row(r) => Some(r.to_change_event()),
            Output::Snapshot(r) => Some(r.to_change_event()),
            Output::Commit(_) => None,
        }
    }
}
