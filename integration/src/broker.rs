//! A private Apache Kafka broker for tests that stop, freeze or kill the broker, which the shared
//! one (scripts/services.sh) must never be. It is a single KRaft node (broker and controller in
//! one JVM) from the jars `scripts/services.sh up` copied from Maven Central, with its data in a
//! temp dir, listening on free loopback ports and advertising that same address, so clients
//! reach it (and only it) after bootstrap. The process is killed when the value is dropped, also
//! when the test fails. [`PrivateBroker::start_with_gssapi`] adds a SASL_PLAINTEXT listener that
//! logs clients in with Kerberos (a KDC from [`crate::kdc`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a private broker may take to format its storage and start (a JVM, on a busy
/// 2-core machine running the suite: usually 5 to 10 s).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A running private Kafka broker.
pub struct PrivateBroker {
    child: Child,
    port: u16,
    log: PathBuf,
    /// The jars, the server.properties and the JVM options it runs with, to start it again.
    lib: PathBuf,
    config: PathBuf,
    jvm: Vec<String>,
    /// `host:port` of the GSSAPI listener, when it has one.
    gssapi: Option<String>,
}

/// A Kerberos (SASL/GSSAPI over SASL_PLAINTEXT) listener of a private broker.
pub struct GssapiListener {
    /// The Kerberos config the broker's JVM reads (`-Djava.security.krb5.conf`).
    pub krb5_conf: PathBuf,
    /// The keytab holding the key of `principal`.
    pub keytab: PathBuf,
    /// The broker's principal, `<service>/<host>@REALM`: clients ask for a ticket to
    /// `<service>/<host>`, where `<host>` is the host name the listener advertises.
    pub principal: String,
}

impl PrivateBroker {
    /// Formats a fresh KRaft storage and starts `kafka.Kafka` on a free loopback port; waits
    /// until the broker answers a metadata request.
    pub async fn start(name: &str) -> Result<PrivateBroker, String> {
        Self::start_with(name, None).await
    }

    /// [`PrivateBroker::start`] with a GSSAPI listener besides the PLAINTEXT one (which stays
    /// the inter-broker listener, for readiness and topic set-up).
    pub async fn start_with_gssapi(
        name: &str,
        listener: GssapiListener,
    ) -> Result<PrivateBroker, String> {
        Self::start_with(name, Some(listener)).await
    }

    async fn start_with(
        name: &str,
        gssapi: Option<GssapiListener>,
    ) -> Result<PrivateBroker, String> {
        let lib = kafka_lib()?;
        let dir = std::env::temp_dir().join(crate::unique_name(name));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let port = crate::free_port()?;
        let controller = crate::free_port()?;
        let config = dir.join("server.properties");
        let mut text = properties(&dir, port, controller);
        let mut jvm = Vec::new();
        let mut gssapi_brokers = None;
        if let Some(listener) = &gssapi {
            let gssapi_port = crate::free_port()?;
            let (service, host) = listener
                .principal
                .split_once('@')
                .and_then(|(name, _)| name.split_once('/'))
                .ok_or_else(|| {
                    format!(
                        "{} is not a service principal <service>/<host>@REALM",
                        listener.principal
                    )
                })?;
            text = gssapi_properties(&text, port, gssapi_port, service, host, listener);
            jvm.push(format!(
                "-Djava.security.krb5.conf={}",
                listener.krb5_conf.display()
            ));
            gssapi_brokers = Some(format!("{host}:{gssapi_port}"));
        }
        std::fs::write(&config, text).map_err(|e| format!("write {}: {e}", config.display()))?;
        let log = dir.join("kafka.log");
        format_storage(&lib, &config, &dir.join("format.log"))?;
        let child = spawn(&lib, &config, &log, &jvm)?;
        let mut broker = PrivateBroker {
            child,
            port,
            log,
            lib,
            config,
            jvm,
            gssapi: gssapi_brokers,
        };
        broker.wait_ready().await?;
        Ok(broker)
    }

    /// SIGKILL, then the same broker started again on its data and port (a crashed broker
    /// restarted by its supervisor); waits until it answers.
    pub async fn kill_and_restart(&mut self) -> Result<(), String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&self.lib, &self.config, &self.log, &self.jvm)?;
        self.wait_ready().await
    }

    /// SIGKILL only (restart with [`PrivateBroker::restart`]).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a killed broker again; waits until it answers.
    pub async fn restart(&mut self) -> Result<(), String> {
        self.child = spawn(&self.lib, &self.config, &self.log, &self.jvm)?;
        self.wait_ready().await
    }
}

/// `kafka.Kafka` with `config`, its output appended to `log`.
fn spawn(lib: &Path, config: &Path, log: &Path, jvm: &[String]) -> Result<Child, String> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("open {}: {e}", log.display()))?;
    let log_err = log_file
        .try_clone()
        .map_err(|e| format!("open {}: {e}", log.display()))?;
    Command::new("java")
        .args([
            "-Xms128m",
            "-Xmx384m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
        ])
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .arg("-Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info")
        .args(jvm)
        .arg("-cp")
        .arg(classpath(lib))
        .arg("kafka.Kafka")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .spawn()
        .map_err(|e| format!("start java (Kafka from {}): {e}", lib.display()))
}

