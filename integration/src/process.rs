//! The workspace binaries as processes, as in production: `run` in the background with its log in
//! a file, one-shot commands (`check`, `verify`) to completion, and the signals tests send them.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};

/// `target/debug/sluice-sink` (build it first: `cargo build -p sluice-sinks`).
pub fn sink_binary() -> PathBuf {
    crate::workspace_binary("sluice-sink", "sluice-sinks")
}

/// `target/debug/sluice-capture` (build it first: `cargo build -p sluice-capture`).
pub fn capture_binary() -> PathBuf {
    crate::workspace_binary("sluice-capture", "sluice-capture")
}

/// Starts `<binary> run --config <config> <args>` with `RUST_LOG=info` and `env`, its stderr (the
/// log) into the file `log`; the process is killed if the handle is dropped (a failed test).
pub fn spawn_run(
    binary: &Path,
    config: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    log: &Path,
) -> Child {
    let file = std::fs::File::create(log)
        .unwrap_or_else(|e| panic!("create the log file {}: {e}", log.display()));
    Command::new(binary)
        .args(["run", "--config"])
        .arg(config)
        .args(args)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()))
}

/// What a process that ran to its end printed, and how it exited.
#[derive(Debug)]
pub struct Finished {
    /// The exit status.
    pub status: ExitStatus,
    /// Its standard output (lossy UTF-8).
    pub stdout: String,
    /// Its standard error (lossy UTF-8).
    pub stderr: String,
}

impl Finished {
    /// Whether it exited with 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Standard output followed by standard error, for messages that may be on either.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `binary` with `args` and `env` to its end; panics if that takes more than `secs` s.
pub async fn run_to_end<S: AsRef<OsStr>>(
    binary: &Path,
    args: impl IntoIterator<Item = S>,
    env: &[(&str, &str)],
    secs: u64,
) -> Finished {
    let mut cmd = Command::new(binary);
    cmd.args(args).envs(env.iter().copied()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(secs), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{} did not finish within {secs} s", binary.display()))
        .unwrap_or_else(|e| panic!("run {}: {e}", binary.display()));
    Finished {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Sends `kill -<sig>` (`"TERM"`, `"KILL"`, `"STOP"`, `"CONT"`) to the process `pid`.
pub fn signal(pid: u32, sig: &str) -> Result<(), String> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .map_err(|e| format!("run kill -{sig} {pid}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -{sig} {pid} failed ({status})"))
    }
}

/// SIGTERM (a graceful stop: drain, final commit or checkpoint), then waits at most `secs` s for
/// the exit; `None` if the process is still running then.
pub async fn terminate(child: &mut Child, secs: u64) -> Option<ExitStatus> {
    let pid = child.id().expect("the child is still running");
    signal(pid, "TERM").unwrap_or_else(|e| panic!("{e}"));
    tokio::time::timeout(Duration::from_secs(secs), child.wait())
        .await
        .ok()
        .map(|status| status.expect("wait for the child"))
}

/// `kill -9` of a child process (no chance to clean up), then reaps it.
pub async fn kill9(child: &mut Child) {
    let pid = child.id().expect("the child is still running");
    signal(pid, "KILL").unwrap_or_else(|e| panic!("{e}"));
    let _ = child.wait().await;
}

/// Panics naming `name` and the tail of its log `log` if `child` has exited.
pub fn assert_running(child: &mut Child, name: &str, log: &Path) {
    if let Ok(Some(status)) = child.try_wait() {
        panic!("{name} exited ({status}); its log:\n{}", tail(log, 40));
    }
}

/// The last `lines` lines of the (log) file at `path`; empty if it cannot be read.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
