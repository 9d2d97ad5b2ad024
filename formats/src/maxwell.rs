//! Maxwell's JSON messages as Sluice change events (docs/formats.md).
//!
//! Maxwell writes one row per message with typed JSON values that mostly match Sluice's
//! already; what it cannot tell apart without the table's schema (a DECIMAL from a DOUBLE, a
//! DATETIME from a VARCHAR holding the same text) is passed on as Maxwell wrote it.

use crate::canal::split_update;
use crate::{Format, FormatError};
use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_event::{ChangeEvent, EventType, Position, Row, Source, EVENT_VERSION};

/// The `instance` of every event read from Maxwell: a message does not name its source.
pub const MAXWELL_INSTANCE: &str = "maxwell";

/// The change events of one message.
pub fn decode(payload: &[u8]) -> Result<Vec<ChangeEvent>, FormatError> {
    let msg: Message =
        serde_json::from_slice(payload).map_err(|e| err(format!("not a Maxwell message: {e}")))?;
    let kind = msg.kind.as_deref().unwrap_or("");
    let (kind, source) = match kind {
        "insert" => (EventType::Insert, Source::Binlog),
        "update" => (EventType::Update, Source::Binlog),
        "delete" => (EventType::Delete, Source::Binlog),
        "bootstrap-insert" => (EventType::Insert, Source::Snapshot),
        "bootstrap-start" | "bootstrap-complete" => return Ok(Vec::new()),
        k if DDL_TYPES.contains(&k) => (EventType::Ddl, Source::Binlog),
        "" => {
            return Err(err(
                "no `type`; expected insert, update, delete or a DDL type",
            ))
        }
        k => return Err(err(format!("type {k} is neither a row change nor DDL"))),
    };
    let ts = msg
        .ts
        .ok_or_else(|| err("no `ts`; Sluice needs the commit time for ts_ms and seq"))?;
    // Rows carry seconds; DDL messages carry milliseconds.
    let ts_ms = if kind == EventType::Ddl {
        Some(ts)
    } else {
        ts.checked_mul(1000)
    }
    .filter(|t| *t >= 0)
    .ok_or_else(|| err(format!("`ts` {ts} is not a time since the epoch")))?;
    let position = msg
        .position
        .as_deref()
        .map(|p| parse_position(p).map_err(err))
        .transpose()?;
    let head = Head {
        msg: &msg,
        source,
        ts_ms,
        position,
    };
    if kind == EventType::Ddl {
        let mut ev = head.event(EventType::Ddl, 0)?;
        ev.sql = Some(msg.sql.clone().unwrap_or_default());
        return Ok(vec![ev]);
    }
    let table = format!(
        "{}.{}",
        msg.database.as_deref().unwrap_or(""),
        msg.table.as_deref().unwrap_or("")
    );
    let pk = msg.primary_key_columns.clone().ok_or_else(|| {
        err(format!(
            "no primary_key_columns for {table}; run Maxwell with output_primary_key_columns=true"
        ))
    })?;
    if pk.is_empty() {
        return Err(err(format!(
            "no primary key for {table}; the sink writes rows by key, so give the table a primary key"
        )));
    }
    let data = msg
        .data
        .clone()
        .ok_or_else(|| err(format!("no `data` in a {kind} of {table}")))?;
    if let Some(col) = pk.iter().find(|c| !data.contains_key(c.as_str())) {
        return Err(err(format!(
            "the row of {table} has no value for key column `{col}`"
        )));
    }
    let changes = if kind == EventType::Update {
        let old = match &msg.old {
            Some(Value::Object(o)) => o.clone(),
            Some(Value::Null) | None => Row::new(),
            Some(_) => {
                return Err(err(format!(
                    "`old` of an update of {table} is not an object"
                )))
            }
        };
        split_update(&pk, data, old)
    } else {
        vec![(kind, data, None)]
    };
    let last = changes.len() - 1;
    changes
        .into_iter()
        .enumerate()
        .map(|(part, (kind, data, old))| {
            let mut ev = head.event(kind, part)?;
            // The DELETE half of a key change is not the transaction's last event.
            ev.txn_last &= part == last;
            ev.pk = pk.clone();
            ev.data = data;
            ev.old = old;
            Ok(ev)
        })
        .collect()
}

/// The `seq` of a row: `(file number << 42) | (offset << 10) | slot` when Maxwell wrote its
/// `position`, else `(ts_ms << 20) | slot`.
///
/// Both come from the message alone, so re-reading it gives the same `seq`. The position form
/// orders every change of one server's binlog and stays below 2^60, so under sluice-capture's
/// time-based numbers (2^60 is November 2004 as `ts_ms << 20`): moving to sluice-capture keeps
/// versions increasing. The time form orders changes of different seconds only. `slot` (below
/// 1024, resp. 2^20) orders the rows of one position or one second: see [`slot`].
pub(crate) fn seq(ts_ms: i64, position: Option<(u64, u64)>, slot: u64) -> Result<i64, String> {
    match position {
        Some((file, offset)) => {
            if file >= 1 << 21 || offset >= 1 << 32 {
                return Err(format!(
                    "binlog file number {file} or offset {offset} is too large for a 64-bit seq (limits: 2^21 files, 2^32 bytes)"
                ));
            }
            let v = (file << 42) | (offset << 10) | slot.min(POSITION_SLOTS - 1);
            i64::try_from(v).map_err(|_| "seq overflow".to_owned())
        }
        None => Ok(ts_ms
            .max(0)
            .saturating_mul(1 << 20)
            .saturating_add(slot.min(TIME_SLOTS - 1) as i64)),
    }
}

