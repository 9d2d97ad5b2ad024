//! A snapshot row on its way to Kafka: the chunk's values as [`Cell`]s and a shared table.
//!
//! The table description is shared by the chunk; the publisher writes the row as event JSON the
//! way a binlog row is ([`sluice_event::write_json`]), without a `serde_json` map per row. Its
//! bytes are those of the same row read from the binlog (JSON text kept compact, not parsed and
//! printed again).

use sluice_event::{write_json, write_key, Cell, ChangeEvent, EventHead, EventType, Row, Source};
use std::sync::Arc;

/// What every row of a snapshotted table shares.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapTable {
    pub instance: Arc<str>,
    pub database: String,
    pub table: String,
    /// `database.table`, as in the `sluice-table` header.
    pub qualified: String,
    /// The event's columns, in table order; a row's cells follow it.
    pub columns: Vec<String>,
    pub pk: Vec<String>,
    /// For each key column, its place in `columns` (`None`: the filter drops it from events,
    /// and the key carries `null` there, as [`ChangeEvent::key`] does).
    pub pk_cells: Vec<Option<usize>>,
}

impl SnapTable {
    pub fn new(
        instance: Arc<str>,
        database: &str,
        table: &str,
        columns: Vec<String>,
        pk: Vec<String>,
    ) -> SnapTable {
        let pk_cells = pk
            .iter()
            .map(|k| columns.iter().position(|c| c == k))
            .collect();
        SnapTable {
            instance,
            database: database.to_owned(),
            table: table.to_owned(),
            qualified: format!("{database}.{table}"),
            columns,
            pk,
            pk_cells,
        }
    }
}

/// One snapshot `INSERT`; `seq`, `ts_ms` and the position are set at the chunk's high watermark.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRow {
    pub table: Arc<SnapTable>,
    pub cells: Vec<Cell>,
    pub seq: i64,
    pub ts_ms: i64,
    pub capture_ms: i64,
    pub file: Arc<str>,
    pub offset: u64,
    pub row: u32,
    pub gtid: Option<Arc<str>>,
    pub txn_last: bool,
}

impl SnapshotRow {
    pub fn database(&self) -> &str {
        &self.table.database
    }

    pub fn table_name(&self) -> &str {
        &self.table.table
    }

    pub fn qualified_table(&self) -> &str {
        &self.table.qualified
    }

    fn head(&self) -> EventHead<'_> {
        EventHead {
            seq: self.seq,
            source: Source::Snapshot,
            instance: &self.table.instance,
            database: &self.table.database,
            table: &self.table.table,
            kind: EventType::Insert,
            ts_ms: self.ts_ms,
            capture_ms: self.capture_ms,
            file: &self.file,
            offset: self.offset,
            row: self.row,
            gtid: self.gtid.as_deref(),
            xid: None,
            txn_last: self.txn_last,
            pk: &self.table.pk,
            sql: None,
        }
    }

    fn data(&self) -> impl Iterator<Item = (&str, &Cell)> {
        self.table
            .columns
            .iter()
            .map(String::as_str)
            .zip(self.cells.iter())
    }

    /// Appends the event's JSON (the Kafka value).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        write_json(out, &self.head(), self.data(), None::<Vec<(&str, &Cell)>>);
    }

    /// Appends the Kafka key.
    pub fn write_key(&self, out: &mut Vec<u8>) {
        write_key(
            out,
            &self.table.database,
            &self.table.table,
            self.table
                .pk_cells
                .iter()
                .map(|i| i.and_then(|i| self.cells.get(i))),
        );
    }

    /// The Kafka key, as the snapshot window compares it with binlog rows' keys.
    pub fn key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(32);
        self.write_key(&mut k);
        k
    }

    /// The same event as a [`ChangeEvent`] (tests and `collect`).
    pub fn to_change_event(&self) -> ChangeEvent {
        let mut data = Row::with_capacity(self.cells.len());
        for (name, cell) in self.data() {
            data.insert(name.to_owned(), cell.to_json());
        }
        self.head().to_change_event(data, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_key_are_those_of_the_change_event() {
        let table = Arc::new(SnapTable::new(
            Arc::from("inst"),
            "shop",
            "orders",
            vec!["id".into(), "note".into(), "items".into()],
            vec!["id".into(), "gone".into()],
        ));
        let row = SnapshotRow {
            table,
            cells: vec![
                Cell::UInt(7),
                Cell::Text("a \"quoted\" é".into()),
                Cell::JsonText(r#"{"sku":"A-1","qty":[1,2.5]}"#.into()),
            ],
            seq: 42,
            ts_ms: 1_700_000_000_000,
            capture_ms: 1_700_000_000_005,
            file: Arc::from("binlog.000003"),
            offset: 1234,
            row: 5,
            gtid: Some(Arc::from("0-1-9")),
            txn_last: true,
        };
        let ev = row.to_change_event();
        let mut json = Vec::new();
        row.write_json(&mut json);
        assert_eq!(json, ev.encode());
        assert_eq!(row.key(), ev.key());
        // A key column the filter drops is null in the key, as ChangeEvent::key has it.
        assert_eq!(
            String::from_utf8(row.key()).unwrap(),
            r#"["shop","orders",7,null]"#
        );
    }
}