impl PrivateBroker {
    /// Bootstrap servers, `127.0.0.1:<port>`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Bootstrap servers of the GSSAPI listener, `<host>:<port>` with the host of the broker's
    /// principal, when it was started with one.
    pub fn gssapi_brokers(&self) -> Option<String> {
        self.gssapi.clone()
    }

    /// The broker's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGSTOP: the process stops answering but keeps its sockets and its data, which to a
    /// client looks like a network partition (requests hang; nothing is refused).
    pub fn freeze(&self) -> Result<(), String> {
        crate::process::signal(self.child.id(), "STOP")
    }

    /// SIGCONT: the broker resumes and answers what queued up in its sockets.
    pub fn thaw(&self) -> Result<(), String> {
        crate::process::signal(self.child.id(), "CONT")
    }

    /// The broker's own log, for a failure message.
    pub fn log_tail(&self) -> String {
        crate::process::tail(&self.log, 30)
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let brokers = self.brokers();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "Kafka exited at start ({status}); its log:\n{}",
                    self.log_tail()
                ));
            }
            let b = brokers.clone();
            let answered = tokio::task::spawn_blocking(move || metadata_answers(&b))
                .await
                .unwrap_or(false);
            if answered {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "Kafka on {brokers} did not answer metadata within {} s; its log:\n{}",
                    START_TIMEOUT.as_secs(),
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too; wait() reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The folder of Kafka's jars: `$SLUICE_TEST_KAFKA_LIB`, else `<state>/kafka/lib` where
/// `scripts/services.sh up` puts them (`<state>` is `$SLUICE_STATE_DIR` or `<repo>/.state`).
pub fn kafka_lib() -> Result<PathBuf, String> {
    let lib = std::env::var_os("SLUICE_TEST_KAFKA_LIB")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::state_dir().join("kafka").join("lib"));
    let has_kafka = std::fs::read_dir(&lib).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("kafka_2.13-"))
    });
    if has_kafka {
        Ok(lib)
    } else {
        Err(format!(
            "Kafka's jars are not in {}: run `scripts/services.sh up`, which copies them from \
             Maven Central, or set SLUICE_TEST_KAFKA_LIB to a folder holding kafka_2.13-*.jar \
             and its dependencies",
            lib.display()
        ))
    }
}

fn classpath(lib: &Path) -> String {
    format!("{}/*", lib.display())
}

/// One node, both roles, PLAINTEXT only; everything internal with one replica; a short
/// rebalance delay and small thread pools, as the shared broker has.
fn properties(dir: &Path, port: u16, controller: u16) -> String {
    format!(
        "process.roles=broker,controller\n\
         node.id=1\n\
         controller.quorum.voters=1@127.0.0.1:{controller}\n\
         controller.listener.names=CONTROLLER\n\
         listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
         advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
         listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
         inter.broker.listener.name=PLAINTEXT\n\
         log.dirs={}\n\
         num.network.threads=2\n\
         num.io.threads=2\n\
         offsets.topic.replication.factor=1\n\
         offsets.topic.num.partitions=1\n\
         transaction.state.log.replication.factor=1\n\
         transaction.state.log.min.isr=1\n\
         share.coordinator.state.topic.replication.factor=1\n\
         share.coordinator.state.topic.min.isr=1\n\
         group.initial.rebalance.delay.ms=0\n",
        dir.join("data").display()
    )
}

/// `base` (the PLAINTEXT properties) with a listener named GSSAPI on 127.0.0.1:`gssapi` that
/// advertises `host` (the host part of the broker's principal, which clients ask tickets for).
fn gssapi_properties(
    base: &str,
    plain: u16,
    gssapi: u16,
    service: &str,
    host: &str,
    listener: &GssapiListener,
) -> String {
    let mut text = String::new();
    for line in base.lines() {
        let line = if line.starts_with("listeners=") {
            line.replacen(
                ",CONTROLLER:",
                &format!(",GSSAPI://127.0.0.1:{gssapi},CONTROLLER:"),
                1,
            )
        } else if line.starts_with("advertised.listeners=") {
            format!("advertised.listeners=PLAINTEXT://127.0.0.1:{plain},GSSAPI://{host}:{gssapi}")
        } else if line.starts_with("listener.security.protocol.map=") {
            format!("{line},GSSAPI:SASL_PLAINTEXT")
        } else {
            line.to_owned()
        };
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str(&format!(
        "sasl.enabled.mechanisms=GSSAPI\n\
         sasl.kerberos.service.name={service}\n\
         listener.name.gssapi.gssapi.sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true storeKey=true keyTab=\"{}\" principal=\"{}\";\n",
        listener.keytab.display(),
        listener.principal
    ));
    text
}

/// `kafka.tools.StorageTool format` with a fixed cluster id (the broker is alone).
fn format_storage(lib: &Path, config: &Path, log: &Path) -> Result<(), String> {
    let out = Command::new("java")
        .args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp"])
        .arg(classpath(lib))
        .args([
            "kafka.tools.StorageTool",
            "format",
            "-t",
            "iWdnm2rIRZWtApyNhS-58A",
            "-c",
        ])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run java (Kafka's StorageTool from {}): {e}", lib.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::write(log, &text);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "formatting the private broker's storage failed:\n{text}"
        ))
    }
}

fn metadata_answers(brokers: &str) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: Result<BaseConsumer, _> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create();
    consumer
        .map(|c| c.fetch_metadata(None, Duration::from_secs(2)).is_ok())
        .unwrap_or(false)
}
