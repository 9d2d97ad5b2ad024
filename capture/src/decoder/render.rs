//! A rows event's rows as row events: an UPDATE's `old`, a key change as DELETE + INSERT, keys.

use super::{Decoder, Header};
use crate::binlog::{Columns, Layout, Malformed, RowsEvent, RowsKind, Side, Slot};
use crate::output::{Output, RowEvent, Table};
use sluice_event::EventType;
use std::sync::Arc;

impl Decoder {
    pub(super) fn rows(
        &mut self,
        h: Header,
        kind: RowsKind,
        layout: Layout,
        data: &[u8],
        capture_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), Malformed> {
        let mut ev = RowsEvent::parse(kind, layout, data)?;
        let Some(table) = self.tables.get(&ev.table_id) else {
            return Err(Malformed::new(format!(
                "rows event for table id {} without a TABLE_MAP before it",
                ev.table_id
            )));
        };
        if !table.publish {
            // Its rows are never looked at; the position still advances at the commit.
            return Ok(());
        }
        let table = Arc::clone(table);
        let at = RowsAt {
            ts_ms: i64::from(h.timestamp) * 1000,
            capture_ms,
            offset: u64::from(h.log_pos.saturating_sub(h.event_size)),
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.render_rows(&mut ev, &table, at, &mut scratch, out);
        self.scratch = scratch;
        result
    }

    /// The rows of one event as row events: an UPDATE's `old` has the columns whose stored
    /// bytes changed, and an UPDATE that changes the key is a DELETE and an INSERT.
    fn render_rows(
        &mut self,
        ev: &mut RowsEvent<'_>,
        table: &Arc<Table>,
        at: RowsAt,
        s: &mut Scratch,
        out: &mut Vec<Output>,
    ) -> Result<(), Malformed> {
        let map = &table.map;
        let cols = Columns {
            map,
            keys: &table.keys,
            dropped: &table.dropped,
            masks: &table.masks,
        };
        let mut row: u32 = 0;
        while ev.has_row(map)? {
            let mut buf = Vec::with_capacity(self.row_hint);
            match ev.kind {
                RowsKind::Insert | RowsKind::Delete => {
                    let (side, kind) = if ev.kind == RowsKind::Insert {
                        (Side::After, EventType::Insert)
                    } else {
                        (Side::Before, EventType::Delete)
                    };
                    ev.render(side, &cols, &mut buf, &mut s.after)?;
                    let data_end = buf.len();
                    self.push_row(table, at, row, kind, buf, data_end, &s.after, out);
                }
                RowsKind::Update => {
                    s.before_json.clear();
                    ev.render(Side::Before, &cols, &mut s.before_json, &mut s.before)?;
                    ev.render(Side::After, &cols, &mut buf, &mut s.after)?;
                    let key_changed =
                        map.pk
                            .iter()
                            .any(|i| match (s.before.get(*i), s.after.get(*i)) {
                                (Some(b), Some(a)) => b.present && a.present && !ev.same(b, a),
                                _ => false,
                            });
                    if key_changed {
                        let before = s.before_json.clone();
                        let end = before.len();
                        self.push_row(
                            table,
                            at,
                            row,
                            EventType::Delete,
                            before,
                            end,
                            &s.before,
                            out,
                        );
                        let end = buf.len();
                        self.push_row(table, at, row, EventType::Insert, buf, end, &s.after, out);
                    } else {
                        let data_end = buf.len();
                        buf.push(b'{');
                        let mut first = true;
                        for (b, a) in s.before.iter().zip(&s.after) {
                            if b.present && !b.dropped && !ev.same(b, a) {
                                if !first {
                                    buf.push(b',');
                                }
                                first = false;
                                buf.extend_from_slice(
                                    s.before_json.get(b.pair.0..b.pair.1).unwrap_or_default(),
                                );
                            }
                        }
                        buf.push(b'}');
                        self.push_row(
                            table,
                            at,
                            row,
                            EventType::Update,
                            buf,
                            data_end,
                            &s.after,
                            out,
                        );
                    }
                }
            }
            row += 1;
        }
        Ok(())
    }

    /// Holds one row event, its JSON `rendered` up to the key values, which it appends from
    /// the `slots` of the `data` image.
    #[allow(clippy::too_many_arguments)]
    fn push_row(
        &mut self,
        table: &Arc<Table>,
        at: RowsAt,
        row: u32,
        kind: EventType,
        mut rendered: Vec<u8>,
        data_end: usize,
        slots: &[Slot],
        out: &mut Vec<Output>,
    ) {
        if !self.filter.kind(kind) {
            return;
        }
        if let Some(d) = &mut self.detector {
            d.observe(&table.map.database, &table.map.table, &rendered[..data_end]);
        }
        let old_end = rendered.len();
        for i in &table.map.pk {
            rendered.push(b',');
            match slots.get(*i) {
                // The value's bytes are in `rendered` (checked, not assumed: never a panic).
                Some(s)
                    if s.present && !s.dropped && s.value <= s.pair.1 && s.pair.1 <= old_end =>
                {
                    rendered.extend_from_within(s.value..s.pair.1)
                }
                _ => rendered.extend_from_slice(b"null"),
            }
        }
        self.row_hint = (rendered.len() + rendered.len() / 4).clamp(64, ROW_HINT_MAX);
        let ev = RowEvent {
            seq: self.seq.next(at.ts_ms),
            kind,
            ts_ms: at.ts_ms,
            capture_ms: at.capture_ms,
            instance: Arc::clone(&self.instance),
            table: Arc::clone(table),
            file: Arc::clone(&self.file_arc),
            offset: at.offset,
            row,
            gtid: self.txn_gtid.clone(),
            xid: None,
            txn_last: false,
            rendered,
            data_end,
            old_end,
        };
        self.hold(Output::Row(Box::new(ev)), out);
    }
}

/// Where the rows of one rows event happened.
#[derive(Debug, Clone, Copy)]
struct RowsAt {
    ts_ms: i64,
    capture_ms: i64,
    offset: u64,
}

/// The decoder's buffers for the rows of an UPDATE, kept from row to row.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    before: Vec<Slot>,
    after: Vec<Slot>,
    /// The before image as JSON, from which `old` takes the columns that changed.
    before_json: Vec<u8>,
}

/// The most a new row's buffer reserves up front, however large the rows before it were.
const ROW_HINT_MAX: usize = 16 << 10;
