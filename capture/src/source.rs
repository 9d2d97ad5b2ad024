//! The replication client: connects to MySQL/MariaDB, runs the start-up checks, registers as a
//! replica and opens the binlog stream; plus the information_schema lookups decoding needs.

use crate::binlog::{Charset, TableMap};
use crate::checkpoint::Checkpoint;
use crate::config::SourceConfig;
use crate::error::CaptureError;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Opts};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// The server family, from `version()`; they differ in GTIDs and a few events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    MySql,
}

/// How to reach the source and how to register with it.
#[derive(Debug, Clone)]
pub struct SourceClient {
    opts: Opts,
    /// `host:port`, for messages.
    pub addr: String,
    server_id: u32,
    heartbeat_secs: u64,
}

/// The outcome of one start-up check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckStatus {
    Ok,
    Warn,
    Fail,
}

/// One start-up check: what was checked and what to do about it.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: &'static str,
    pub status: CheckStatus,
    pub message: String,
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.status {
            CheckStatus::Ok => "ok  ",
            CheckStatus::Warn => "WARN",
            CheckStatus::Fail => "FAIL",
        };
        write!(f, "[{s}] {}: {}", self.name, self.message)
    }
}

/// The server facts the checks need.
#[derive(Debug, Clone, Default)]
pub struct ServerFacts {
    pub version: String,
    pub variables: HashMap<String, String>,
    pub grants: Vec<String>,
    /// `SHOW BINARY LOGS`: file names, oldest first.
    pub binlogs: Vec<String>,
}

impl SourceClient {
    /// Reads the connection settings (nothing is opened yet).
    pub fn new(cfg: &SourceConfig) -> Result<SourceClient, CaptureError> {
        let opts = Opts::from_url(cfg.url.expose()).map_err(|e| {
            CaptureError::Check(format!(
                "source.url is not a MySQL URL: {e}; write mysql://user:password@host:port"
            ))
        })?;
        let addr = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
        Ok(SourceClient {
            opts,
            addr,
            server_id: cfg.server_id,
            heartbeat_secs: cfg.heartbeat_secs,
        })
    }

    /// A plain SQL connection.
    pub async fn connect(&self) -> Result<Conn, CaptureError> {
        Conn::new(self.opts.clone()).await.map_err(|e| self.err(e))
    }

    pub(crate) fn err(&self, source: mysql_async::Error) -> CaptureError {
        CaptureError::Mysql {
            addr: self.addr.clone(),
            source,
        }
    }

