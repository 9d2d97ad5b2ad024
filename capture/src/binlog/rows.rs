//! WRITE/UPDATE/DELETE_ROWS events (v1 as MariaDB writes them, v2 as MySQL does), row by row,
//! and MySQL's PARTIAL_UPDATE_ROWS, whose JSON columns may be diffs against the before image.

use super::cursor::{bit, Cursor, Malformed};
use super::json_diff;
use super::jsonb;
use super::table_map::{ColumnKind, TableMap};
use super::value::{read_cell, write_value};
use sluice_event::{write_cell, Cell};

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

/// How a rows event's body is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// MariaDB's and MySQL 5.5's events: no extra data after the flags.
    V1,
    /// MySQL 5.6+: extra data after the flags.
    V2,
    /// MySQL's PARTIAL_UPDATE_ROWS: V2, and each after image starts with its value options
    /// (`binlog_row_value_options`), which may make JSON columns diffs.
    PartialUpdate,
}

/// The value option bit of a row whose JSON columns may be diffs (`PARTIAL_JSON_UPDATES`).
const PARTIAL_JSON: u64 = 1;

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

/// Which image of a row [`RowsEvent::render`] reads next: UPDATE has both, before first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Before,
    After,
}

/// One table column of a row image written by [`RowsEvent::render`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slot {
    /// The image has the column (binlog_row_image=MINIMAL/NOBLOB leave columns out).
    pub present: bool,
    pub null: bool,
    /// Read, but left out of the JSON by a filter.
    pub dropped: bool,
    /// Where the value's bytes are in the event, to compare images with [`RowsEvent::source`].
    pub src: (usize, usize),
    /// Where `"name":value` is in the output (empty when dropped)...
    pub pair: (usize, usize),
    /// ...and where its value starts.
    pub value: usize,
}

/// What [`RowsEvent::render`] needs of a table: its map, each column's name already as a JSON
/// key (`"name":`), and which columns a filter drops.
#[derive(Debug, Clone, Copy)]
pub struct Columns<'t> {
    pub map: &'t TableMap,
    pub keys: &'t [Box<[u8]>],
    pub dropped: &'t [bool],
    /// Per column: masked before it is written (`[filter.mask]`); empty when none is.
    pub masks: &'t [Option<sluice_rules::Masking>],
}

/// A rows event whose rows are read one at a time, so a huge event is never held decoded.
#[derive(Debug)]
pub struct RowsEvent<'a> {
    pub table_id: u64,
    pub kind: RowsKind,
    columns: usize,
    present: &'a [u8],
    present_after: &'a [u8],
    body: Cursor<'a>,
    /// PARTIAL_UPDATE_ROWS: after images carry value options.
    partial: bool,
    /// PARTIAL_UPDATE_ROWS: where each column's value is in the last before image rendered
    /// (`None` when absent or NULL), the base of the after image's JSON diffs.
    before_spans: Vec<Option<(usize, usize)>>,
}

impl<'a> RowsEvent<'a> {
    /// The rows-event kind of a binlog event type, `None` for other events.
    pub fn kind_of(event_type: u8) -> Option<(RowsKind, Layout)> {
        use code::*;
        match event_type {
            WRITE_V1 => Some((RowsKind::Insert, Layout::V1)),
            UPDATE_V1 => Some((RowsKind::Update, Layout::V1)),
            DELETE_V1 => Some((RowsKind::Delete, Layout::V1)),
            WRITE_V2 => Some((RowsKind::Insert, Layout::V2)),
            UPDATE_V2 => Some((RowsKind::Update, Layout::V2)),
            PARTIAL_UPDATE => Some((RowsKind::Update, Layout::PartialUpdate)),
            DELETE_V2 => Some((RowsKind::Delete, Layout::V2)),
            _ => None,
        }
    }

