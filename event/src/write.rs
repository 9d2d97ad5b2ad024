//! The event JSON written straight into a byte buffer, from decoded cells or around row values
//! already written as JSON: the same bytes as [`ChangeEvent::encode`](crate::ChangeEvent::encode),
//! without building a `serde_json` map per row. The capture's hot path (`tail`, `run`) uses this;
//! `ChangeEvent` stays the type readers decode into. This file writes the event around its rows
//! and the Kafka key; one value is written in `cell`, numbers, dates and times in `digits`,
//! strings in `string`.

mod cell;
mod digits;
mod string;

pub use cell::{write_bytes, write_cell};
pub use digits::{write_i64, write_u64};
pub use string::write_str;

use crate::{Cell, ChangeEvent, EventType, Position, Row, Source, EVENT_VERSION};

/// Everything of an event except its row values, borrowed, for [`write_json`].
#[derive(Debug, Clone, Copy)]
pub struct EventHead<'a> {
    pub seq: i64,
    pub source: Source,
    pub instance: &'a str,
    pub database: &'a str,
    pub table: &'a str,
    pub kind: EventType,
    pub ts_ms: i64,
    pub capture_ms: i64,
    /// `pos.file`, `pos.offset`, `pos.row`, `pos.gtid`.
    pub file: &'a str,
    pub offset: u64,
    pub row: u32,
    pub gtid: Option<&'a str>,
    pub xid: Option<u64>,
    pub txn_last: bool,
    pub pk: &'a [String],
    /// DDL only: the statement.
    pub sql: Option<&'a str>,
}

impl EventHead<'_> {
    /// The same event as a [`ChangeEvent`], with its rows already as JSON maps (tests, tools,
    /// and the places that need the decoded form).
    pub fn to_change_event(&self, data: Row, old: Option<Row>) -> ChangeEvent {
        ChangeEvent {
            v: EVENT_VERSION,
            seq: self.seq,
            source: self.source,
            instance: self.instance.to_owned(),
            database: self.database.to_owned(),
            table: self.table.to_owned(),
            kind: self.kind,
            ts_ms: self.ts_ms,
            capture_ms: self.capture_ms,
            pos: Position {
                file: self.file.to_owned(),
                offset: self.offset,
                row: self.row,
                gtid: self.gtid.map(str::to_owned),
            },
            xid: self.xid,
            txn_last: self.txn_last,
            pk: self.pk.to_vec(),
            data,
            old,
            sql: self.sql.map(str::to_owned),
        }
    }
}

/// `name` as a JSON string followed by `:`, as an event writes it in front of the column's
/// value. The capture renders each column's name once per TABLE_MAP instead of once per row.
pub fn json_key(name: &str) -> Box<[u8]> {
    let mut out = Vec::with_capacity(name.len() + 3);
    write_str(&mut out, name);
    out.push(b':');
    out.into_boxed_slice()
}

