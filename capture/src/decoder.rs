//! Binlog events to change events: transaction boundaries, positions, `seq`, filters.
//!
//! The UPDATE rules of the design (only changed columns in `old`; a key change is DELETE +
//! INSERT) are applied in `render`. No I/O: the replication client feeds raw events in, outputs
//! come back in a Vec.

mod render;

use crate::binlog::mariadb::{self, code, MariaGtid, Query};
use crate::binlog::{Malformed, RowsEvent, TableMap};
use crate::checkpoint::Checkpoint;
use crate::detect::Detector;
use crate::error::CaptureError;
use crate::filter::Filter;
use crate::output::Table;
use render::Scratch;
use sluice_event::{
    json_key, ChangeEvent, EventType, Position, Row, SeqGenerator, Source, EVENT_VERSION,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Re-exported where the end-to-end tests look for it.
pub use crate::output::Output;

/// The raw header fields of one binlog event.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub event_type: u8,
    pub timestamp: u32,
    pub server_id: u32,
    pub log_pos: u32,
    pub event_size: u32,
}

/// The state of one binlog stream.
pub struct Decoder {
    instance: Arc<str>,
    filter: Filter,
    file: String,
    /// `file`, shared by the events read from it.
    file_arc: Arc<str>,
    /// End offset of the last event handled.
    pos: u64,
    tables: HashMap<u64, Arc<Table>>,
    seq: SeqGenerator,
    /// MariaDB GTID state by domain.
    gtid_state: BTreeMap<u32, MariaGtid>,
    /// MySQL: GTID of the last committed transaction.
    mysql_gtid: Option<String>,
    txn_gtid: Option<Arc<str>>,
    txn_maria: Option<MariaGtid>,
    in_txn: bool,
    /// The last event of the open transaction, held back to mark `txn_last`.
    held: Option<Output>,
    /// The last transaction boundary: where a reconnect resumes.
    boundary: Checkpoint,
    /// The server's identity, carried into every checkpoint.
    server: Option<String>,
    /// Commit time of the last transaction, in ms.
    commit_ms: Option<i64>,
    /// Set by a DDL statement: cached schema lookups are stale.
    pub schema_changed: bool,
    /// The server checksums events; until the stream's FORMAT_DESCRIPTION arrives, nobody has
    /// stripped the checksum from the leading artificial ROTATE event.
    checksums: bool,
    seen_fde: bool,
    scratch: Scratch,
    /// What a new row's JSON buffer reserves: a little more than the last row took.
    row_hint: usize,
    /// Looks at sampled rows for values that look like personal data (`[detect]`).
    detector: Option<Detector>,
}

impl Decoder {
    /// Starts at a checkpoint (or a fresh position with `seq` 0).
    pub fn new(instance: &str, filter: Filter, from: Checkpoint) -> Decoder {
        let mut d = Decoder {
            instance: Arc::from(instance),
            filter,
            file: from.file.clone(),
            file_arc: Arc::from(from.file.as_str()),
            pos: from.pos,
            tables: HashMap::new(),
            seq: SeqGenerator::new(from.seq),
            gtid_state: BTreeMap::new(),
            mysql_gtid: None,
            txn_gtid: None,
            txn_maria: None,
            in_txn: false,
            held: None,
            server: from.server.clone(),
            commit_ms: from.commit_ms,
            boundary: from.clone(),
            schema_changed: false,
            checksums: false,
            seen_fde: false,
            scratch: Scratch::default(),
            row_hint: 256,
            detector: None,
        };
        if let Some(g) = &from.gtid {
            d.set_gtid_state(g);
        }
        d
    }

    /// Whether the server writes event checksums (`binlog_checksum` is not NONE).
    pub fn set_checksums(&mut self, on: bool) {
        self.checksums = on;
    }

    /// Where to resume after a lost connection: the last transaction boundary.
    pub fn resume_point(&self) -> &Checkpoint {
        &self.boundary
    }