    /// Parses the headers of a rows event body (checksum removed).
    pub fn parse(kind: RowsKind, layout: Layout, data: &'a [u8]) -> Result<Self, Malformed> {
        let mut c = Cursor::new(data);
        let table_id = c.uint_le(6)?;
        let _flags = c.u16()?;
        if layout != Layout::V1 {
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
            partial: layout == Layout::PartialUpdate && kind == RowsKind::Update,
            before_spans: Vec::new(),
        })
    }

    /// Column count the event was written with.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// Whether another row follows; an error if the rows do not fit the table's map.
    pub fn has_row(&self, table: &TableMap) -> Result<bool, Malformed> {
        if self.body.is_empty() {
            return Ok(false);
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
        Ok(true)
    }

    /// Reads the next image of `side` (after [`RowsEvent::has_row`]) and appends it to `out`
    /// as the JSON object of an event's `data`: the columns the image has, less the dropped
    /// ones, written straight from the event's bytes. `slots` gets one entry per column.
    pub fn render(
        &mut self,
        side: Side,
        cols: &Columns<'_>,
        out: &mut Vec<u8>,
        slots: &mut Vec<Slot>,
    ) -> Result<(), Malformed> {
        let present = match side {
            Side::Before => self.present,
            Side::After => self.present_after,
        };
        let c = &mut self.body;
        let columns = &cols.map.columns;
        let partial_bits = if self.partial && side == Side::After {
            value_options(c, cols.map)?
        } else {
            None
        };
        let present_count = (0..columns.len()).filter(|i| bit(present, *i)).count();
        if present_count == 0 {
            // Such an image takes no bytes: the rows after it would never end. Servers always
            // log at least one column.
            return Err(Malformed::new(
                "a row image with no columns (the event's column bitmap is empty)",
            ));
        }
        let nulls = c.take(present_count.div_ceil(8))?;
        slots.clear();
        out.push(b'{');
        let mut first = true;
        let mut j = 0;
        let mut json_index = 0;
        for (i, col) in columns.iter().enumerate() {
            // The partial bits count every JSON column, in the image or not.
            let diffs = match (partial_bits, &col.kind) {
                (Some(bits), ColumnKind::Json { .. }) => {
                    json_index += 1;
                    bit(bits, json_index - 1)
                }
                _ => false,
            };
            if !bit(present, i) {
                slots.push(Slot::default());
                continue;
            }
            let null = bit(nulls, j);
            j += 1;
            let dropped = cols.dropped.get(i).copied().unwrap_or(false);
            let mark = out.len();
            if !first {
                out.push(b',');
            }
            let pair_start = out.len();
            if let Some(key) = cols.keys.get(i) {
                out.extend_from_slice(key);
            }
            let value = out.len();
            let src_start = c.pos();
            if null {
                out.extend_from_slice(b"null");
            } else {
                let written = if diffs {
                    let base = self
                        .before_spans
                        .get(i)
                        .copied()
                        .flatten()
                        .map(|(start, end)| c.span(start, end));
                    patched(col, base, c).map(|v| write_cell(out, &Cell::Json(v)))
                } else {
                    write_value(col, c, out)
                };
                written
                    .map_err(|e| Malformed::new(format!("column {} ({}): {e}", i + 1, col.name)))?;
                if let Some(Some(m)) = cols.masks.get(i) {
                    // The clear value never leaves: it is replaced in the buffer it was written to.
                    let clear: serde_json::Value =
                        serde_json::from_slice(&out[value..]).map_err(|e| {
                            Malformed::new(format!("column {} ({}): {e}", i + 1, col.name))
                        })?;
                    out.truncate(value);
                    serde_json::to_writer(&mut *out, &m.apply(&clear)).map_err(|e| {
                        Malformed::new(format!("column {} ({}): {e}", i + 1, col.name))
                    })?;
                }
            }
            let pair = if dropped {
                out.truncate(mark);
                (mark, mark)
            } else {
                first = false;
                (pair_start, out.len())
            };
            slots.push(Slot {
                present: true,
                null,
                dropped,
                src: (src_start, c.pos()),
                pair,
                value,
            });
        }
        out.push(b'}');
        if self.partial && side == Side::Before {
            self.before_spans.clear();
            self.before_spans.extend(
                slots
                    .iter()
                    .map(|s| (s.present && !s.null).then_some(s.src)),
            );
        }
        Ok(())
    }

    /// The event bytes of the value in `slot` (empty for NULL and absent columns).
    pub fn source(&self, slot: &Slot) -> &'a [u8] {
        self.body.span(slot.src.0, slot.src.1)
    }

    /// Whether two slots of the same column hold the same stored value (the same bytes).
    pub fn same(&self, a: &Slot, b: &Slot) -> bool {
        a.present == b.present && a.null == b.null && self.source(a) == self.source(b)
    }

    /// The next row decoded into cells: (before image, after image) as the kind requires;
    /// `None` at the end. The reference for [`RowsEvent::render`], which the capture uses.
    pub fn next_row(&mut self, table: &TableMap) -> Result<Option<RowImages>, Malformed> {
        if !self.has_row(table)? {
            return Ok(None);
        }
        Ok(Some(match self.kind {
            RowsKind::Insert => (
                None,
                Some(image(&mut self.body, table, self.present, None)?),
            ),
            RowsKind::Delete => (
                Some(image(&mut self.body, table, self.present, None)?),
                None,
            ),
            RowsKind::Update => {
                let before = image(&mut self.body, table, self.present, None)?;
                let partial = match self.partial {
                    true => value_options(&mut self.body, table)?.map(|bits| (bits, &before)),
                    false => None,
                };
                let after = image(&mut self.body, table, self.present_after, partial)?;
                (Some(before), Some(after))
            }
        }))
    }
}

