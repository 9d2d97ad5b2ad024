//! WRITE/UPDATE/DELETE_ROWS events (v1 as MariaDB writes them, v2 as MySQL does), row by row.

use super::cursor::{bit, Cursor, Malformed};
use super::table_map::TableMap;
use super::value::read_cell;
use sluice_event::Cell;

/// Binlog event type codes of rows events.
pub mod code {
    pub const WRITE_V1: u8 = 23;
    pub const UPDATE_V1: u8 = 24;
    pub const DELETE_V1: u8 = 25;
    pub const WRITE_V2: u8 = 30;
    pub const UPDATE_V2: u8 = 31;
    pub const DELETE_V2: u8 = 32;
    pub const PARTIAL_UPDATE: u8 = 39;
}

/// What a rows event does to its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsKind {
    Insert,
    Update,
    Delete,
}

/// One row image: a cell per table column, `None` where the image leaves the column out
/// (binlog_row_image=MINIMAL/NOBLOB).
pub type Image = Vec<Option<Cell>>;

/// One row of a rows event: the before image (UPDATE, DELETE) and the after image (INSERT, UPDATE).
pub type RowImages = (Option<Image>, Option<Image>);

/// A rows event whose rows are read one at a time, so a huge event is never held decoded.
#[derive(Debug)]
pub struct RowsEvent<'a> {
    pub table_id: u64,
    pub kind: RowsKind,
    columns: usize,
    present: &'a [u8],
    present_after: &'a [u8],
    body: Cursor<'a>,
}

impl<'a> RowsEvent<'a> {
    /// The rows-event kind of a binlog event type, `None` for other events.
    pub fn kind_of(event_type: u8) -> Option<(RowsKind, bool)> {
        use code::*;
        match event_type {
            WRITE_V1 => Some((RowsKind::Insert, false)),
            UPDATE_V1 => Some((RowsKind::Update, false)),
            DELETE_V1 => Some((RowsKind::Delete, false)),
            WRITE_V2 => Some((RowsKind::Insert, true)),
            UPDATE_V2 | PARTIAL_UPDATE => Some((RowsKind::Update, true)),
            DELETE_V2 => Some((RowsKind::Delete, true)),
            _ => None,
        }
    }

    /// Parses the headers of a rows event body (checksum removed).
    pub fn parse(kind: RowsKind, v2: bool, data: &'a [u8]) -> Result<Self, Malformed> {
        let mut c = Cursor::new(data);
        let table_id = c.uint_le(6)?;
        let _flags = c.u16()?;
        if v2 {
            let extra = usize::from(c.u16()?);
            c.take(extra.saturating_sub(2))?;
        }
        let columns = c.lenenc()?;
        // MySQL and MariaDB allow at most 4096 columns per table.
        let columns = usize::try_from(columns)
            .ok()
            .filter(|n| *n <= 4096)
            .ok_or_else(|| Malformed::new(format!("rows event claims {columns} columns")))?;
        let present = c.take(columns.div_ceil(8))?;
        let present_after = if kind == RowsKind::Update {
            c.take(columns.div_ceil(8))?
        } else {
            present
        };
        Ok(RowsEvent {
            table_id,
            kind,
            columns,
            present,
            present_after,
            body: c,
        })
    }

    /// Column count the event was written with.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// The next row: (before image, after image) as the kind requires; `None` at the end.
    pub fn next_row(&mut self, table: &TableMap) -> Result<Option<RowImages>, Malformed> {
        if self.body.is_empty() {
            return Ok(None);
        }
        if self.columns != table.columns.len() {
            return Err(Malformed::new(format!(
                "rows event has {} columns but the TABLE_MAP of {}.{} has {}",
                self.columns,
                table.database,
                table.table,
                table.columns.len()
            )));
        }
        Ok(Some(match self.kind {
            RowsKind::Insert => (None, Some(image(&mut self.body, table, self.present)?)),
            RowsKind::Delete => (Some(image(&mut self.body, table, self.present)?), None),
            RowsKind::Update => {
                let before = image(&mut self.body, table, self.present)?;
                let after = image(&mut self.body, table, self.present_after)?;
                (Some(before), Some(after))
            }
        }))
    }
}