    /// A `seq` for an event added between transactions (snapshot rows at a watermark); the
    /// resume point moves past it, so a reconnect never hands it out again.
    pub fn next_seq(&mut self, ts_ms: i64) -> i64 {
        let s = self.seq.next(ts_ms);
        self.boundary.seq = self.boundary.seq.max(s);
        s
    }

    /// Forgets the open transaction after a lost connection; re-reading it from the boundary
    /// gives its events the same `seq` again.
    pub fn rewind(&mut self) {
        self.file = self.boundary.file.clone();
        self.file_arc = Arc::from(self.file.as_str());
        self.pos = self.boundary.pos;
        self.seq = SeqGenerator::new(self.boundary.seq);
        self.held = None;
        self.seen_fde = false;
        self.in_txn = false;
        self.txn_gtid = None;
        self.txn_maria = None;
        self.tables.clear();
        self.commit_ms = self.boundary.commit_ms;
        if let Some(g) = self.boundary.gtid.clone() {
            self.set_gtid_state(&g);
        }
    }

    /// The binlog file and the end offset of the last event handled.
    pub fn position(&self) -> (&str, u64) {
        (&self.file, self.pos)
    }

    /// Checks sampled rows with `detector` (`[detect]`; `None` leaves it off).
    pub fn with_detector(mut self, detector: Option<Detector>) -> Decoder {
        self.detector = detector;
        self
    }

    /// The binlog file being read.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Registers a TABLE_MAP (already enriched with schema information where needed). Fails
    /// when `[filter.mask]` would make two rows' keys equal (`mask` or `null` on a key column).
    pub fn add_table(&mut self, map: TableMap) -> Result<(), CaptureError> {
        let publish = self.filter.table(&map.database, &map.table);
        let dropped = match self.filter.dropped(&map.database, &map.table) {
            Some(set) => map.columns.iter().map(|c| set.contains(&c.name)).collect(),
            None => vec![false; map.columns.len()],
        };
        let masks = match self.filter.masks(&map.database, &map.table) {
            Some(m) => map
                .columns
                .iter()
                .map(|c| m.get(&c.name).cloned())
                .collect(),
            None => Vec::new(),
        };
        for &k in &map.pk {
            if let Some(Some(m)) = masks.get(k) {
                if !matches!(m, sluice_rules::Masking::Hash(_)) {
                    return Err(CaptureError::Check(format!(
                        "filter.mask.\"{}.{}\".{} masks a primary-key column with {m:?}: rows would share keys; use `hash` for key columns (unique values stay unique) or remove it",
                        map.database, map.table, map.columns[k].name
                    )));
                }
            }
        }
        let qualified = format!("{}.{}", map.database, map.table);
        let keys = map.columns.iter().map(|c| json_key(&c.name)).collect();
        self.tables.insert(
            map.table_id,
            Arc::new(Table {
                map,
                publish,
                dropped,
                masks,
                keys,
                qualified,
            }),
        );
        Ok(())
    }

