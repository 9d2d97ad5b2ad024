//! Helpers shared by the end-to-end tests: where the local services are, unique names, topics.
//!
//! Every address has a loopback default matching `scripts/services.sh` and an environment
//! variable to point the tests at external services instead (docs/testing.md).

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod broker;
pub mod capture;
pub mod chaos;
pub mod debezium;
pub mod es;
pub mod events;
pub mod fleet;
pub mod http_proxy;
pub mod kafka;
pub mod kdc;
pub mod mariadb;
pub mod mysql;
pub mod process;
pub mod redis_server;
pub mod server_tls;
pub mod sink;
pub mod tcp_proxy;
pub mod wait;

pub use process::kill9;

/// MariaDB/MySQL URL of a user with all privileges (source and replica target).
pub fn mysql_url() -> String {
    var_or(
        "SLUICE_TEST_MYSQL_URL",
        "mysql://sluice:sluice@127.0.0.1:3307",
    )
}

/// Kafka bootstrap servers.
pub fn kafka_brokers() -> String {
    var_or("SLUICE_TEST_KAFKA", "127.0.0.1:9092")
}

/// Bootstrap servers of the SASL_SSL listener (SCRAM-SHA-512, the broker's certificate signed by
/// [`kafka_ca`]), on the same cluster as [`kafka_brokers`].
pub fn kafka_sasl_brokers() -> String {
    var_or("SLUICE_TEST_KAFKA_SASL", "127.0.0.1:9093")
}

/// The SCRAM user of [`kafka_sasl_brokers`].
pub fn kafka_sasl_user() -> String {
    var_or("SLUICE_TEST_KAFKA_USER", "sluice")
}

/// The password of [`kafka_sasl_user`].
pub fn kafka_sasl_password() -> String {
    var_or("SLUICE_TEST_KAFKA_PASSWORD", "sluice-secret")
}

/// Bootstrap servers of the SSL listener that requires a client certificate (mTLS).
pub fn kafka_mtls_brokers() -> String {
    var_or("SLUICE_TEST_KAFKA_MTLS", "127.0.0.1:9094")
}

/// PEM file of the CA that signed the brokers' (and the test client's) certificates.
pub fn kafka_ca() -> PathBuf {
    path_or("SLUICE_TEST_KAFKA_CA", "kafka/tls/ca.pem")
}

/// PEM client certificate the mTLS listener accepts.
pub fn kafka_client_cert() -> PathBuf {
    path_or("SLUICE_TEST_KAFKA_CLIENT_CERT", "kafka/tls/client.pem")
}

/// Unencrypted PEM key of [`kafka_client_cert`].
pub fn kafka_client_key() -> PathBuf {
    path_or("SLUICE_TEST_KAFKA_CLIENT_KEY", "kafka/tls/client.key")
}

/// Redis URL.
pub fn redis_url() -> String {
    var_or("SLUICE_TEST_REDIS_URL", "redis://127.0.0.1:6380")
}

/// Seed nodes of the Redis Cluster (three masters): `SLUICE_TEST_REDIS_CLUSTER`, URLs separated
/// by commas.
pub fn redis_cluster_urls() -> Vec<String> {
    var_or(
        "SLUICE_TEST_REDIS_CLUSTER",
        "redis://127.0.0.1:6390,redis://127.0.0.1:6391,redis://127.0.0.1:6392",
    )
    .split(',')
    .map(|u| u.trim().to_owned())
    .filter(|u| !u.is_empty())
    .collect()
}

/// Elasticsearch/OpenSearch base URL.
pub fn es_url() -> String {
    var_or("SLUICE_TEST_ES_URL", "http://127.0.0.1:9200")
}

/// The folder `scripts/services.sh` keeps its state in: `$SLUICE_STATE_DIR`, else `<repo>/.state`.
pub fn state_dir() -> PathBuf {
    std::env::var_os("SLUICE_STATE_DIR")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.state"))
}

fn var_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The file named by the variable `name`, else `default` under [`state_dir`].
fn path_or(name: &str, default: &str) -> PathBuf {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| state_dir().join(default))
}

/// A name no other test (in this run or an earlier one) uses: `prefix_<time>_<pid>_<n>`,
/// lower-case and `[a-z0-9_]`, valid as a database, table, topic, index or key prefix.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{prefix}_{}_{}_{n}", secs % 1_000_000, std::process::id())
}

/// Creates a topic with `partitions` partitions (replication factor 1) and waits until the
/// broker reports it.
pub async fn create_topic(topic: &str, partitions: i32) -> Result<(), String> {
    create_topic_on(&kafka_brokers(), topic, partitions).await
}

/// [`create_topic`] on the broker(s) `brokers` rather than the shared test broker.
pub async fn create_topic_on(brokers: &str, topic: &str, partitions: i32) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| format!("admin client: {e}"))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(|e| format!("create topic {topic}: {e}"))?;
    for r in results {
        r.map_err(|(t, e)| format!("create topic {t}: {e}"))?;
    }
    for _ in 0..50 {
        let md = admin
            .inner()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .map_err(|e| format!("metadata for {topic}: {e}"))?;
        if md
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.partitions().len() == partitions as usize)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "topic {topic} did not appear with {partitions} partitions"
    ))
}

/// `target/debug/<name>`, a workspace binary built beforehand (`scripts/test.sh` builds them;
/// by hand: `cargo build -p <package>`). End-to-end tests run it as a process.
pub fn workspace_binary(name: &str, package: &str) -> PathBuf {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target_dir.join("debug").join(name);
    assert!(
        bin.exists(),
        "{} not found: build it first with `cargo build -p {package}` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// Writes `text` to `<file>` in a new directory named after `prefix` under the temp dir, so a
/// process's config, logs and state stay together; returns the file's path.
pub fn write_temp_file(prefix: &str, file: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name(prefix));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    let path = dir.join(file);
    std::fs::write(&path, text).expect("write a temp file");
    path
}

/// A loopback port no process listens on now, for a private server of a test.
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("find a free loopback port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("find a free loopback port: {e}"))
}

/// Whether `key` exists, through a connection to one Redis node or to a cluster.
pub async fn redis_exists(conn: &mut impl redis::aio::ConnectionLike, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<i64>(conn)
        .await
        .unwrap_or_else(|e| panic!("EXISTS {key}: {e}"))
        == 1
}
