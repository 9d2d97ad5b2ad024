//! `migrate --by time`: the first transaction in a server's binlog committed at or after a
//! time. Pure: the binlog events are fed in by `migrate`.

use crate::binlog::mariadb::{self, code, MariaGtid, Query};
use crate::decoder::Header;
use crate::gtid::MariaState;

/// Of binlog files listed oldest first, each with its first event's timestamp (seconds), the
/// newest that was begun at or before `threshold_ms`: every transaction committed at or after
/// the threshold was written to it or a later file. `None` when even the oldest is newer.
pub fn start_file(first_events: &[(String, u32)], threshold_ms: i64) -> Option<usize> {
    first_events
        .iter()
        .rposition(|(_, ts)| i64::from(*ts) * 1000 <= threshold_ms)
}

/// A transaction boundary to continue from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Binlog file and offset of the transaction's first event (its GTID or BEGIN).
    pub file: String,
    pub pos: u64,
    /// Commit time of the transaction that starts there, ms; `None` at the end of the binlog.
    pub commit_ms: Option<i64>,
    /// MariaDB: the GTID state before that transaction.
    pub gtid: Option<String>,
}

/// Follows transaction boundaries through binlog events, from the start of a file, until a
/// transaction commits at or after `threshold_ms`.
#[derive(Debug)]
pub struct TimeSearch {
    threshold_ms: i64,
    file: String,
    /// End offset of the last event.
    pos: u64,
    /// Where the open transaction began.
    start: Option<u64>,
    /// The open transaction began with BEGIN (it ends with COMMIT or XID).
    begun: bool,
    /// The open transaction's MariaDB GTID.
    gtid: Option<MariaGtid>,
    /// MariaDB GTID state before the open transaction.
    state: MariaState,
}

impl TimeSearch {
    /// A search reading `file` from its start.
    pub fn new(threshold_ms: i64, file: &str) -> TimeSearch {
        TimeSearch {
            threshold_ms,
            file: file.to_owned(),
            pos: 4,
            start: None,
            begun: false,
            gtid: None,
            state: MariaState::default(),
        }
    }

    /// Looks at one event; returns the boundary once a transaction commits at or after the
    /// threshold. Bytes it cannot parse are skipped: only boundaries and times matter here.
    pub fn event(&mut self, h: Header, data: &[u8]) -> Option<Found> {
        // Artificial events (the leading ROTATE, heartbeats) carry no position.
        if h.log_pos == 0 || h.event_type == code::HEARTBEAT {
            return None;
        }
        let offset = u64::from(h.log_pos.saturating_sub(h.event_size));
        let mut found = None;
        match h.event_type {
            code::ROTATE => {
                if let Ok((file, pos)) = mariadb::parse_rotate(data) {
                    self.file = file;
                    self.pos = pos;
                }
                return None;
            }
            code::MARIADB_GTID_LIST => {
                for g in mariadb::parse_gtid_list(data).unwrap_or_default() {
                    self.state.apply(g);
                }
            }
            code::MARIADB_GTID => {
                self.start = Some(offset);
                self.begun = false;
                self.gtid = MariaGtid::parse(data, h.server_id).ok();
            }
            code::MYSQL_GTID => {
                self.start = Some(offset);
                self.begun = false;
                self.gtid = None;
            }
            code::XID => found = self.commit(h),
            code::QUERY => {
                let sql = Query::parse(data).map(|q| q.sql).unwrap_or_default();
                let upper = sql
                    .trim_start()
                    .chars()
                    .take(8)
                    .collect::<String>()
                    .to_ascii_uppercase();
                if upper.starts_with("BEGIN") || upper.starts_with("XA START") {
                    self.start.get_or_insert(offset);
                    self.begun = true;
                } else if upper.starts_with("COMMIT") || upper.starts_with("ROLLBACK") {
                    found = self.commit(h);
                } else if !self.begun {
                    // A statement of its own (DDL): its own transaction.
                    self.start.get_or_insert(offset);
                    found = self.commit(h);
                }
            }
            _ => {}
        }
        self.pos = u64::from(h.log_pos);
        found
    }

    /// The end of what was read, when no transaction was recent enough.
    pub fn end(&self) -> Found {
        Found {
            file: self.file.clone(),
            pos: self.pos,
            commit_ms: None,
            gtid: self.gtid_state(),
        }
    }

    fn commit(&mut self, h: Header) -> Option<Found> {
        let start = self.start.take()?;
        self.begun = false;
        let commit_ms = i64::from(h.timestamp) * 1000;
        if commit_ms >= self.threshold_ms {
            return Some(Found {
                file: self.file.clone(),
                pos: start,
                commit_ms: Some(commit_ms),
                gtid: self.gtid_state(),
            });
        }
        if let Some(g) = self.gtid.take() {
            self.state.apply(g);
        }
        None
    }