fn image(c: &mut Cursor<'_>, table: &TableMap, present: &[u8]) -> Result<Image, Malformed> {
    let n = table.columns.len();
    let present_count = (0..n).filter(|i| bit(present, *i)).count();
    let nulls = c.take(present_count.div_ceil(8))?;
    let mut row = Vec::with_capacity(n);
    let mut j = 0;
    for (i, col) in table.columns.iter().enumerate() {
        if !bit(present, i) {
            row.push(None);
            continue;
        }
        let is_null = bit(nulls, j);
        j += 1;
        if is_null {
            row.push(Some(Cell::Null));
        } else {
            let cell = read_cell(col, c)
                .map_err(|e| Malformed::new(format!("column {} ({}): {e}", i + 1, col.name)))?;
            row.push(Some(cell));
        }
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::table_map::tests::{names, table_map_bytes};
    use crate::binlog::table_map::ty;
    use proptest::prelude::*;

    fn table() -> TableMap {
        let bytes = table_map_bytes(
            "d",
            "t",
            &[
                (ty::LONG, &[]),
                (ty::VARCHAR, &[20, 0]),
                (ty::NEWDECIMAL, &[10, 2]),
            ],
            &[(4, names(&["id", "name", "amount"])), (8, vec![0])],
        );
        TableMap::parse(&bytes, 6).unwrap()
    }

    fn rows_header(kind: u8, cols: u8) -> Vec<u8> {
        let mut b = vec![42, 0, 0, 0, 0, 0, 1, 0];
        if kind >= code::WRITE_V2 {
            b.extend_from_slice(&[2, 0]);
        }
        b.push(cols);
        b.push(0xff);
        if kind == code::UPDATE_V1 || kind == code::UPDATE_V2 {
            b.push(0xff);
        }
        b
    }

    #[test]
    fn update_v2_with_null() {
        let t = table();
        let mut b = rows_header(code::UPDATE_V2, 3);
        // before: id=7, name='ab', amount NULL
        b.extend_from_slice(&[0b100, 7, 0, 0, 0, 2, b'a', b'b']);
        // after: id=7, name NULL, amount 12.30
        b.extend_from_slice(&[0b010, 7, 0, 0, 0]);
        b.extend_from_slice(&[0x80, 0, 0, 12, 30]);
        let (kind, v2) = RowsEvent::kind_of(code::UPDATE_V2).unwrap();
        let mut ev = RowsEvent::parse(kind, v2, &b).unwrap();
        let (before, after) = ev.next_row(&t).unwrap().unwrap();
        let before = before.unwrap();
        let after = after.unwrap();
        assert_eq!(before[1], Some(Cell::Text("ab".into())));
        assert_eq!(before[2], Some(Cell::Null));
        assert_eq!(after[1], Some(Cell::Null));
        assert_eq!(after[2], Some(Cell::Decimal("12.30".into())));
        assert!(ev.next_row(&t).unwrap().is_none());
    }

    #[test]
    fn truncated_row_is_an_error() {
        let t = table();
        let mut b = rows_header(code::WRITE_V1, 3);
        b.extend_from_slice(&[0b000, 7, 0, 0, 0, 5, b'a']);
        let mut ev = RowsEvent::parse(RowsKind::Insert, false, &b).unwrap();
        let err = ev.next_row(&t).unwrap_err();
        assert!(err.0.contains("column 2 (name)"), "{err}");
    }

    proptest! {
        /// Random bytes never panic the decoder: every outcome is rows or an error.
        #[test]
        fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200), kind in 0u8..3, v2: bool) {
            let t = table();
            let kind = [RowsKind::Insert, RowsKind::Update, RowsKind::Delete][usize::from(kind)];
            if let Ok(mut ev) = RowsEvent::parse(kind, v2, &body) {
                for _ in 0..50 {
                    match ev.next_row(&t) {
                        Ok(Some(_)) => {}
                        _ => break,
                    }
                }
            }
            let _ = TableMap::parse(&body, 6);
            let _ = crate::binlog::jsonb::decode(&body);
        }

        /// Random bytes in every column type never panic either.
        #[test]
        fn random_values_never_panic(body in proptest::collection::vec(any::<u8>(), 0..64), t in any::<u8>(), m in proptest::collection::vec(any::<u8>(), 0..3)) {
            let bytes = table_map_bytes("d", "t", &[(t, &m)], &[]);
            if let Ok(table) = TableMap::parse(&bytes, 6) {
                let mut b = rows_header(code::WRITE_V1, 1);
                b.extend_from_slice(&body);
                if let Ok(mut ev) = RowsEvent::parse(RowsKind::Insert, false, &b) {
                    let _ = ev.next_row(&table);
                }
            }
        }
    }
}