/// A row's place among the rows that share its position (or second): `2 * xoffset`, the
/// transaction's commit row (which Maxwell writes without `xoffset`) last, plus `part` (0, or 1
/// for the INSERT half of a key change).
pub(crate) fn slot(xoffset: Option<u64>, commit: bool, part: usize, slots: u64) -> u64 {
    let base = if commit {
        slots - 2
    } else {
        2 * xoffset.unwrap_or(0).min(slots / 2 - 2)
    };
    base + part.min(1) as u64
}

const POSITION_SLOTS: u64 = 1 << 10;
const TIME_SLOTS: u64 = 1 << 20;

const DDL_TYPES: &[&str] = &[
    "table-create",
    "table-alter",
    "table-drop",
    "database-create",
    "database-alter",
    "database-drop",
];

#[derive(Deserialize)]
struct Message {
    database: Option<String>,
    table: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    ts: Option<i64>,
    xid: Option<u64>,
    xoffset: Option<u64>,
    commit: Option<bool>,
    position: Option<String>,
    gtid: Option<String>,
    primary_key_columns: Option<Vec<String>>,
    data: Option<Map<String, Value>>,
    old: Option<Value>,
    sql: Option<String>,
}

struct Head<'a> {
    msg: &'a Message,
    source: Source,
    ts_ms: i64,
    position: Option<(String, u64, u64)>,
}

impl Head<'_> {
    fn event(&self, kind: EventType, part: usize) -> Result<ChangeEvent, FormatError> {
        let commit = self.msg.commit == Some(true);
        let numbers = self.position.as_ref().map(|(_, n, o)| (*n, *o));
        let slots = if numbers.is_some() {
            POSITION_SLOTS
        } else {
            TIME_SLOTS
        };
        let seq = seq(
            self.ts_ms,
            numbers,
            slot(self.msg.xoffset, commit, part, slots),
        )
        .map_err(err)?;
        let (file, offset) = match &self.position {
            Some((file, _, offset)) => (file.clone(), *offset),
            None => (String::new(), 0),
        };
        Ok(ChangeEvent {
            v: EVENT_VERSION,
            seq,
            source: self.source,
            instance: MAXWELL_INSTANCE.to_owned(),
            database: self.msg.database.clone().unwrap_or_default(),
            table: self.msg.table.clone().unwrap_or_default(),
            kind,
            ts_ms: self.ts_ms,
            capture_ms: self.ts_ms,
            pos: Position {
                file,
                offset,
                row: u32::try_from(self.msg.xoffset.unwrap_or(0)).unwrap_or(u32::MAX),
                gtid: self.msg.gtid.clone(),
            },
            xid: self.msg.xid,
            txn_last: commit,
            pk: Vec::new(),
            data: Row::new(),
            old: None,
            sql: None,
        })
    }
}

/// `master.000003:12345` → (`master.000003`, 3, 12345).
fn parse_position(p: &str) -> Result<(String, u64, u64), String> {
    let bad = || format!("position `{p}` is not `<binlog file>.<number>:<offset>`");
    let (file, offset) = p.rsplit_once(':').ok_or_else(bad)?;
    let number = file.rsplit_once('.').ok_or_else(bad)?.1;
    let number: u64 = number.parse().map_err(|_| bad())?;
    let offset: u64 = offset.parse().map_err(|_| bad())?;
    Ok((file.to_owned(), number, offset))
}

fn err(reason: impl Into<String>) -> FormatError {
    FormatError::new(Format::Maxwell, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS_MS: i64 = 1_763_716_502_000;

    #[test]
    fn position_seq_orders_files_offsets_and_rows() {
        let s = |file, offset, slot| seq(TS_MS, Some((file, offset)), slot).expect("fits");
        assert_eq!(s(3, 12_345, 5), (3 << 42) | (12_345 << 10) | 5);
        assert!(s(3, 12_345, 1023) < s(3, 12_346, 0));
        assert!(s(3, u32::MAX.into(), 1023) < s(4, 4, 0));
        // Below sluice-capture's time-based seq for any file number Maxwell can give.
        assert!(s((1 << 18) - 1, u32::MAX.into(), 1023) < TS_MS << 20);
        assert_eq!(s((1 << 21) - 1, u32::MAX.into(), 1023), i64::MAX);
        assert!(seq(TS_MS, Some((1 << 21, 0)), 0).is_err());
        assert!(seq(TS_MS, Some((1, 1 << 32)), 0).is_err());
    }

    #[test]
    fn time_seq_is_capture_like() {
        assert_eq!(seq(TS_MS, None, 0), Ok(TS_MS << 20));
        assert_eq!(seq(TS_MS, None, 7), Ok((TS_MS << 20) + 7));
        assert!(seq(TS_MS, None, u64::MAX).expect("fits") < (TS_MS + 1) << 20);
        assert_eq!(seq(i64::MAX, None, 0), Ok(i64::MAX));
    }

    #[test]
    fn slots_put_rows_in_transaction_order_and_the_commit_row_last() {
        let s = |x, commit, part| slot(x, commit, part, POSITION_SLOTS);
        assert_eq!(s(Some(0), false, 0), 0);
        assert_eq!(s(Some(0), false, 1), 1);
        assert_eq!(s(Some(3), false, 0), 6);
        assert!(s(Some(400), false, 1) < s(None, true, 0));
        assert_eq!(s(None, true, 1), 1023);
        assert_eq!(s(Some(u64::MAX), false, 1), 1021);
    }

    #[test]
    fn positions_parse() {
        assert_eq!(
            parse_position("master.000003:12345"),
            Ok(("master.000003".to_owned(), 3, 12_345))
        );
        assert!(parse_position("master:12").is_err());
        assert!(parse_position("master.000003").is_err());
        assert!(parse_position("master.x:1").is_err());
    }
}
