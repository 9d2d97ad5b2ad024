//! Debezium's MariaDB connector on a Kafka Connect standalone worker, streaming one table of the
//! shared test server into the shared broker, as teams that run Debezium run it. The jars are the
//! ones `scripts/services.sh up` copied from Maven Central (bench/peers/debezium/pom.xml). The
//! worker is killed when the value is dropped, also when the test fails.
//!
//! The connector streams a fixed binlog range: it is created STOPPED, its offset is set to the
//! start position through Connect's REST API, then it is resumed (bench/peers/debezium.sh says
//! why: the MariaDB connector asks for its binlog by GTID, so the offset carries
//! `BINLOG_GTID_POS` of the position, and `snapshot.mode=recovery` records the tables' current
//! schema and then streams from that offset). A test can thus write its whole workload first and
//! have Debezium read it from the binlog afterwards, without racing the connector's start-up.

use mysql_async::prelude::Queryable;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the worker may take to start, scan its classpath and create the connector (a JVM
/// on a busy 2-core machine running the suite).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// What to stream.
#[derive(Debug, Clone)]
pub struct Stream<'a> {
    /// The connector's `topic.prefix`; records go to `<prefix>.<database>.<table>`.
    pub prefix: &'a str,
    pub database: &'a str,
    pub table: &'a str,
    /// The binlog position to stream from, `(file, offset)` (`crate::mysql::binlog_end`).
    pub from: (String, u64),
}

/// A running Connect worker with the MariaDB connector.
pub struct DebeziumConnect {
    child: Child,
    port: u16,
    name: String,
    log: PathBuf,
}

impl DebeziumConnect {
    /// Starts the worker with the connector for `stream`, sets its start offset and resumes
    /// it; returns once the connector's task runs. Key and value carry Connect's schema
    /// (`schemas.enable=true`), DECIMALs are exact (`precise`), and every column's source type
    /// is propagated, so temporal columns keep their declared fraction digits.
    pub async fn start(stream: &Stream<'_>) -> Result<DebeziumConnect, String> {
        let lib = debezium_lib()?;
        let dir = std::env::temp_dir().join(crate::unique_name("debezium"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let port = crate::free_port()?;
        let name = format!("sluice-test-{}", stream.prefix.replace('_', "-"));
        let worker = dir.join("worker.properties");
        write(&worker, &worker_properties(&dir, port))?;
        let connector = dir.join("connector.json");
        write(
            &connector,
            &connector_json(&name, stream, &dir)?.to_string(),
        )?;
        let gtids = gtids_at(&stream.from).await?;
        let log = dir.join("connect.log");
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| format!("open {}: {e}", log.display()))?;
        // A small heap and the C1 compiler only: the worker streams a few hundred rows, and on
        // two cores its start-up (classpath scan, JIT) is what takes the time.
        let child = Command::new("java")
            .args([
                "-Xms128m",
                "-Xmx512m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true",
            ])
            .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
            .arg("-cp")
            .arg(format!("{}/*", lib.display()))
            .arg("org.apache.kafka.connect.cli.ConnectStandalone")
            .arg(&worker)
            .arg(&connector)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("start java (Kafka Connect from {}): {e}", lib.display()))?;
        let mut connect = DebeziumConnect {
            child,
            port,
            name,
            log,
        };
        connect
            .resume_at(&stream.from, &gtids, stream.prefix)
            .await?;
        Ok(connect)
    }

    /// The worker's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The worker's log, for a failure message.
    pub fn log_tail(&self) -> String {
        crate::process::tail(&self.log, 40)
    }

    /// The connector's status from Connect's REST API (`{"connector":{"state":…},"tasks":[…]}`),
    /// for a failure message.
    pub async fn status(&self) -> String {
        match reqwest::get(self.url("status")).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => format!("no status: {e}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/connectors/{}/{path}",
            self.port, self.name
        )
    }

    /// Waits for the connector to exist (STOPPED), sets its offset, resumes it and waits for its
    /// task to run.
    async fn resume_at(
        &mut self,
        (file, pos): &(String, u64),
        gtids: &str,
        prefix: &str,
    ) -> Result<(), String> {
        let http = reqwest::Client::new();
        self.wait_state(&http, "STOPPED").await?;
        let offsets = json!({"offsets": [{
            "partition": {"server": prefix},
            "offset": {"file": file, "pos": pos, "gtids": gtids}
        }]});
        let r = http
            .patch(self.url("offsets"))
            .json(&offsets)
            .send()
            .await
            .map_err(|e| format!("PATCH the connector's offsets: {e}"))?;
        if !r.status().is_success() {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            return Err(format!(
                "setting the connector's start offset failed (HTTP {status}): {body}; log:\n{}",
                self.log_tail()
            ));
        }
        let r = http
            .put(self.url("resume"))
            .send()
            .await
            .map_err(|e| format!("PUT resume: {e}"))?;
        if !r.status().is_success() {
            return Err(format!(
                "resuming the connector failed (HTTP {}); log:\n{}",
                r.status(),
                self.log_tail()
            ));
        }
        self.wait_state(&http, "RUNNING").await
    }