    /// Handles one event (TABLE_MAP excepted: see [`Decoder::add_table`]).
    pub fn handle(
        &mut self,
        h: Header,
        data: &[u8],
        capture_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), CaptureError> {
        let offset = u64::from(h.log_pos.saturating_sub(h.event_size));
        let corrupt = |file: &str, e: Malformed| CaptureError::Corrupt {
            file: file.to_owned(),
            offset,
            detail: e.0,
        };
        match h.event_type {
            code::FORMAT_DESCRIPTION => self.seen_fde = true,
            code::ROTATE => {
                let data = if self.checksums && !self.seen_fde {
                    &data[..data.len().saturating_sub(4)]
                } else {
                    data
                };
                let (file, pos) =
                    mariadb::parse_rotate(data).map_err(|e| corrupt(&self.file, e))?;
                if file != self.file {
                    self.file_arc = Arc::from(file.as_str());
                }
                self.file = file;
                self.pos = pos;
                // Asked for a GTID position, the server names the file it starts in at offset
                // 4 and skips what the replica has: the first exact boundary is the end of the
                // first transaction it sends. A checkpoint before that would resume by file and
                // position at the file's start and repeat what was published.
                let inexact = h.log_pos == 0 && self.boundary.file.is_empty();
                if !self.in_txn && !inexact {
                    self.commit(None, None, out);
                }
                return Ok(());
            }
            code::MARIADB_GTID => {
                let g = MariaGtid::parse(data, h.server_id).map_err(|e| corrupt(&self.file, e))?;
                self.txn_gtid = Some(Arc::from(g.to_string()));
                self.txn_maria = Some(g);
                self.in_txn = true;
            }
            code::MARIADB_GTID_LIST => {
                for g in mariadb::parse_gtid_list(data).map_err(|e| corrupt(&self.file, e))? {
                    self.gtid_state.entry(g.domain).or_insert(g);
                }
            }
            code::MYSQL_GTID => {
                self.txn_gtid = Some(Arc::from(
                    mariadb::parse_mysql_gtid(data).map_err(|e| corrupt(&self.file, e))?,
                ));
                self.in_txn = true;
            }
            code::QUERY => {
                let q = Query::parse(data).map_err(|e| corrupt(&self.file, e))?;
                self.query(h, q, capture_ms, out);
            }
            code::XID => {
                let xid = mariadb::parse_xid(data).map_err(|e| corrupt(&self.file, e))?;
                self.advance(h);
                self.commit(Some(xid), Some(h.timestamp), out);
                return Ok(());
            }
            code::MARIADB_COMPRESSED_FIRST..=code::MARIADB_COMPRESSED_LAST => {
                return Err(CaptureError::Check(format!(
                    "compressed binlog event at {}:{offset}: log_bin_compress is ON; Sluice reads uncompressed binlogs only: SET GLOBAL log_bin_compress=OFF (and in my.cnf), then FLUSH BINARY LOGS",
                    self.file
                )));
            }
            t => {
                if let Some((kind, layout)) = RowsEvent::kind_of(t) {
                    self.rows(h, kind, layout, data, capture_ms, out)
                        .map_err(|e| corrupt(&self.file, e))?;
                }
            }
        }
        self.advance(h);
        Ok(())
    }

    fn advance(&mut self, h: Header) {
        // Artificial events (fake ROTATE, heartbeats) carry log_pos 0.
        if h.log_pos > 0 && h.event_type != code::HEARTBEAT {
            self.pos = u64::from(h.log_pos);
        }
    }

    fn query(&mut self, h: Header, q: Query, capture_ms: i64, out: &mut Vec<Output>) {
        let sql = q.sql.trim();
        let upper: String = sql
            .chars()
            .take(16)
            .collect::<String>()
            .to_ascii_uppercase();
        if upper.starts_with("BEGIN") || upper.starts_with("XA START") {
            self.in_txn = true;
            return;
        }
        if upper.starts_with("COMMIT")
            || upper.starts_with("XA COMMIT")
            || upper.starts_with("ROLLBACK")
            || upper.starts_with("XA END")
            || upper.starts_with("XA PREPARE")
        {
            self.advance(h);
            self.commit(None, Some(h.timestamp), out);
            return;
        }
        // Anything else in a QUERY event under ROW format is DDL (or DCL) and stands alone.
        self.schema_changed = true;
        if self.filter.ddl && !is_noise(&upper) {
            let table = ddl_table(sql).unwrap_or_default();
            let (database, table) = match table.split_once('.') {
                Some((d, t)) => (d.to_owned(), t.to_owned()),
                None => (q.database.clone(), table),
            };
            if table.is_empty() || self.filter.table(&database, &table) {
                let ts_ms = i64::from(h.timestamp) * 1000;
                let ev = ChangeEvent {
                    v: EVENT_VERSION,
                    seq: self.seq.next(ts_ms),
                    source: Source::Binlog,
                    instance: self.instance.to_string(),
                    database,
                    table,
                    kind: EventType::Ddl,
                    ts_ms,
                    capture_ms,
                    pos: Position {
                        file: self.file.clone(),
                        offset: u64::from(h.log_pos.saturating_sub(h.event_size)),
                        row: 0,
                        gtid: self.txn_gtid.as_deref().map(str::to_owned),
                    },
                    xid: None,
                    txn_last: false,
                    pk: Vec::new(),
                    data: Row::new(),
                    old: None,
                    sql: Some(sql.to_owned()),
                };
                self.hold(Output::Event(Box::new(ev)), out);
            }
        }
        let standalone = self.txn_maria.is_none_or(|g| g.standalone);
        if !self.in_txn || standalone {
            self.advance(h);
            self.commit(None, Some(h.timestamp), out);
        }
    }