    /// Version, replication variables, grants and binlog files.
    pub async fn facts(&self, conn: &mut Conn) -> Result<ServerFacts, CaptureError> {
        let version: Option<String> = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| self.err(e))?;
        let rows: Vec<(String, String)> = conn
            .query("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin','binlog_format','binlog_row_image','binlog_row_metadata','log_bin_compress','binlog_checksum','binlog_transaction_compression','gtid_binlog_pos','gtid_executed','server_id')")
            .await
            .map_err(|e| self.err(e))?;
        let grants: Vec<String> = conn.query("SHOW GRANTS").await.map_err(|e| self.err(e))?;
        let binlogs: Vec<mysql_async::Row> =
            conn.query("SHOW BINARY LOGS").await.unwrap_or_default();
        Ok(ServerFacts {
            version: version.unwrap_or_default(),
            variables: rows
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            grants,
            binlogs: binlogs
                .iter()
                .filter_map(|r| r.get::<String, _>(0))
                .collect(),
        })
    }

    /// The position the server will write next (`SHOW MASTER STATUS`).
    pub async fn current_end(&self, conn: &mut Conn) -> Result<(String, u64), CaptureError> {
        let row: Option<mysql_async::Row> = conn
            .query_first("SHOW MASTER STATUS")
            .await
            .map_err(|e| self.err(e))?;
        row.and_then(|r| Some((r.get::<String, _>(0)?, r.get::<u64, _>(1)?)))
            .ok_or_else(|| {
                CaptureError::Check(format!(
                    "SHOW MASTER STATUS on {} returned nothing: the binary log is off; set log_bin in my.cnf and restart the server",
                    self.addr
                ))
            })
    }

    /// Registers as a replica and streams from `from` (file/pos), or from a MariaDB GTID state.
    /// The server ends the stream at the end of its binlog when `until_end` is set, and also
    /// when `until` is a position it has already written: the reader stops there, and a dump
    /// thread that had been left waiting for new events would linger on the server.
    pub async fn stream(
        &self,
        flavor: Flavor,
        from: &Checkpoint,
        gtid: Option<&str>,
        until_end: bool,
        until: Option<(&str, u64)>,
    ) -> Result<DumpStream, CaptureError> {
        let mut conn = self.connect().await?;
        let thread = conn.id();
        let non_blocking = until_end
            || match until {
                Some((file, pos)) => {
                    let (end_file, end_pos) = self.current_end(&mut conn).await?;
                    (file, pos) <= (end_file.as_str(), end_pos)
                }
                None => false,
            };
        let period_ns = self.heartbeat_secs.saturating_mul(1_000_000_000);
        conn.query_drop(format!("SET @master_heartbeat_period = {period_ns}"))
            .await
            .map_err(|e| self.err(e))?;
        if flavor == Flavor::MariaDb {
            // 4 = MARIA_SLAVE_CAPABILITY_GTID: send GTID, GTID_LIST and ANNOTATE_ROWS events as
            // they are instead of replacing them with dummies.
            conn.query_drop("SET @mariadb_slave_capability = 4")
                .await
                .map_err(|e| self.err(e))?;
        }
        let mut req = BinlogStreamRequest::new(self.server_id);
        if let Some(state) = gtid {
            if flavor != Flavor::MariaDb {
                return Err(CaptureError::Check(
                    "starting from a GTID is supported on MariaDB only in this version; on MySQL start from \"<file>:<pos>\" (SHOW BINARY LOGS)".into(),
                ));
            }
            if !state
                .chars()
                .all(|c| c.is_ascii_digit() || c == '-' || c == ',')
            {
                return Err(CaptureError::Check(format!(
                    "`{state}` is not a MariaDB GTID state; write domain-server-seq[,...], e.g. 0-1-42"
                )));
            }
            for q in [
                format!("SET @slave_connect_state = '{state}'"),
                "SET @slave_gtid_strict_mode = 0".to_owned(),
                "SET @slave_gtid_ignore_duplicates = 0".to_owned(),
            ] {
                conn.query_drop(q).await.map_err(|e| self.err(e))?;
            }
        } else {
            req = req.with_filename(from.file.as_bytes()).with_pos(from.pos);
        }
        if non_blocking {
            req = req.with_non_blocking();
        }
        let stream = conn.get_binlog_stream(req).await.map_err(|e| self.err(e))?;
        Ok(DumpStream {
            stream,
            thread,
            non_blocking,
        })
    }

    /// Ends the dump thread of a stream the capture stopped reading. A dump thread that waits
    /// for new events notices a closed connection only when it next writes (an event or a
    /// heartbeat); until then it counts as a replica, and the next registration with the same
    /// `server_id` waits ~100 ms for it to go (measured on MariaDB 10.11). Best effort: the
    /// server ends it by itself later anyway.
    pub async fn end_dump(&self, dump: DumpStream) {
        if dump.non_blocking {
            return;
        }
        let thread = dump.thread;
        drop(dump);
        let kill = async {
            let mut conn = self.connect().await?;
            conn.query_drop(format!("KILL CONNECTION {thread}"))
                .await
                .map_err(|e| self.err(e))?;
            conn.disconnect().await.map_err(|e| self.err(e))
        };
        match tokio::time::timeout(std::time::Duration::from_secs(2), kill).await {
            Ok(Ok(())) => tracing::debug!(thread, "ended the binlog dump thread"),
            Ok(Err(e)) => {
                tracing::debug!(thread, error = %e, "could not end the binlog dump thread")
            }
            Err(_) => tracing::debug!(thread, "ending the binlog dump thread timed out"),
        }
    }
}

/// A binlog stream and the server thread that sends it.
pub struct DumpStream {
    pub stream: BinlogStream,
    /// The connection id of the dump thread.
    thread: u32,
    /// The server ends the stream by itself at the end of its binlog.
    pub non_blocking: bool,
}

