//! The replication client: connects to MySQL/MariaDB, registers as a replica, opens the binlog.
//!
//! The start-up checks are in `checks`, the information_schema lookups decoding needs in
//! `schema`.

mod checks;
mod schema;

pub use checks::{CheckResult, CheckStatus, Flavor, ServerFacts};
pub use schema::{ColumnInfo, SchemaCache};

use crate::checkpoint::Checkpoint;
use crate::config::SourceConfig;
use crate::error::CaptureError;
use crate::gtid::MariaState;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Opts, OptsBuilder, SslOpts};
use sluice_config::TlsMode;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How to reach the source and how to register with it.
#[derive(Clone)]
pub struct SourceClient {
    /// With the password: never printed (the `Debug` below leaves it out).
    opts: Opts,
    /// `tls = "preferred"`: the same options without TLS, for a server that offers none.
    plain: Option<Opts>,
    /// Set once the server turned out to offer no TLS, so later connections go plain at once.
    no_tls: Arc<AtomicBool>,
    tls: TlsMode,
    ca_file: Option<PathBuf>,
    /// `host:port`, for messages.
    pub addr: String,
    server_id: u32,
    heartbeat_secs: u64,
}

impl fmt::Debug for SourceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceClient")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("server_id", &self.server_id)
            .finish_non_exhaustive()
    }
}

impl SourceClient {
    /// Reads the connection settings and the CA file (nothing is opened yet).
    pub fn new(cfg: &SourceConfig) -> Result<SourceClient, CaptureError> {
        let url = Opts::from_url(cfg.url.expose()).map_err(|e| {
            CaptureError::Check(format!(
                "source.url is not a MySQL URL: {e}; write mysql://user:password@host:port"
            ))
        })?;
        let addr = format!("{}:{}", url.ip_or_hostname(), url.tcp_port());
        let tls = tls_opts(cfg.tls, cfg.ca_file.as_deref())?;
        let plain = (cfg.tls == TlsMode::Preferred)
            .then(|| Opts::from(OptsBuilder::from_opts(url.clone()).ssl_opts(None)));
        let opts = Opts::from(OptsBuilder::from_opts(url).ssl_opts(tls));
        Ok(SourceClient {
            opts,
            plain,
            no_tls: Arc::new(AtomicBool::new(false)),
            tls: cfg.tls,
            ca_file: cfg.ca_file.clone(),
            addr,
            server_id: cfg.server_id,
            heartbeat_secs: cfg.heartbeat_secs,
        })
    }