    /// Ends a transaction (or marks a boundary, `timestamp` `None`): its last event gets
    /// `txn_last`, and a checkpoint follows it. `timestamp` is the commit event's (seconds).
    fn commit(&mut self, xid: Option<u64>, timestamp: Option<u32>, out: &mut Vec<Output>) {
        match self.held.take() {
            Some(Output::Event(mut last)) => {
                last.txn_last = true;
                last.xid = xid;
                out.push(Output::Event(last));
            }
            Some(Output::Row(mut last)) => {
                last.txn_last = true;
                last.xid = xid;
                out.push(Output::Row(last));
            }
            Some(other) => out.push(other),
            None => {}
        }
        if let Some(g) = self.txn_maria.take() {
            self.gtid_state.insert(g.domain, g);
        }
        if let Some(g) = self.txn_gtid.take() {
            if !self.gtid_state.is_empty() || g.contains(':') {
                self.mysql_gtid = g.contains(':').then(|| g.to_string());
            }
        }
        self.in_txn = false;
        if let Some(t) = timestamp.filter(|&t| t > 0) {
            self.commit_ms = Some(i64::from(t) * 1000);
        }
        let cp = Checkpoint {
            file: self.file.clone(),
            pos: self.pos,
            gtid: self.gtid_string(),
            seq: self.seq.last(),
            server: self.server.clone(),
            commit_ms: self.commit_ms,
            ..Checkpoint::default()
        };
        self.boundary = cp.clone();
        out.push(Output::Commit(cp));
    }

    fn gtid_string(&self) -> Option<String> {
        if !self.gtid_state.is_empty() {
            let parts: Vec<String> = self.gtid_state.values().map(|g| g.to_string()).collect();
            return Some(parts.join(","));
        }
        self.mysql_gtid.clone()
    }

    fn set_gtid_state(&mut self, s: &str) {
        self.gtid_state.clear();
        for part in s.split(',') {
            let f: Vec<&str> = part.trim().split('-').collect();
            if let [d, sv, n] = f[..] {
                if let (Ok(domain), Ok(server), Ok(seq)) = (d.parse(), sv.parse(), n.parse()) {
                    self.gtid_state.insert(
                        domain,
                        MariaGtid {
                            domain,
                            server,
                            seq,
                            standalone: false,
                        },
                    );
                }
            }
        }
        if self.gtid_state.is_empty() && s.contains(':') {
            self.mysql_gtid = Some(s.to_owned());
        }
    }

    fn hold(&mut self, ev: Output, out: &mut Vec<Output>) {
        if let Some(prev) = self.held.replace(ev) {
            out.push(prev);
        }
    }
}

/// Statements in QUERY events that change no schema and are not worth a DDL event.
fn is_noise(upper: &str) -> bool {
    [
        "SAVEPOINT",
        "FLUSH",
        "GRANT",
        "REVOKE",
        "SET ",
        "ANALYZE",
        "OPTIMIZE",
        "CREATE USER",
        "DROP USER",
        "ALTER USER",
    ]
    .iter()
    .any(|p| upper.starts_with(p))
}

/// The table a DDL statement is about (`db.table` or `table`), best effort.
fn ddl_table(sql: &str) -> Option<String> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let i = upper.iter().position(|w| w == "TABLE")?;
    let mut j = i + 1;
    while j < upper.len() && matches!(upper[j].as_str(), "IF" | "NOT" | "EXISTS") {
        j += 1;
    }
    let name = words.get(j)?;
    let name = name.split('(').next().unwrap_or(name);
    Some(name.replace('`', "").trim_end_matches(';').to_owned())
}

#[cfg(test)]
mod tests;