impl ServerFacts {
    /// MariaDB or MySQL.
    pub fn flavor(&self) -> Flavor {
        if self.version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.variables.get(name).map(String::as_str)
    }

    /// Every start-up check, each with a fix in its message. `position` is the file the capture
    /// would start from (checkpoint or configured start), if it names one.
    pub fn checks(
        &self,
        addr: &str,
        allow_partial_image: bool,
        position: Option<&str>,
    ) -> Vec<CheckResult> {
        let mut out = Vec::new();
        let mut add = |name, status, message: String| {
            out.push(CheckResult {
                name,
                status,
                message,
            })
        };
        add(
            "server",
            CheckStatus::Ok,
            format!("{addr} runs {} ({:?})", self.version, self.flavor()),
        );
        match self.var("log_bin") {
            Some(v) if v.eq_ignore_ascii_case("ON") => add("log_bin", CheckStatus::Ok, "ON".into()),
            v => add(
                "log_bin",
                CheckStatus::Fail,
                format!("log_bin is {} on {addr}; Sluice reads the binary log: add log_bin (and server_id) to my.cnf and restart the server", v.unwrap_or("OFF")),
            ),
        }
        match self.var("binlog_format") {
            Some(v) if v.eq_ignore_ascii_case("ROW") => add("binlog_format", CheckStatus::Ok, "ROW".into()),
            v => add(
                "binlog_format",
                CheckStatus::Fail,
                format!("binlog_format is {} on {addr}; Sluice needs ROW: SET GLOBAL binlog_format=ROW (and in my.cnf)", v.unwrap_or("unknown")),
            ),
        }
        match self.var("binlog_row_image") {
            Some(v) if v.eq_ignore_ascii_case("FULL") => add("binlog_row_image", CheckStatus::Ok, "FULL".into()),
            v if allow_partial_image => add(
                "binlog_row_image",
                CheckStatus::Warn,
                format!("binlog_row_image is {}; events carry only the logged columns (source.allow_partial_row_image = true)", v.unwrap_or("unknown")),
            ),
            v => add(
                "binlog_row_image",
                CheckStatus::Fail,
                format!("binlog_row_image is {} on {addr}; sinks need whole rows: SET GLOBAL binlog_row_image=FULL (and in my.cnf), or set source.allow_partial_row_image = true to accept partial rows", v.unwrap_or("unknown")),
            ),
        }
        match self.var("binlog_row_metadata") {
            Some(v) if v.eq_ignore_ascii_case("FULL") => add("binlog_row_metadata", CheckStatus::Ok, "FULL".into()),
            v => add(
                "binlog_row_metadata",
                CheckStatus::Warn,
                format!("binlog_row_metadata is {} on {addr}; column names come from information_schema instead, which is wrong while a schema change is replicated: SET GLOBAL binlog_row_metadata=FULL (and in my.cnf)", v.unwrap_or("unsupported")),
            ),
        }
        let compressed = self
            .var("log_bin_compress")
            .is_some_and(|v| v.eq_ignore_ascii_case("ON"));
        if compressed {
            add("log_bin_compress", CheckStatus::Fail, format!("log_bin_compress is ON on {addr}; Sluice reads uncompressed binlogs only: SET GLOBAL log_bin_compress=OFF (and in my.cnf), then FLUSH BINARY LOGS"));
        } else {
            add("log_bin_compress", CheckStatus::Ok, "OFF".into());
        }
        let grants = self.grants.join("\n").to_ascii_uppercase();
        let all = grants.contains("ALL PRIVILEGES");
        let slave = all || grants.contains("REPLICATION SLAVE");
        let client = all
            || grants.contains("REPLICATION CLIENT")
            || grants.contains("BINLOG MONITOR")
            || grants.contains("SUPER");
        if slave && client {
            add(
                "grants",
                CheckStatus::Ok,
                "REPLICATION SLAVE and REPLICATION CLIENT".into(),
            );
        } else {
            add("grants", CheckStatus::Fail, format!("the user lacks {}{}: GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO <user> (MariaDB 10.5+: BINLOG MONITOR for REPLICATION CLIENT)", if slave { "" } else { "REPLICATION SLAVE " }, if client { "" } else { "REPLICATION CLIENT" }));
        }
        if let Some(file) = position {
            if self.binlogs.is_empty() || self.binlogs.iter().any(|f| f == file) {
                add(
                    "position",
                    CheckStatus::Ok,
                    format!("{file} is on the server"),
                );
            } else {
                let oldest = self.binlogs.first().map(String::as_str).unwrap_or("none");
                add("position", CheckStatus::Fail, format!("{file} is no longer on {addr} (purged?); the oldest binlog there is {oldest}. Changes in between are lost to this capture: take a fresh snapshot and start with source.start = \"end\", or start from \"oldest\" accepting the gap, after moving the checkpoint file away"));
            }
        }
        out
    }
}

