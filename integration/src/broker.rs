//! A private tansu Kafka broker (memory storage) for tests that stop or freeze the broker, which
//! the shared one (scripts/services.sh) must never be. It listens on a free loopback port and
//! advertises that same address, so clients reach it (and only it) after bootstrap. The process
//! is killed when the value is dropped, also when the test fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tansu version `scripts/services.sh` installs (named when tansu is missing).
const TANSU_VERSION: &str = "0.6.0";

/// A running private tansu broker.
pub struct PrivateBroker {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl PrivateBroker {
    /// Starts `tansu broker` with memory storage on a free loopback port and waits until it
    /// answers a metadata request.
    pub async fn start(name: &str) -> Result<PrivateBroker, String> {
        let bin = tansu_binary()?;
        let dir = std::env::temp_dir().join(crate::unique_name(name));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let log = dir.join("tansu.log");
        let port = crate::free_port()?;
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| format!("open {}: {e}", log.display()))?;
        let url = format!("tcp://127.0.0.1:{port}");
        // Run from `/` as services.sh does: tansu resolves storage paths against its cwd.
        let child = Command::new(&bin)
            .current_dir("/")
            .args(["broker", "--cluster-id", name, "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("start {}: {e}", bin.display()))?;
        let mut broker = PrivateBroker { child, port, log };
        broker.wait_ready().await?;
        Ok(broker)
    }

    /// Bootstrap servers, `127.0.0.1:<port>`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
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
        let deadline = Instant::now() + Duration::from_secs(30);
        let brokers = self.brokers();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "tansu exited at start ({status}); its log:\n{}",
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
                    "tansu on {brokers} did not answer metadata within 30 s; its log:\n{}",
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
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

/// The tansu binary: `$SLUICE_TEST_TANSU`, else `tansu` on PATH, else `~/.cargo/bin/tansu`
/// (where `scripts/services.sh up` installs it).
pub fn tansu_binary() -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("SLUICE_TEST_TANSU").filter(|p| !p.is_empty()) {
        candidates.push(PathBuf::from(p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("tansu")));
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = cargo_home {
        candidates.push(home.join("bin").join("tansu"));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        format!(
            "tansu {TANSU_VERSION} not found (tried $SLUICE_TEST_TANSU, PATH, ~/.cargo/bin): \
             run `scripts/services.sh up`, which installs it, or set SLUICE_TEST_TANSU"
        )
    })
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
