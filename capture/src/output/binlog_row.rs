//! A row change read from the binlog, its values already JSON, and the mapped table it belongs to.

use crate::binlog::TableMap;
use sluice_event::{ChangeEvent, EventHead, EventType, Row, Source};
use std::sync::Arc;

/// One row change read from the binlog: the event's fields, and its row values written as JSON
/// straight from the binlog bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RowEvent {
    pub seq: i64,
    pub kind: EventType,
    pub ts_ms: i64,
    pub capture_ms: i64,
    pub instance: Arc<str>,
    /// The mapped table, its dropped columns and names.
    pub table: Arc<Table>,
    pub file: Arc<str>,
    pub offset: u64,
    pub row: u32,
    pub gtid: Option<Arc<str>>,
    pub xid: Option<u64>,
    pub txn_last: bool,
    /// The `data` object (the columns the row image has, less the dropped ones), then for
    /// UPDATE the `old` object (those whose stored value changed), then the values of the
    /// key's columns, each after a comma (`null` where the row leaves one out).
    pub(crate) rendered: Vec<u8>,
    pub(crate) data_end: usize,
    pub(crate) old_end: usize,
}

impl RowEvent {
    pub fn database(&self) -> &str {
        &self.table.map.database
    }

    pub fn table_name(&self) -> &str {
        &self.table.map.table
    }

    /// `database.table`, as in the `sluice-table` header.
    pub fn qualified_table(&self) -> &str {
        &self.table.qualified
    }

    fn head(&self) -> EventHead<'_> {
        EventHead {
            seq: self.seq,
            source: Source::Binlog,
            instance: &self.instance,
            database: &self.table.map.database,
            table: &self.table.map.table,
            kind: self.kind,
            ts_ms: self.ts_ms,
            capture_ms: self.capture_ms,
            file: &self.file,
            offset: self.offset,
            row: self.row,
            gtid: self.gtid.as_deref(),
            xid: self.xid,
            txn_last: self.txn_last,
            pk: &self.table.map.pk_names,
            sql: None,
        }
    }

    /// The `data` object as JSON.
    pub fn data_json(&self) -> &[u8] {
        &self.rendered[..self.data_end]
    }

    /// UPDATE: the `old` object as JSON.
    pub fn old_json(&self) -> Option<&[u8]> {
        (self.old_end > self.data_end).then(|| &self.rendered[self.data_end..self.old_end])
    }

    /// Appends the event's value bytes: the same JSON as [`ChangeEvent::encode`] of
    /// [`RowEvent::to_change_event`].
    pub fn write_json(&self, out: &mut Vec<u8>) {
        sluice_event::write_json_rendered(out, &self.head(), self.data_json(), self.old_json());
    }

    /// Appends the Kafka key (a key column left out of the row is `null`).
    pub fn write_key(&self, out: &mut Vec<u8>) {
        sluice_event::write_key_rendered(
            out,
            &self.table.map.database,
            &self.table.map.table,
            &self.rendered[self.old_end..],
        );
    }

    /// The Kafka key as a new buffer.
    pub fn key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(32);
        self.write_key(&mut k);
        k
    }

    /// The same event as a [`ChangeEvent`] (tests, tools, snapshot signal rows).
    pub fn to_change_event(&self) -> ChangeEvent {
        let row = |json: &[u8]| -> Row {
            serde_json::from_slice(json).unwrap_or_else(|e| {
                // Cannot happen: the capture wrote these bytes as JSON that serde_json reads.
                tracing::error!(
                    table = %self.table.qualified,
                    error = %e,
                    "a row written by the capture is not JSON; its values are left out"
                );
                Row::new()
            })
        };
        self.head()
            .to_change_event(row(self.data_json()), self.old_json().map(row))
    }
}

/// A mapped table with its filter decisions made once.
#[derive(Debug, PartialEq)]
pub struct Table {
    pub map: TableMap,
    pub(crate) publish: bool,
    /// Per column: left out of events.
    pub(crate) dropped: Vec<bool>,
    /// Per column: masked before it is written; empty when no column is.
    pub(crate) masks: Vec<Option<sluice_rules::Masking>>,
    /// Per column: its name as JSON with the colon, written in front of every value.
    pub(crate) keys: Vec<Box<[u8]>>,
    /// `database.table`.
    pub(crate) qualified: String,
}