/// Column facts from information_schema, for MariaDB JSON columns and servers without
/// binlog_row_metadata=FULL.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub name: String,
    pub unsigned: bool,
    pub charset: Charset,
    pub members: Vec<String>,
    pub json_text: bool,
}

/// information_schema lookups, cached per table until the next DDL.
pub struct SchemaCache {
    conn: Option<Conn>,
    tables: HashMap<(String, String), (Vec<ColumnInfo>, Vec<String>)>,
    pub flavor: Flavor,
}

impl SchemaCache {
    pub fn new(flavor: Flavor) -> SchemaCache {
        SchemaCache {
            conn: None,
            tables: HashMap::new(),
            flavor,
        }
    }

    /// Forgets every table after a schema change.
    pub fn clear(&mut self) {
        self.tables.clear();
    }

    /// Fills in what the TABLE_MAP did not carry: JSON columns on MariaDB, and everything
    /// but the types when binlog_row_metadata is not FULL (checking the column count).
    pub async fn enrich(
        &mut self,
        client: &SourceClient,
        map: &mut TableMap,
    ) -> Result<(), CaptureError> {
        if map.full_metadata && self.flavor == Flavor::MySql {
            return Ok(());
        }
        let key = (map.database.clone(), map.table.clone());
        if !self.tables.contains_key(&key) {
            if self.conn.is_none() {
                self.conn = Some(client.connect().await?);
            }
            let Some(conn) = self.conn.as_mut() else {
                return Ok(());
            };
            let info = match lookup(conn, &key.0, &key.1).await {
                Ok(i) => i,
                Err(e) => {
                    self.conn = None;
                    return Err(client.err(e));
                }
            };
            self.tables.insert(key.clone(), info);
        }
        let Some((cols, pk)) = self.tables.get(&key) else {
            return Ok(());
        };
        if map.full_metadata {
            for c in map.columns.iter_mut() {
                c.json_text = cols.iter().any(|i| i.json_text && i.name == c.name);
            }
            return Ok(());
        }
        if cols.len() != map.columns.len() {
            return Err(CaptureError::Check(format!(
                "{}.{}: the binlog has {} columns but information_schema has {}: the table changed after this event was written, and without binlog_row_metadata=FULL its columns cannot be named safely. SET GLOBAL binlog_row_metadata=FULL on the source; to continue, start past this event",
                map.database, map.table, map.columns.len(), cols.len()
            )));
        }
        for (c, i) in map.columns.iter_mut().zip(cols) {
            c.name = i.name.clone();
            c.unsigned = i.unsigned;
            c.charset = i.charset;
            c.members = i.members.clone();
            c.json_text = i.json_text;
        }
        map.pk = pk
            .iter()
            .filter_map(|n| map.columns.iter().position(|c| &c.name == n))
            .collect();
        map.refresh_pk_names();
        Ok(())
    }
}

type Lookup = (Vec<ColumnInfo>, Vec<String>);

