//! A private Redis server for tests that kill and restart it (the shared one from
//! scripts/services.sh must keep running): Debian's `redis-server` on a free loopback port, its
//! data in a temp dir, with an append-only file synced on every write so that what it
//! acknowledged survives a SIGKILL.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// A running private Redis; killed and removed when dropped.
pub struct PrivateRedis {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl PrivateRedis {
    /// Starts `redis-server`; waits until it answers PING.
    pub async fn start(name: &str) -> Result<PrivateRedis, String> {
        let dir = std::env::temp_dir().join(crate::unique_name(name));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let port = crate::free_port()?;
        let child = spawn(&dir, port)?;
        let server = PrivateRedis { child, dir, port };
        server.wait_ready().await?;
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, then the same server started again on its data; waits until it answers.
    pub async fn kill_and_restart(&mut self) -> Result<(), String> {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        self.child = spawn(&self.dir, self.port)?;
        self.wait_ready().await
    }

    async fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = async {
                let client = redis::Client::open(self.url()).ok()?;
                let mut c = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING").query_async::<String>(&mut c).await.ok()
            }
            .await;
            if ok.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                return Err(format!("private Redis did not start:\n{log}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(dir: &std::path::Path, port: u16) -> Result<Child, String> {
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--dir")
        .arg(dir)
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ])
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("start redis-server (scripts/services.sh installs it): {e}"))
}