    fn gtid_state(&self) -> Option<String> {
        (!self.state.is_empty()).then(|| self.state.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(event_type: u8, timestamp: u32, log_pos: u32, event_size: u32) -> Header {
        Header {
            event_type,
            timestamp,
            server_id: 2,
            log_pos,
            event_size,
        }
    }

    fn query(sql: &str) -> Vec<u8> {
        // thread id, exec time, db len 0, error code, status vars len 0, db "\0", sql.
        let mut b = vec![0u8; 4 + 4 + 1 + 2 + 2];
        b.push(0);
        b.extend_from_slice(sql.as_bytes());
        b
    }

    fn gtid(seq: u64) -> Vec<u8> {
        let mut b = seq.to_le_bytes().to_vec();
        b.extend_from_slice(&0u32.to_le_bytes());
        b.push(0);
        b
    }

    /// One MariaDB transaction of `size` bytes ending at `end`: GTID, BEGIN, a rows event, XID.
    fn txn(s: &mut TimeSearch, seq: u64, begin_ts: u32, commit_ts: u32, end: u32) -> Option<Found> {
        let start = end - 100;
        let events = [
            (h(code::MARIADB_GTID, begin_ts, start + 40, 40), gtid(seq)),
            (h(code::QUERY, begin_ts, start + 70, 30), query("BEGIN")),
            (h(30, begin_ts, start + 90, 20), vec![0; 8]),
            (
                h(code::XID, commit_ts, end, 10),
                7u64.to_le_bytes().to_vec(),
            ),
        ];
        events.into_iter().find_map(|(hd, data)| s.event(hd, &data))
    }

    #[test]
    fn the_first_transaction_committed_at_or_after_the_threshold() {
        let mut s = TimeSearch::new(1_000_000, "binlog.000002");
        // The stream's artificial ROTATE, then the file's GTID_LIST.
        let mut rotate = 4u64.to_le_bytes().to_vec();
        rotate.extend_from_slice(b"binlog.000002");
        assert_eq!(s.event(h(code::ROTATE, 0, 0, 40), &rotate), None);
        let mut list = 1u32.to_le_bytes().to_vec();
        list.extend_from_slice(&0u32.to_le_bytes());
        list.extend_from_slice(&1u32.to_le_bytes());
        list.extend_from_slice(&41u64.to_le_bytes());
        assert_eq!(
            s.event(h(code::MARIADB_GTID_LIST, 990, 300, 40), &list),
            None
        );
        assert_eq!(txn(&mut s, 42, 990, 998, 400), None);
        // Began before the threshold, committed after it: this one.
        let found = txn(&mut s, 43, 999, 1000, 500);
        assert_eq!(
            found,
            Some(Found {
                file: "binlog.000002".into(),
                pos: 400,
                commit_ms: Some(1_000_000),
                gtid: Some("0-2-42".into()),
            })
        );
    }

    #[test]
    fn rotations_standalone_statements_and_the_end() {
        let mut s = TimeSearch::new(2_000_000, "binlog.000001");
        assert_eq!(txn(&mut s, 1, 10, 10, 200), None);
        let mut rotate = 4u64.to_le_bytes().to_vec();
        rotate.extend_from_slice(b"binlog.000002");
        assert_eq!(s.event(h(code::ROTATE, 11, 250, 50), &rotate), None);
        // DDL: a GTID and the statement, no BEGIN.
        assert_eq!(s.event(h(code::MARIADB_GTID, 12, 300, 40), &gtid(2)), None);
        assert_eq!(
            s.event(
                h(code::QUERY, 12, 400, 100),
                &query("CREATE TABLE t (id INT)")
            ),
            None
        );
        assert_eq!(
            s.end(),
            Found {
                file: "binlog.000002".into(),
                pos: 400,
                commit_ms: None,
                gtid: Some("0-2-2".into()),
            }
        );
        // Without GTIDs (MySQL with gtid_mode OFF) BEGIN starts the transaction.
        let mut m = TimeSearch::new(5_000, "mysql-bin.000009");
        assert_eq!(m.event(h(code::QUERY, 5, 150, 50), &query("BEGIN")), None);
        let found = m.event(h(code::XID, 5, 230, 30), &1u64.to_le_bytes());
        assert_eq!(found.map(|f| (f.pos, f.gtid)), Some((100, None)));
    }

    #[test]
    fn the_start_file_is_the_newest_begun_early_enough() {
        let files = [
            ("b.1".to_owned(), 100),
            ("b.2".to_owned(), 200),
            ("b.3".to_owned(), 300),
        ];
        assert_eq!(start_file(&files, 250_000), Some(1));
        assert_eq!(start_file(&files, 300_000), Some(2));
        assert_eq!(start_file(&files, 999_000), Some(2));
        assert_eq!(start_file(&files, 99_000), None);
    }
}