/// Appends the event's value bytes to `out`: compact JSON, fields in the documented order.
/// `data` and `old` yield (column name, value) in table column order; `old` is `Some` for
/// UPDATE only.
pub fn write_json<'n, 'c, D, O>(out: &mut Vec<u8>, head: &EventHead<'_>, data: D, old: Option<O>)
where
    D: IntoIterator<Item = (&'n str, &'c Cell)>,
    O: IntoIterator<Item = (&'n str, &'c Cell)>,
{
    write_head(out, head);
    write_row(out, data);
    if let Some(old) = old {
        out.extend_from_slice(b",\"old\":");
        write_row(out, old);
    }
    write_tail(out, head);
}

/// [`write_json`] with the rows already written as JSON objects (the capture writes them
/// straight from the binlog bytes).
pub fn write_json_rendered(
    out: &mut Vec<u8>,
    head: &EventHead<'_>,
    data: &[u8],
    old: Option<&[u8]>,
) {
    write_head(out, head);
    out.extend_from_slice(data);
    if let Some(old) = old {
        out.extend_from_slice(b",\"old\":");
        out.extend_from_slice(old);
    }
    write_tail(out, head);
}

/// Everything before the value of `data`, up to and including `"data":`.
fn write_head(out: &mut Vec<u8>, head: &EventHead<'_>) {
    out.extend_from_slice(b"{\"v\":");
    write_u64(out, u64::from(EVENT_VERSION));
    out.extend_from_slice(b",\"seq\":");
    write_i64(out, head.seq);
    out.extend_from_slice(match head.source {
        Source::Binlog => b",\"source\":\"binlog\",\"instance\":",
        Source::Snapshot => b",\"source\":\"snapshot\",\"instance\":",
    });
    write_str(out, head.instance);
    out.extend_from_slice(b",\"database\":");
    write_str(out, head.database);
    out.extend_from_slice(b",\"table\":");
    write_str(out, head.table);
    out.extend_from_slice(match head.kind {
        EventType::Insert => b",\"type\":\"INSERT\",\"ts_ms\":",
        EventType::Update => b",\"type\":\"UPDATE\",\"ts_ms\":",
        EventType::Delete => b",\"type\":\"DELETE\",\"ts_ms\":",
        EventType::Ddl => b",\"type\":\"DDL\",\"ts_ms\":",
    });
    write_i64(out, head.ts_ms);
    out.extend_from_slice(b",\"capture_ms\":");
    write_i64(out, head.capture_ms);
    out.extend_from_slice(b",\"pos\":{\"file\":");
    write_str(out, head.file);
    out.extend_from_slice(b",\"offset\":");
    write_u64(out, head.offset);
    out.extend_from_slice(b",\"row\":");
    write_u64(out, u64::from(head.row));
    if let Some(g) = head.gtid {
        out.extend_from_slice(b",\"gtid\":");
        write_str(out, g);
    }
    out.push(b'}');
    if let Some(x) = head.xid {
        out.extend_from_slice(b",\"xid\":");
        write_u64(out, x);
    }
    out.extend_from_slice(if head.txn_last {
        b",\"txn_last\":true,\"pk\":["
    } else {
        b",\"txn_last\":false,\"pk\":["
    });
    for (i, name) in head.pk.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
    }
    out.extend_from_slice(b"],\"data\":");
}

/// Everything after `data` and `old`.
fn write_tail(out: &mut Vec<u8>, head: &EventHead<'_>) {
    if let Some(sql) = head.sql {
        out.extend_from_slice(b",\"sql\":");
        write_str(out, sql);
    }
    out.push(b'}');
}

/// Appends the Kafka key `["<database>","<table>",<pk value>...]`; `None` values (a key
/// column missing from the row) are `null`, as in [`ChangeEvent::key`](crate::ChangeEvent::key).
pub fn write_key<'c>(
    out: &mut Vec<u8>,
    database: &str,
    table: &str,
    pk_values: impl IntoIterator<Item = Option<&'c Cell>>,
) {
    out.push(b'[');
    write_str(out, database);
    out.push(b',');
    write_str(out, table);
    for v in pk_values {
        out.push(b',');
        match v {
            Some(c) => write_cell(out, c),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b']');
}

/// [`write_key`] with the key's values already written as JSON, each after a comma
/// (`,1,"a"`; empty for a table without a primary key).
pub fn write_key_rendered(out: &mut Vec<u8>, database: &str, table: &str, values: &[u8]) {
    out.push(b'[');
    write_str(out, database);
    out.push(b',');
    write_str(out, table);
    out.extend_from_slice(values);
    out.push(b']');
}

/// A JSON object of (name, value) pairs.
fn write_row<'n, 'c>(out: &mut Vec<u8>, row: impl IntoIterator<Item = (&'n str, &'c Cell)>) {
    out.push(b'{');
    let mut first = true;
    for (name, cell) in row {
        if !first {
            out.push(b',');
        }
        first = false;
        write_str(out, name);
        out.push(b':');
        write_cell(out, cell);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests;