    /// Polls the status until the connector (and, for RUNNING, its task) is in `state`; fails
    /// when the worker exits, a task fails, or [`START_TIMEOUT`] passes.
    async fn wait_state(&mut self, http: &reqwest::Client, state: &str) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = String::new();
        loop {
            if let Ok(Some(exit)) = self.child.try_wait() {
                return Err(format!(
                    "the Connect worker exited ({exit}) before its connector was {state}; log:\n{}",
                    self.log_tail()
                ));
            }
            if let Ok(r) = http.get(self.url("status")).send().await {
                let body: Value = r.json().await.unwrap_or(Value::Null);
                let tasks = body["tasks"].as_array().cloned().unwrap_or_default();
                if tasks.iter().any(|t| t["state"] == "FAILED") {
                    return Err(format!(
                        "the connector's task failed: {}; log:\n{}",
                        body,
                        self.log_tail()
                    ));
                }
                let tasks_ok = state != "RUNNING"
                    || (!tasks.is_empty() && tasks.iter().all(|t| t["state"] == state));
                if body["connector"]["state"] == state && tasks_ok {
                    return Ok(());
                }
                last = body.to_string();
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the connector was not {state} within {} s (status: {last}); log:\n{}",
                    START_TIMEOUT.as_secs(),
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for DebeziumConnect {
    fn drop(&mut self) {
        // The worker's state (offsets, schema history) is in its temp dir and never reused, so
        // nothing needs a clean shutdown.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The folder of the Debezium and Connect jars: `$SLUICE_TEST_DEBEZIUM_LIB`, else
/// `<state>/peers/debezium/lib`, where `scripts/services.sh up` puts them.
pub fn debezium_lib() -> Result<PathBuf, String> {
    let lib = std::env::var_os("SLUICE_TEST_DEBEZIUM_LIB")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::state_dir().join("peers/debezium/lib"));
    let has_connector = std::fs::read_dir(&lib).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("debezium-connector-mariadb-")
        })
    });
    if has_connector {
        Ok(lib)
    } else {
        Err(format!(
            "Debezium's jars are not in {}: run `scripts/services.sh up`, which copies them from \
             Maven Central, or set SLUICE_TEST_DEBEZIUM_LIB to a folder holding \
             debezium-connector-mariadb-*.jar, connect-runtime and their dependencies",
            lib.display()
        ))
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

fn worker_properties(dir: &Path, port: u16) -> String {
    // No plugin.path: the connector is on the worker's classpath, which only_scan finds.
    format!(
        "bootstrap.servers={brokers}\n\
         key.converter=org.apache.kafka.connect.json.JsonConverter\n\
         value.converter=org.apache.kafka.connect.json.JsonConverter\n\
         key.converter.schemas.enable=true\n\
         value.converter.schemas.enable=true\n\
         offset.storage.file.filename={dir}/offsets.dat\n\
         offset.flush.interval.ms=1000\n\
         listeners=http://127.0.0.1:{port}\n\
         plugin.discovery=only_scan\n",
        brokers = crate::kafka_brokers(),
        dir = dir.display(),
    )
}

fn connector_json(name: &str, s: &Stream<'_>, dir: &Path) -> Result<Value, String> {
    let url = crate::mysql_url();
    let opts = mysql_async::Opts::from_url(&url).map_err(|e| format!("{url}: {e}"))?;
    // Each binlog reader of a server needs its own server id; the suite runs tests in parallel.
    let server_id = 7_100 + std::process::id() % 800 + rand::random_range(0..1_000) * 1_000;
    Ok(json!({
        "name": name,
        "initial_state": "STOPPED",
        "config": {
            "connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
            "tasks.max": "1",
            "database.hostname": opts.ip_or_hostname(),
            "database.port": opts.tcp_port().to_string(),
            "database.user": opts.user().unwrap_or_default(),
            "database.password": opts.pass().unwrap_or_default(),
            "database.server.id": server_id.to_string(),
            "topic.prefix": s.prefix,
            "database.include.list": s.database,
            "table.include.list": format!("{}\\.{}", s.database, s.table),
            "snapshot.mode": "recovery",
            "snapshot.locking.mode": "none",
            "include.schema.changes": "false",
            "decimal.handling.mode": "precise",
            "column.propagate.source.type": ".*",
            // Without this, Debezium reads years 0-99 as 2000-2069 and 1970-1999 (its
            // two-digit-year adjuster), so DATE '0001-01-01' arrives as 2001-01-01.
            "enable.time.adjuster": "false",
            "schema.history.internal": "io.debezium.storage.file.history.FileSchemaHistory",
            "schema.history.internal.file.filename": format!("{}/schema-history.dat", dir.display()),
            "schema.history.internal.store.only.captured.tables.ddl": "true",
            "topic.creation.default.partitions": "1",
            "topic.creation.default.replication.factor": "1"
        }
    }))
}

/// MariaDB's GTID state at binlog position `from` (what the connector's offset needs).
async fn gtids_at((file, pos): &(String, u64)) -> Result<String, String> {
    let mut c = crate::mysql::conn().await;
    let gtids: Option<Option<String>> = c
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file, pos))
        .await
        .map_err(|e| format!("BINLOG_GTID_POS({file}, {pos}): {e}"))?;
    gtids.flatten().ok_or_else(|| {
        format!("MariaDB has no GTID position for {file}:{pos} (BINLOG_GTID_POS gave NULL)")
    })
}
