//! A private, throw-away MariaDB server for tests that need server settings the shared one
//! (scripts/services.sh) must not have: binlog off, STATEMENT format, MINIMAL row images or
//! metadata, compressed binlogs. It has its own data directory under the temp dir and a free
//! loopback port, and it is killed and removed when the value is dropped.

use mysql_async::prelude::Queryable;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// A running private MariaDB; `url()` is a `sluice` user with all privileges over TCP.
pub struct PrivateMariaDb {
    child: Child,
    dir: PathBuf,
    port: u16,
    /// The extra arguments it was started with, to start it again.
    args: Vec<String>,
}

impl PrivateMariaDb {
    /// Initialises a data directory and starts `mariadbd` with `args` added to a minimal
    /// command line (e.g. `["--log-bin=binlog", "--binlog-format=ROW", "--server-id=7"]`);
    /// waits until it accepts connections and has the `sluice` user.
    pub async fn start(name: &str, args: &[&str]) -> Result<PrivateMariaDb, String> {
        let dir = std::env::temp_dir().join(crate::unique_name(name));
        let data = dir.join("data");
        // A temp dir of its own: bootstraps running at once in the shared /tmp collided on their
        // temporary tables ("Unknown table 'mysql.tmp_proxies_priv'").
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
        let user = whoami();
        let install = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--user={user}"))
            .arg("--auth-root-authentication-method=socket")
            .arg("--skip-test-db")
            .env("TMPDIR", &tmp)
            .output()
            .await
            .map_err(|e| {
                format!("run mariadb-install-db (scripts/services.sh installs it): {e}")
            })?;
        if !install.status.success() {
            return Err(format!(
                "mariadb-install-db failed: {}",
                String::from_utf8_lossy(&install.stderr)
            ));
        }
        let port = crate::free_port()?;
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let child = spawn(&dir, port, &args)?;
        let server = PrivateMariaDb {
            child,
            dir,
            port,
            args,
        };
        server.wait_ready().await?;
        let mut c = server.root().await.map_err(|e| e.to_string())?;
        for sql in [
            "CREATE USER IF NOT EXISTS 'sluice'@'%' IDENTIFIED BY 'sluice'",
            "GRANT ALL PRIVILEGES ON *.* TO 'sluice'@'%' WITH GRANT OPTION",
        ] {
            c.query_drop(sql).await.map_err(|e| format!("{sql}: {e}"))?;
        }
        Ok(server)
    }

    /// SIGKILL, then `mariadbd` started again on the same data directory and port (with its
    /// crash recovery); waits until it accepts connections.
    pub async fn kill_and_restart(&mut self) -> Result<(), String> {
        self.kill().await;
        self.restart().await
    }

    /// SIGKILL only (start it again with [`PrivateMariaDb::restart`]).
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Starts a killed server again; waits until it accepts connections.
    pub async fn restart(&mut self) -> Result<(), String> {
        self.child = spawn(&self.dir, self.port, &self.args)?;
        self.wait_ready().await
    }

    async fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.root().await {
                Ok(c) => {
                    let _ = c.disconnect().await;
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => {
                    let log = self.dir.join("mariadbd.log");
                    let tail = std::fs::read_to_string(log).unwrap_or_default();
                    return Err(format!("private MariaDB did not start: {e}\n{tail}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// `mysql://sluice:sluice@127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mysql://sluice:sluice@127.0.0.1:{}", self.port)
    }

    /// A root connection over the server's socket (root can change global settings).
    pub async fn root(&self) -> Result<mysql_async::Conn, mysql_async::Error> {
        let opts = mysql_async::OptsBuilder::default()
            .socket(Some(self.dir.join("mysqld.sock").display().to_string()))
            .user(Some("root"));
        mysql_async::Conn::new(opts).await
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.try_wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `mariadbd` on the data directory in `dir`, listening on `port`, with `args` added.
fn spawn(dir: &std::path::Path, port: u16, args: &[String]) -> Result<Child, String> {
    let data = dir.join("data");
    let tmp = dir.join("tmp");
    let socket = dir.join("mysqld.sock");
    let log = dir.join("mariadbd.log");
    let user = whoami();
    Command::new("mariadbd")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--pid-file={}", dir.join("mariadbd.pid").display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--user={user}"))
        .arg("--skip-name-resolve")
        .arg(format!("--tmpdir={}", tmp.display()))
        .arg(format!("--log-error={}", log.display()))
        .arg("--innodb-buffer-pool-size=32M")
        .arg("--character-set-server=utf8mb4")
        .args(args)
        .current_dir(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("start mariadbd: {e}"))
}

/// The user mariadbd runs as: the current one (`--user` is required when that is root).
fn whoami() -> String {
    std::process::Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".to_owned())
}
