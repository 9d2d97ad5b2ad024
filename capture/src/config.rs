//! The capture's config file (`config/examples/capture.toml` documents every field).

pub mod fleet;
pub mod snapshot;

use regex::Regex;
use serde::Deserialize;
use sluice_config::{KafkaConfig, LogConfig, MetricsConfig, Problems, Secret, TlsMode, Validate};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Default `server_id` the capture registers with; pick one unique among the source's replicas.
pub const DEFAULT_SERVER_ID: u32 = 4242;
/// Default topic template.
pub const DEFAULT_TOPIC: &str = "sluice.{instance}";
/// Default compression codec of produced messages.
pub const DEFAULT_COMPRESSION: &str = "lz4";
/// Partitions of a topic created with `create_topics = true`.
pub const DEFAULT_PARTITIONS: i32 = 6;
/// Messages between the binlog reader and Kafka acknowledgements (memory bound).
pub const DEFAULT_IN_FLIGHT: usize = 20_000;
/// Seconds between heartbeats the source sends when idle.
pub const DEFAULT_HEARTBEAT_SECS: u64 = 5;
/// Directory of the file checkpoint store.
pub const DEFAULT_STATE_DIR: &str = "./sluice-state";
/// Compacted topic of the Kafka checkpoint store.
pub const DEFAULT_CHECKPOINT_TOPIC: &str = "sluice.checkpoints";
/// Milliseconds between checkpoint writes (only ever of acknowledged positions).
pub const DEFAULT_CHECKPOINT_INTERVAL_MS: u64 = 1_000;
/// With `publish.transactional`: a transaction is committed at the first binlog transaction
/// boundary after it has been open this long ...
pub const DEFAULT_TRANSACTION_MS: u64 = 100;
/// ... or holds this many messages.
pub const DEFAULT_TRANSACTION_MESSAGES: usize = 20_000;

/// A whole `capture.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Name of the source instance: in every event, the default topic and the checkpoint key.
    pub instance: String,
    pub source: SourceConfig,
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub publish: PublishConfig,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    #[serde(default)]
    pub filter: FilterConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Snapshots and backfills (docs/snapshots.md); without this section none run.
    #[serde(default)]
    pub snapshot: Option<snapshot::SnapshotConfig>,
    /// The plaintext detector: columns whose values look like personal data (docs/capture.md).
    #[serde(default)]
    pub detect: crate::detect::DetectConfig,
    /// Built-in alerts over the instance and its tables (docs/operations.md).
    #[serde(default)]
    pub alerts: Vec<sluice_ops::alerts::AlertConfig>,
    /// Where alert notices are POSTed.
    #[serde(default)]
    pub webhooks: Vec<sluice_ops::alerts::WebhookConfig>,
}

/// The MySQL/MariaDB server to read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `mysql://user:${MYSQL_PASSWORD}@host:port`; the user needs REPLICATION SLAVE and
    /// REPLICATION CLIENT, and SELECT on information_schema.
    pub url: Secret,
    /// Replica id; unique among all replicas of the source.
    #[serde(default = "default_server_id")]
    pub server_id: u32,
    /// Where a new instance (no checkpoint yet) starts: `end` (default), `oldest`,
    /// `<file>:<pos>` (e.g. `binlog.000003:4`) or `gtid:<state>` (e.g. `gtid:0-1-42`).
    #[serde(default = "default_start")]
    pub start: String,
    /// How a checkpoint resumes: `auto` (default: by position on the server that wrote it, by
    /// GTID on another server when the checkpoint has a GTID state), `position` or `gtid`.
    #[serde(default = "default_resume")]
    pub resume: String,
    /// Seconds between heartbeats from an idle source (lag stays measurable).
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: u64,
    /// Accept binlog_row_image=MINIMAL/NOBLOB (events then carry only the logged columns).
    #[serde(default)]
    pub allow_partial_row_image: bool,
    /// TLS to the server: `disabled`, `preferred` (default: TLS when the server offers it),
    /// `required`, `verify_ca` or `verify_identity`, as the replica target's `tls`.
    #[serde(default)]
    pub tls: TlsMode,
    /// PEM file of the CA that signed the server's certificate, for `verify_ca` and
    /// `verify_identity` (default: the built-in web PKI roots).
    pub ca_file: Option<PathBuf>,
}