    /// A plain SQL connection, over TLS as `source.tls` says.
    pub async fn connect(&self) -> Result<Conn, CaptureError> {
        if let Some(plain) = &self.plain {
            if self.no_tls.load(Ordering::Relaxed) {
                return Conn::new(plain.clone())
                    .await
                    .map_err(|e| self.connect_err(e));
            }
        }
        match Conn::new(self.opts.clone()).await {
            Ok(conn) => Ok(conn),
            Err(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer,
            )) if self.plain.is_some() => {
                tracing::debug!(source = %self.addr, "the server offers no TLS; tls = \"preferred\" connects in plaintext");
                self.no_tls.store(true, Ordering::Relaxed);
                let plain = self.plain.clone().unwrap_or_else(|| self.opts.clone());
                Conn::new(plain).await.map_err(|e| self.connect_err(e))
            }
            Err(e) => Err(self.connect_err(e)),
        }
    }

    /// Whether connections go without TLS: `disabled`, or `preferred` to a server without it.
    fn plaintext(&self) -> bool {
        self.tls == TlsMode::Disabled || self.no_tls.load(Ordering::Relaxed)
    }

    /// A failed connection: TLS failures and a server that requires TLS as definite errors
    /// naming `source.tls` / `source.ca_file`, anything else as [`CaptureError::Mysql`].
    fn connect_err(&self, e: mysql_async::Error) -> CaptureError {
        let ca = match &self.ca_file {
            Some(path) => format!("the CA in source.ca_file ({})", path.display()),
            None => "a built-in root CA (source.ca_file is not set)".to_owned(),
        };
        let text = e.to_string();
        let message = match &e {
            mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) => {
                format!(
                    "MySQL/MariaDB at {}: the server does not offer TLS, but source.tls is \"{}\": give the server a certificate (ssl_cert, ssl_key in my.cnf), or set source.tls = \"preferred\" or \"disabled\"",
                    self.addr, self.tls
                )
            }
            mysql_async::Error::Server(s) if is_insecure_transport(s) => format!(
                "MySQL/MariaDB at {} requires TLS (require_secure_transport), but source.tls is \"{}\": set source.tls = \"verify_identity\" (or \"verify_ca\") and source.ca_file to the CA that signed the server's certificate ({})",
                self.addr, self.tls, s.message
            ),
            // MariaDB refuses a plaintext login under require_secure_transport as access denied.
            mysql_async::Error::Server(s) if s.code == 1045 && self.plaintext() => format!(
                "MySQL/MariaDB at {}: {}: check the user and password in source.url; a server that requires TLS (require_secure_transport) refuses plaintext logins with this error too, and this connection was plaintext (source.tls is \"{}\"): then set source.tls = \"verify_identity\" (or \"verify_ca\") and source.ca_file",
                self.addr, s.message, self.tls
            ),
            _ if text.contains("NotValidForName") => format!(
                "the TLS certificate of MySQL/MariaDB at {} does not name {}: connect by a name or address the certificate has, or set source.tls = \"verify_ca\" to check only who signed it ({text})",
                self.addr,
                self.opts.ip_or_hostname()
            ),
            _ if text.contains("invalid peer certificate") || text.contains("UnknownIssuer") => {
                format!(
                    "the TLS certificate of MySQL/MariaDB at {} is not signed by {ca}: point source.ca_file at the CA that signed the server's certificate, with source.tls = \"{}\" ({text})",
                    self.addr, self.tls
                )
            }
            mysql_async::Error::Io(mysql_async::IoError::Tls(_)) => format!(
                "TLS to MySQL/MariaDB at {} failed with source.tls = \"{}\": {text}",
                self.addr, self.tls
            ),
            _ => return self.err(e),
        };
        CaptureError::Check(message)
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
            .query("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin','binlog_format','binlog_row_image','binlog_row_metadata','binlog_row_value_options','log_bin_compress','binlog_checksum','binlog_transaction_compression','gtid_binlog_pos','gtid_executed','server_id')")
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

    /// Which server this is, as checkpoints record it: MariaDB `mariadb:<server_id>@<hostname>:<port>`
    /// (MariaDB has no server UUID), MySQL `mysql:<server_uuid>`. A replica promoted to primary
    /// keeps its identity, which differs from its old primary's.
    pub async fn identity(&self, conn: &mut Conn, flavor: Flavor) -> Result<String, CaptureError> {
        match flavor {
            Flavor::MariaDb => {
                let row: Option<(u64, String, u64)> = conn
                    .query_first("SELECT @@server_id, @@hostname, @@port")
                    .await
                    .map_err(|e| self.err(e))?;
                let (id, host, port) = row.unwrap_or_default();
                Ok(format!("mariadb:{id}@{host}:{port}"))
            }
            Flavor::MySql => {
                let uuid: Option<String> = conn
                    .query_first("SELECT @@server_uuid")
                    .await
                    .map_err(|e| self.err(e))?;
                Ok(format!("mysql:{}", uuid.unwrap_or_default()))
            }
        }
    }

    /// Whether this MariaDB server's binlog holds every transaction after the GTID state
    /// `state` and the state's own transactions (`gtid::continues`): `Ok(Ok(what it has))`, e.g.
    /// "domain 0 up to 0-2-57", or `Ok(Err(why not))`.
    pub async fn continues_gtid(
        &self,
        conn: &mut Conn,
        facts: &ServerFacts,
        state: &str,
    ) -> Result<Result<String, String>, CaptureError> {
        let wanted = match MariaState::parse(state) {
            Ok(w) => w,
            Err(e) => return Ok(Err(format!("the checkpoint's GTID state: {e}"))),
        };
        let row: Option<(String, String)> = conn
            .query_first("SELECT @@gtid_binlog_pos, @@gtid_binlog_state")
            .await
            .map_err(|e| self.err(e))?;
        let (pos_text, state_text) = row.unwrap_or_default();
        let Some(oldest_file) = facts.binlogs.first() else {
            return Ok(Err(format!("{} lists no binlog files", self.addr)));
        };
        let oldest_text: Option<Option<String>> = conn
            .exec_first("SELECT BINLOG_GTID_POS(?, 4)", (oldest_file,))
            .await
            .map_err(|e| self.err(e))?;
        let oldest_text = oldest_text.flatten().unwrap_or_default();
        let parsed = (
            MariaState::parse(&pos_text),
            crate::gtid::parse_list(&state_text),
            MariaState::parse(&oldest_text),
        );
        let (Ok(binlog_pos), Ok(binlog_state), Ok(oldest)) = parsed else {
            return Ok(Err(format!(
                "the GTID position `{pos_text}` and state `{state_text}` of {} cannot be read",
                self.addr
            )));
        };
        if let Err(gap) = crate::gtid::continues(&wanted, &binlog_pos, &binlog_state, &oldest) {
            return Ok(Err(format!(
                "{} cannot continue GTID {state}: {gap}",
                self.addr
            )));
        }
        let has: Vec<String> = wanted
            .iter()
            .filter_map(|g| binlog_pos.get(g.domain))
            .map(|g| format!("domain {} up to {g}", g.domain))
            .collect();
        Ok(Ok(has.join(", ")))
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

    /// Registers as a replica and streams from `from` (file/pos), or from a GTID position: a
    /// MariaDB GTID state, or a MySQL GTID set (COM_BINLOG_DUMP_GTID; not yet run against a
    /// live MySQL server).
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
        if let (Some(set), Flavor::MySql) = (gtid, flavor) {
            // COM_BINLOG_DUMP_GTID: the server sends every transaction not in the set.
            let sids = crate::gtid::mysql_sids(set).map_err(|e| {
                CaptureError::Check(format!(
                    "`{set}` is not a MySQL GTID set ({e}); give the executed set, e.g. SELECT @@gtid_executed"
                ))
            })?;
            req = req.with_gtid().with_gtid_set(sids);
        } else if let Some(state) = gtid {
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

/// MariaDB's and MySQL's refusal of a plaintext connection under `require_secure_transport`.
fn is_insecure_transport(e: &mysql_async::ServerError) -> bool {
    e.code == 3159 || e.message.contains("insecure transport")
}

/// The TLS options of `source.tls`: none for `disabled`; for `preferred` and `required` no check
/// of the certificate; for `verify_ca` its signature by `ca_file` (or the built-in roots), and
/// for `verify_identity` also the host name.
fn tls_opts(
    mode: TlsMode,
    ca_file: Option<&std::path::Path>,
) -> Result<Option<SslOpts>, CaptureError> {
    let opts = SslOpts::default();
    let opts = match mode {
        TlsMode::Disabled => return Ok(None),
        TlsMode::Preferred | TlsMode::Required => opts
            .with_danger_accept_invalid_certs(true)
            .with_danger_skip_domain_validation(true),
        TlsMode::VerifyCa => opts.with_danger_skip_domain_validation(true),
        TlsMode::VerifyIdentity => opts,
    };
    let Some(path) = ca_file else {
        return Ok(Some(opts));
    };
    let pem = std::fs::read(path).map_err(|e| {
        CaptureError::Check(format!(
            "source.ca_file ({}) cannot be read: {e}; give the PEM file of the CA that signed the server's certificate",
            path.display()
        ))
    })?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(CaptureError::Check(format!(
            "source.ca_file ({}) holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the PEM file of the CA that signed the server's certificate",
            path.display()
        )));
    }
    // Only the configured CA: a server certificate from any public CA is not the source's.
    Ok(Some(
        opts.with_root_certs(vec![pem.into()])
            .with_disable_built_in_roots(true),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::Secret;

    fn source(url: &str, tls: TlsMode, ca_file: Option<PathBuf>) -> SourceConfig {
        SourceConfig {
            url: Secret::new(url),
            server_id: 1,
            start: "end".into(),
            resume: "auto".into(),
            heartbeat_secs: 5,
            allow_partial_row_image: false,
            tls,
            ca_file,
        }
    }

    #[test]
    fn the_client_never_prints_the_password() {
        let cfg = source("mysql://u:pw-marker-1@h:3306", TlsMode::Preferred, None);
        let client = SourceClient::new(&cfg).unwrap();
        let text = format!("{client:?} {cfg:?}");
        assert!(!text.contains("pw-marker-1"), "{text}");
        assert!(text.contains("h:3306"), "{text}");
    }

    #[test]
    fn a_ca_file_that_is_missing_or_not_pem_is_named() {
        let missing = PathBuf::from("/nonexistent/ca.pem");
        let cfg = source("mysql://u@h:3306", TlsMode::VerifyCa, Some(missing));
        let err = SourceClient::new(&cfg).unwrap_err().to_string();
        assert!(
            err.starts_with("source.ca_file (/nonexistent/ca.pem) cannot be read: "),
            "{err}"
        );
        let not_pem = std::env::temp_dir().join(format!("sluice-ca-{}.txt", std::process::id()));
        std::fs::write(&not_pem, "hello").unwrap();
        let cfg = source(
            "mysql://u@h:3306",
            TlsMode::VerifyIdentity,
            Some(not_pem.clone()),
        );
        let err = SourceClient::new(&cfg).unwrap_err().to_string();
        let _ = std::fs::remove_file(&not_pem);
        assert!(err.contains("holds no PEM certificate"), "{err}");
    }
}