async fn lookup(conn: &mut Conn, db: &str, table: &str) -> Result<Lookup, mysql_async::Error> {
    let rows: Vec<(String, String, Option<String>, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await?;
    let json: HashSet<String> = if rows.iter().any(|r| r.3.eq_ignore_ascii_case("longtext")) {
        let checks: Vec<String> = conn
            .exec(
                "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
                (db, table),
            )
            .await
            .unwrap_or_default();
        checks.iter().filter_map(|c| json_valid_column(c)).collect()
    } else {
        HashSet::new()
    };
    let pk: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await?;
    let cols = rows
        .into_iter()
        .map(|(name, column_type, charset, data_type)| {
            let lower = column_type.to_ascii_lowercase();
            let charset = match charset.as_deref() {
                Some("latin1") => Charset::Latin1,
                Some(_) => Charset::Utf8,
                None if [
                    "char",
                    "varchar",
                    "text",
                    "tinytext",
                    "mediumtext",
                    "longtext",
                ]
                .contains(&data_type.as_str()) =>
                {
                    Charset::Utf8
                }
                None => Charset::Binary,
            };
            ColumnInfo {
                json_text: json.contains(&name) || data_type.eq_ignore_ascii_case("json"),
                unsigned: lower.contains("unsigned"),
                members: if lower.starts_with("enum(") || lower.starts_with("set(") {
                    members(&column_type)
                } else {
                    Vec::new()
                },
                charset,
                name,
            }
        })
        .collect();
    Ok((cols, pk))
}

/// `json_valid(`col`)` → `col`.
fn json_valid_column(clause: &str) -> Option<String> {
    let rest = clause.trim().strip_prefix("json_valid(")?;
    let inner = rest.strip_suffix(')')?;
    Some(inner.trim_matches('`').to_owned())
}

/// Member names of `enum('a','b''c')` / `set(...)`.
fn members(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let body = column_type[open + 1..].trim_end_matches(')');
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_str = false;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match (in_str, c) {
            (false, '\'') => in_str = true,
            (true, '\'') if chars.peek() == Some(&'\'') => {
                cur.push('\'');
                chars.next();
            }
            (true, '\'') => {
                in_str = false;
                out.push(std::mem::take(&mut cur));
            }
            (true, c) => cur.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(vars: &[(&str, &str)], grants: &[&str]) -> ServerFacts {
        ServerFacts {
            version: "10.11.6-MariaDB".into(),
            variables: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            grants: grants.iter().map(|g| g.to_string()).collect(),
            binlogs: vec!["binlog.000002".into(), "binlog.000003".into()],
        }
    }

    #[test]
    fn every_check_names_a_fix() {
        let bad = facts(
            &[
                ("log_bin", "OFF"),
                ("binlog_format", "STATEMENT"),
                ("binlog_row_image", "MINIMAL"),
                ("binlog_row_metadata", "MINIMAL"),
                ("log_bin_compress", "ON"),
            ],
            &["GRANT SELECT ON *.* TO `u`@`%`"],
        );
        let results = bad.checks("h:1", false, Some("binlog.000001"));
        let fails: Vec<&CheckResult> = results
            .iter()
            .filter(|r| r.status == CheckStatus::Fail)
            .collect();
        let names: Vec<&str> = fails.iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            [
                "log_bin",
                "binlog_format",
                "binlog_row_image",
                "log_bin_compress",
                "grants",
                "position"
            ]
        );
        assert!(fails[1].message.contains("SET GLOBAL binlog_format=ROW"));
        assert!(fails[5]
            .message
            .contains("oldest binlog there is binlog.000002"));
        assert!(results
            .iter()
            .any(|r| r.name == "binlog_row_metadata" && r.status == CheckStatus::Warn));
        let good = facts(
            &[
                ("log_bin", "ON"),
                ("binlog_format", "ROW"),
                ("binlog_row_image", "FULL"),
                ("binlog_row_metadata", "FULL"),
                ("log_bin_compress", "OFF"),
            ],
            &["GRANT ALL PRIVILEGES ON *.* TO `u`@`%`"],
        );
        assert!(good
            .checks("h:1", false, Some("binlog.000003"))
            .iter()
            .all(|r| r.status == CheckStatus::Ok));
        assert_eq!(good.flavor(), Flavor::MariaDb);
    }

    #[test]
    fn enum_members_and_json_checks() {
        assert_eq!(members("enum('a','b''c','')"), vec!["a", "b'c", ""]);
        assert_eq!(
            json_valid_column("json_valid(`doc`)").as_deref(),
            Some("doc")
        );
        assert_eq!(json_valid_column("`x` > 0"), None);
    }
}