/// TLS parameters of a MySQL URL that `source.tls` and `source.ca_file` replace.
const URL_TLS_PARAMETERS: [&str; 4] = [
    "require_ssl",
    "verify_ca",
    "verify_identity",
    "built_in_roots",
];

impl SourceConfig {
    /// Checks the connection settings; `path` is `source` or `instances[i].source`.
    pub fn validate_connection(&self, path: &str, p: &mut Problems) {
        let url = self.url.expose();
        if !url.starts_with("mysql://") {
            p.add(format!("{path}.url"), "must start with mysql://");
        }
        let query = url.split_once('?').map_or("", |(_, q)| q);
        for pair in query.split('&') {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            if URL_TLS_PARAMETERS.contains(&key) {
                p.add(
                    format!("{path}.url"),
                    format!("the URL parameter `{key}` is not used; set TLS with {path}.tls (disabled, preferred, required, verify_ca, verify_identity) and {path}.ca_file"),
                );
            }
        }
        if self.ca_file.is_some() && !self.tls.verifies() {
            p.add(
                format!("{path}.ca_file"),
                format!("only used with {path}.tls = \"verify_ca\" or \"verify_identity\"; set tls or remove ca_file"),
            );
        }
    }
}

/// Where and how events are published.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// Topic template; may use `{instance}`, `{database}`, `{table}`.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Create missing topics (else a missing topic stops the capture with a message).
    #[serde(default)]
    pub create_topics: bool,
    /// Partitions of topics this capture creates.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Replication factor of topics this capture creates.
    #[serde(default = "default_replication")]
    pub replication_factor: i32,
    /// Idempotent producer (no duplicates or reordering from producer retries).
    #[serde(default = "default_true")]
    pub idempotence: bool,
    /// Messages read from the binlog but not yet acknowledged by Kafka, at most.
    #[serde(default = "default_in_flight")]
    pub in_flight: usize,
    /// Exactly once into Kafka: events are published in Kafka transactions with the checkpoint
    /// that covers them (`transactional.id` = `sluice-capture.<instance>`), so a new owner
    /// of the instance fences the old one. Needs `checkpoint.kafka = true`. A fleet sets it.
    #[serde(default)]
    pub transactional: bool,
    /// Milliseconds a transaction stays open at most before it is committed at the next
    /// binlog transaction boundary (latency of read_committed consumers).
    #[serde(default = "default_transaction_ms")]
    pub transaction_ms: u64,
    /// Messages after which a transaction is committed at the next boundary.
    #[serde(default = "default_transaction_messages")]
    pub transaction_messages: usize,
}

/// Where checkpoints are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Directory of `<instance>.checkpoint.json`.
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
    /// Also keep checkpoints in a compacted Kafka topic (key = instance), so another machine
    /// can take over; on start the newer of the two stores wins.
    #[serde(default)]
    pub kafka: bool,
    /// The compacted checkpoint topic.
    #[serde(default = "default_checkpoint_topic")]
    pub topic: String,
    /// Milliseconds between checkpoint writes.
    #[serde(default = "default_checkpoint_interval")]
    pub interval_ms: u64,
    /// Who writes this instance's checkpoints (default: the host name). With
    /// `publish.transactional`, a capture refuses to start while another owner's checkpoint
    /// of the instance is fresh (the other capture is alive), instead of fencing it.
    #[serde(default)]
    pub owner: Option<String>,
}

/// Which changes become events.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Regexes matched against `database.table`; empty means every table.
    #[serde(default)]
    pub include: Vec<String>,
    /// Regexes matched against `database.table`; a match is dropped even if included.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Columns left out of events, per `database.table` (e.g. password hashes).
    #[serde(default)]
    pub drop_columns: BTreeMap<String, Vec<String>>,
    /// Row change types to emit; default all of `INSERT`, `UPDATE`, `DELETE`.
    #[serde(default)]
    pub types: Option<Vec<String>>,
    /// Emit DDL statements as `DDL` events carrying `sql`.
    #[serde(default)]
    pub ddl: bool,
    /// Columns masked before events leave the capture, per `database.table`: `hash` (keyed
    /// HMAC-SHA-256, key from the environment), `mask` or `null` (docs/rules.md, *Masking*).
    #[serde(default)]
    pub mask: BTreeMap<String, BTreeMap<String, sluice_rules::ConvertConfig>>,
}

