//! Events mysql_common leaves unknown (MariaDB's GTID family, ANNOTATE_ROWS) and the plain events
//! the capture reads from raw bytes (QUERY, XID, ROTATE, MySQL GTID).

use super::cursor::{Cursor, Malformed};

/// Binlog event type codes the capture handles itself.
pub mod code {
    pub const QUERY: u8 = 2;
    pub const ROTATE: u8 = 4;
    pub const FORMAT_DESCRIPTION: u8 = 15;
    pub const XID: u8 = 16;
    pub const TABLE_MAP: u8 = 19;
    pub const HEARTBEAT: u8 = 27;
    pub const MYSQL_GTID: u8 = 33;
    pub const TRANSACTION_PAYLOAD: u8 = 40;
    pub const MARIADB_ANNOTATE_ROWS: u8 = 160;
    pub const MARIADB_BINLOG_CHECKPOINT: u8 = 161;
    pub const MARIADB_GTID: u8 = 162;
    pub const MARIADB_GTID_LIST: u8 = 163;
    /// MariaDB's compressed QUERY and rows events (log_bin_compress=ON).
    pub const MARIADB_COMPRESSED_FIRST: u8 = 165;
    pub const MARIADB_COMPRESSED_LAST: u8 = 171;
}

/// MariaDB GTID event: starts a transaction (event group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MariaGtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
    /// The group has no COMMIT/XID of its own (DDL and other standalone statements).
    pub standalone: bool,
}

impl MariaGtid {
    pub fn parse(data: &[u8], server: u32) -> Result<Self, Malformed> {
        let mut c = Cursor::new(data);
        let seq = c.uint_le(8)?;
        let domain = c.u32()?;
        let flags = c.u8()?;
        Ok(MariaGtid {
            domain,
            server,
            seq,
            standalone: flags & 1 != 0,
        })
    }
}

impl std::fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// MariaDB GTID_LIST event: the GTID state at the start of a binlog file.
pub fn parse_gtid_list(data: &[u8]) -> Result<Vec<MariaGtid>, Malformed> {
    let mut c = Cursor::new(data);
    let count = c.u32()? & 0x0fff_ffff;
    let mut out = Vec::new();
    for _ in 0..count {
        let domain = c.u32()?;
        let server = c.u32()?;
        let seq = c.uint_le(8)?;
        out.push(MariaGtid {
            domain,
            server,
            seq,
            standalone: false,
        });
    }
    Ok(out)
}

/// A QUERY event: the default database and the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub database: String,
    pub sql: String,
}

impl Query {
    pub fn parse(data: &[u8]) -> Result<Self, Malformed> {
        let mut c = Cursor::new(data);
        let _thread = c.u32()?;
        let _exec_time = c.u32()?;
        let db_len = usize::from(c.u8()?);
        let _error = c.u16()?;
        let status_len = usize::from(c.u16()?);
        c.take(status_len)?;
        let database = String::from_utf8_lossy(c.take(db_len)?).into_owned();
        c.u8()?;
        let sql = String::from_utf8_lossy(c.rest()).into_owned();
        Ok(Query { database, sql })
    }
}

/// XID event: the commit of a transactional event group.
pub fn parse_xid(data: &[u8]) -> Result<u64, Malformed> {
    Cursor::new(data).uint_le(8)
}

/// ROTATE event: the next binlog file and the position in it.
pub fn parse_rotate(data: &[u8]) -> Result<(String, u64), Malformed> {
    let mut c = Cursor::new(data);
    let pos = c.uint_le(8)?;
    Ok((String::from_utf8_lossy(c.rest()).into_owned(), pos))
}

/// MySQL GTID event as `uuid:gno`.
pub fn parse_mysql_gtid(data: &[u8]) -> Result<String, Malformed> {
    let mut c = Cursor::new(data);
    let _flags = c.u8()?;
    let sid = c.take(16)?;
    let gno = c.uint_le(8)?;
    let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}:{gno}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_gtid_and_list() {
        let mut b = 42u64.to_le_bytes().to_vec();
        b.extend_from_slice(&3u32.to_le_bytes());
        b.push(1);
        let g = MariaGtid::parse(&b, 1).unwrap();
        assert_eq!(g.to_string(), "3-1-42");
        assert!(g.standalone);
        let mut l = 1u32.to_le_bytes().to_vec();
        l.extend_from_slice(&0u32.to_le_bytes());
        l.extend_from_slice(&1u32.to_le_bytes());
        l.extend_from_slice(&7u64.to_le_bytes());
        assert_eq!(parse_gtid_list(&l).unwrap()[0].to_string(), "0-1-7");
        assert!(parse_gtid_list(&[2, 0, 0, 0, 1]).is_err());
    }

    #[test]
    fn query_event() {
        let mut b = vec![1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 2, 0, 9, 9];
        b.extend_from_slice(b"shop\0ALTER TABLE t ADD c INT");
        let q = Query::parse(&b).unwrap();
        assert_eq!(q.database, "shop");
        assert_eq!(q.sql, "ALTER TABLE t ADD c INT");
        assert!(Query::parse(&b[..14]).is_err());
    }
}