/// Reads the value options that start a PARTIAL_UPDATE_ROWS after image: the partial bits
/// (one per JSON column of the table, set where the column holds diffs) when there are any.
fn value_options<'a>(c: &mut Cursor<'a>, table: &TableMap) -> Result<Option<&'a [u8]>, Malformed> {
    if c.lenenc()? & PARTIAL_JSON == 0 {
        return Ok(None);
    }
    let json_columns = table
        .columns
        .iter()
        .filter(|c| matches!(c.kind, ColumnKind::Json { .. }))
        .count();
    Ok(Some(c.take(json_columns.div_ceil(8))?))
}

/// The value of a JSON column stored as diffs: `base` (the before image's bytes, with their
/// length prefix) with the diffs read from `c` applied.
fn patched(
    col: &super::table_map::Column,
    base: Option<&[u8]>,
    c: &mut Cursor<'_>,
) -> Result<serde_json::Value, Malformed> {
    let diffs = json_bytes(col, c)?;
    let mut doc = match base {
        Some(bytes) => jsonb::decode(json_bytes(col, &mut Cursor::new(bytes))?)?,
        None => return Err(no_base()),
    };
    json_diff::apply(&mut doc, diffs)?;
    Ok(doc)
}

/// The bytes of a JSON column's value (binary JSON, or diffs), after their length prefix.
fn json_bytes<'a>(
    col: &super::table_map::Column,
    c: &mut Cursor<'a>,
) -> Result<&'a [u8], Malformed> {
    let ColumnKind::Json { len_bytes } = col.kind else {
        return Err(Malformed::new("JSON diffs in a column that is not JSON"));
    };
    let n = c.uint_le(usize::from(len_bytes))? as usize;
    c.take(n)
}

fn no_base() -> Malformed {
    Malformed::new(
        "a partial JSON update (binlog_row_value_options=PARTIAL_JSON) whose before image has no value to apply it to; Sluice needs binlog_row_image=FULL with it, or SET GLOBAL binlog_row_value_options='' and restart the capture",
    )
}

/// One row image; `partial` has the partial bits of a PARTIAL_UPDATE_ROWS after image and the
/// before image its diffs apply to.
fn image(
    c: &mut Cursor<'_>,
    table: &TableMap,
    present: &[u8],
    partial: Option<(&[u8], &Image)>,
) -> Result<Image, Malformed> {
    let n = table.columns.len();
    let present_count = (0..n).filter(|i| bit(present, *i)).count();
    let nulls = c.take(present_count.div_ceil(8))?;
    let mut row = Vec::with_capacity(n);
    let mut j = 0;
    let mut json_index = 0;
    for (i, col) in table.columns.iter().enumerate() {
        let diffs_against = match partial {
            Some((bits, before)) if matches!(col.kind, ColumnKind::Json { .. }) => {
                json_index += 1;
                bit(bits, json_index - 1).then_some(before)
            }
            _ => None,
        };
        if !bit(present, i) {
            row.push(None);
            continue;
        }
        let is_null = bit(nulls, j);
        j += 1;
        if is_null {
            row.push(Some(Cell::Null));
        } else {
            let cell = match diffs_against {
                Some(before) => match before.get(i) {
                    Some(Some(Cell::Json(base))) => json_bytes(col, c).and_then(|diffs| {
                        let mut doc = base.clone();
                        json_diff::apply(&mut doc, diffs).map(|()| Cell::Json(doc))
                    }),
                    _ => Err(no_base()),
                },
                None => read_cell(col, c),
            }
            .map_err(|e| Malformed::new(format!("column {} ({}): {e}", i + 1, col.name)))?;
            row.push(Some(cell));
        }
    }
    Ok(row)
}

#[cfg(test)]
mod tests;