/// How a checkpoint resumes (`source.resume`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// By position on the server the checkpoint was taken on; by GTID on another one.
    Auto,
    /// Always by binlog file and position.
    Position,
    /// Always by the checkpoint's GTID state.
    Gtid,
}

impl Resume {
    /// Parses `source.resume`.
    pub fn parse(s: &str) -> Result<Resume, String> {
        match s {
            "auto" => Ok(Resume::Auto),
            "position" => Ok(Resume::Position),
            "gtid" => Ok(Resume::Gtid),
            _ => Err(format!(
                "`{s}` is not a resume mode; use \"auto\", \"position\" or \"gtid\""
            )),
        }
    }
}

/// Where to start reading when there is no checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    End,
    Oldest,
    File { file: String, pos: u64 },
    Gtid(String),
}

impl StartAt {
    /// Parses the `source.start` forms.
    pub fn parse(s: &str) -> Result<StartAt, String> {
        match s {
            "end" => Ok(StartAt::End),
            "oldest" => Ok(StartAt::Oldest),
            _ => {
                if let Some(g) = s.strip_prefix("gtid:") {
                    return Ok(StartAt::Gtid(g.to_owned()));
                }
                match s.rsplit_once(':') {
                    Some((file, pos)) if !file.is_empty() => match pos.parse::<u64>() {
                        Ok(pos) if pos >= 4 => Ok(StartAt::File {
                            file: file.to_owned(),
                            pos,
                        }),
                        _ => Err(format!("`{pos}` is not a binlog position (4 or more)")),
                    },
                    _ => Err(format!(
                        "`{s}` is not a start position; use \"end\", \"oldest\", \"<file>:<pos>\" or \"gtid:<state>\""
                    )),
                }
            }
        }
    }
}

impl Validate for CaptureConfig {
    fn validate(&self, p: &mut Problems) {
        sluice_ops::alerts::validate(
            &self.alerts,
            &self.webhooks,
            "database.table names (and the instance's name)",
            p,
        );
        for (table, columns) in &self.filter.mask {
            if table.split('.').count() != 2 {
                p.add(
                    format!("filter.mask.\"{table}\""),
                    "name the table as database.table, e.g. \"shop.users\"",
                );
            }
            for (column, spec) in columns {
                sluice_rules::Masking::compile(
                    spec,
                    &format!("filter.mask.\"{table}\".{column}"),
                    p,
                );
            }
        }
        self.detect.validate(p);
        if self.metrics.max_tables == 0 {
            p.add("metrics.max_tables", "must be at least 1");
        }
        if self.instance.is_empty()
            || !self
                .instance
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            p.add(
                "instance",
                "use letters, digits, `-`, `_` or `.` (it names a topic and a file)",
            );
        }
        self.source.validate_connection("source", p);
        if self.source.server_id == 0 {
            p.add(
                "source.server_id",
                "0 is reserved; pick a number unique among the source's replicas",
            );
        }
        if let Err(e) = StartAt::parse(&self.source.start) {
            p.add("source.start", e);
        }
        if let Err(e) = Resume::parse(&self.source.resume) {
            p.add("source.resume", e);
        }
        if self.source.heartbeat_secs == 0 || self.source.heartbeat_secs > 4_294_967 {
            p.add("source.heartbeat_secs", "must be between 1 and 4294967");
        }
        self.kafka.validate("kafka", p);
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&self.publish.compression.as_str()) {
            p.add("publish.compression", "use none, gzip, snappy, lz4 or zstd");
        }
        if self.publish.topic.is_empty() {
            p.add(
                "publish.topic",
                "empty topic template; the default is \"sluice.{instance}\"",
            );
        }
        if self.publish.partitions < 1 {
            p.add("publish.partitions", "must be 1 or more");
        }
        if self.publish.replication_factor < 1 {
            p.add("publish.replication_factor", "must be 1 or more");
        }
        if self.publish.in_flight < 1 {
            p.add("publish.in_flight", "must be 1 or more");
        }
        for (key, list) in [
            ("include", &self.filter.include),
            ("exclude", &self.filter.exclude),
        ] {
            for (i, r) in list.iter().enumerate() {
                if let Err(e) = Regex::new(r) {
                    p.add(format!("filter.{key}[{i}]"), format!("not a regex: {e}"));
                }
            }
        }
        for table in self.filter.drop_columns.keys() {
            if !table.contains('.') {
                p.add(
                    format!("filter.drop_columns.\"{table}\""),
                    "key must be database.table",
                );
            }
        }
        if let Some(types) = &self.filter.types {
            for (i, t) in types.iter().enumerate() {
                if !["INSERT", "UPDATE", "DELETE"].contains(&t.as_str()) {
                    p.add(
                        format!("filter.types[{i}]"),
                        format!("`{t}` is not INSERT, UPDATE or DELETE"),
                    );
                }
            }
        }
        if self.checkpoint.interval_ms == 0 {
            p.add("checkpoint.interval_ms", "must be 1 or more");
        }
        if self.publish.transactional {
            if !self.checkpoint.kafka {
                p.add(
                    "publish.transactional",
                    "needs checkpoint.kafka = true: the checkpoint is committed in the same Kafka transaction as the events it covers",
                );
            }
            if !self.publish.idempotence {
                p.add(
                    "publish.idempotence",
                    "must stay true with publish.transactional (transactions use the idempotent producer)",
                );
            }
            if self.publish.transaction_ms == 0 || self.publish.transaction_ms > 60_000 {
                p.add("publish.transaction_ms", "must be between 1 and 60000");
            }
            if self.publish.transaction_messages == 0 {
                p.add("publish.transaction_messages", "must be 1 or more");
            }
        }
        if self.checkpoint.owner.as_deref() == Some("") {
            p.add(
                "checkpoint.owner",
                "must not be empty; leave it out for the host name",
            );
        }
        if let Some(s) = &self.snapshot {
            s.validate(&self.filter.include, &self.filter.exclude, p);
        }
    }
}

impl CaptureConfig {
    /// The `transactional.id` of the instance's producer: one per instance, so whoever
    /// captures the instance next fences whoever captured it before.
    pub fn transactional_id(&self) -> String {
        format!("sluice-capture.{}", self.instance)
    }

    /// Who writes the instance's checkpoints: `checkpoint.owner`, else the host name.
    pub fn owner(&self) -> String {
        self.checkpoint.owner.clone().unwrap_or_else(host_name)
    }

    /// The parsed `source.start` (validated at load).
    pub fn start_at(&self) -> StartAt {
        StartAt::parse(&self.source.start).unwrap_or(StartAt::End)
    }

    /// The parsed `source.resume` (validated at load).
    pub fn resume(&self) -> Resume {
        Resume::parse(&self.source.resume).unwrap_or(Resume::Auto)
    }
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            topic: default_topic(),
            compression: default_compression(),
            create_topics: false,
            partitions: DEFAULT_PARTITIONS,
            replication_factor: default_replication(),
            idempotence: true,
            in_flight: DEFAULT_IN_FLIGHT,
            transactional: false,
            transaction_ms: DEFAULT_TRANSACTION_MS,
            transaction_messages: DEFAULT_TRANSACTION_MESSAGES,
        }
    }
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            dir: default_state_dir(),
            kafka: false,
            topic: default_checkpoint_topic(),
            interval_ms: DEFAULT_CHECKPOINT_INTERVAL_MS,
            owner: None,
        }
    }
}

/// The machine's host name (`/proc/sys/kernel/hostname`, `$HOSTNAME`), `localhost` if unknown.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn default_server_id() -> u32 {
    DEFAULT_SERVER_ID
}
fn default_start() -> String {
    "end".to_owned()
}
fn default_resume() -> String {
    "auto".to_owned()
}
fn default_heartbeat() -> u64 {
    DEFAULT_HEARTBEAT_SECS
}
fn default_topic() -> String {
    DEFAULT_TOPIC.to_owned()
}
fn default_compression() -> String {
    DEFAULT_COMPRESSION.to_owned()
}
fn default_partitions() -> i32 {
    DEFAULT_PARTITIONS
}
fn default_replication() -> i32 {
    1
}
fn default_true() -> bool {
    true
}
fn default_in_flight() -> usize {
    DEFAULT_IN_FLIGHT
}
fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}
fn default_checkpoint_topic() -> String {
    DEFAULT_CHECKPOINT_TOPIC.to_owned()
}
fn default_checkpoint_interval() -> u64 {
    DEFAULT_CHECKPOINT_INTERVAL_MS
}
fn default_transaction_ms() -> u64 {
    DEFAULT_TRANSACTION_MS
}
fn default_transaction_messages() -> usize {
    DEFAULT_TRANSACTION_MESSAGES
}

#[cfg(test)]
mod tests;
