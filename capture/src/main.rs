//! `sluice-capture`: binlog to Kafka. Commands: run, check, tail, position, snapshot, migrate.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sluice_capture::config::{fleet, CaptureConfig, StartAt};
use sluice_capture::error::CaptureError;
use sluice_capture::source::CheckStatus;
use sluice_capture::{http, run};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

// Events are built on the binlog reader's thread and freed on the publisher's; glibc malloc spends
// a fifth of the capture's time on that pattern (perf), mimalloc far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Reads a MySQL/MariaDB binlog as a replica and publishes one change event per row to Kafka.
#[derive(Parser)]
#[command(name = "sluice-capture", version)]
struct Cli {
    /// With a fleet file as --config: the instance that tail, position, snapshot and migrate
    /// work on (check checks every instance without it).
    #[arg(long, global = true)]
    instance: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// `--instance`, for [`load`].
static INSTANCE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

#[derive(Subcommand)]
enum Command {
    /// Capture changes into Kafka until stopped (SIGINT/SIGTERM). With a fleet file (one
    /// with a `[fleet]` section) the process is one worker of the fleet (docs/fleet.md).
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Stop once this position (<file>:<pos>) is read and everything before it is
        /// acknowledged and checkpointed, then exit (bounded replays, benchmarks).
        #[arg(long)]
        until: Option<String>,
    },
    /// Run the start-up checks and print each result; exits 1 if any failed.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print events as JSON lines on stdout instead of publishing them.
    Tail {
        #[arg(long)]
        config: PathBuf,
        /// Start here instead of source.start: end, oldest, <file>:<pos>, gtid:<state>.
        #[arg(long)]
        from: Option<String>,
        /// Stop at the current end of the binlog.
        #[arg(long)]
        until_end: bool,
        /// Stop once this position (<file>:<pos>) is reached.
        #[arg(long)]
        until: Option<String>,
    },
    /// Show the stored checkpoint and the server's current position.
    Position {
        #[arg(long)]
        config: PathBuf,
    },
    /// Backfill tables through the running capture (`--tables db.t`), or show snapshot progress.
    Snapshot(sluice_capture::snapshot::SnapshotArgs),
    /// Move the instance's checkpoint to another server (a promoted replica, a migrated
    /// database), by GTID or by commit time. Stop the capture first; then set source.url to the
    /// new server and start it again.
    Migrate(run::MigrateArgs),
}

/// One instance's config: the file's, or with a fleet file the `--instance` it lists (with the
/// fleet's defaults merged in).
fn load(path: &Path) -> anyhow::Result<CaptureConfig> {
    if !fleet::is_fleet(path) {
        return Ok(sluice_config::load::<CaptureConfig>(path)?);
    }
    let instances = fleet::load(path)?.instances;
    let names = || {
        instances
            .iter()
            .map(|c| c.instance.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match INSTANCE.get().cloned().flatten() {
        None => anyhow::bail!(
            "{} is a fleet file: name the instance with --instance (one of {})",
            path.display(),
            names()
        ),
        Some(name) => match instances.iter().find(|c| c.instance == name) {
            Some(cfg) => Ok(cfg.clone()),
            None => anyhow::bail!(
                "the fleet file {} has no instance `{name}`; it has {}",
                path.display(),
                names()
            ),
        },
    }
}

/// Every instance of `path` to check: the fleet's (or its `--instance`), or the one config.
fn load_all(path: &Path) -> anyhow::Result<Vec<CaptureConfig>> {
    if fleet::is_fleet(path) && INSTANCE.get().cloned().flatten().is_none() {
        return Ok(fleet::load(path)?.instances);
    }
    Ok(vec![load(path)?])
}

/// `--until <file>:<pos>`.
fn parse_until(until: Option<String>) -> anyhow::Result<Option<(String, u64)>> {
    Ok(match until.as_deref().map(StartAt::parse) {
        None => None,
        Some(Ok(StartAt::File { file, pos })) => Some((file, pos)),
        Some(_) => anyhow::bail!("--until takes <file>:<pos>, e.g. binlog.000003:4711"),
    })
}

fn shutdown_on_signal(cancel: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            if let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            } else {
                let _ = ctrl_c.await;
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        cancel.cancel();
    });
}

/// Errors are printed as one line of causes, `sluice-capture: <what>: <why>`, and exit 1; never
/// as Rust's `Debug` of the error, which adds a backtrace whenever RUST_BACKTRACE is set.
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Only the long-running commands: for `tail`, `check` and `position` the second exec was up
    // to 30 ms of a 300k-row `tail`'s ~300 ms, and they end before freed memory matters.
    if matches!(cli.command, Command::Run { .. } | Command::Snapshot(_)) {
        sluice_config::allocator::keep_freed_memory_a_while();
    }
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(run_cli(cli)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-capture: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// What `run` starts before capturing: logging (with the recent warnings the status page shows),
/// the metrics recorder, the monitor `monitor` makes, and the HTTP endpoint on `listen`. Returns
/// the readiness flag `/readyz` reports.
async fn start_serving(
    log: &sluice_config::LogConfig,
    listen: &str,
    cancel: &CancellationToken,
    monitor: impl FnOnce(Arc<sluice_ops::Recent>) -> Arc<sluice_ops::Monitor>,
) -> anyhow::Result<Arc<AtomicBool>> {
    let recent = sluice_ops::Recent::new();
    sluice_config::logging::init_with(log, recent.layer());
    let ready = Arc::new(AtomicBool::new(false));
    let prometheus = http::install_metrics().map_err(anyhow::Error::msg)?;
    let monitor = monitor(recent);
    http::serve(
        listen,
        prometheus,
        Arc::clone(&ready),
        monitor,
        cancel.clone(),
    )
    .await
    .map_err(anyhow::Error::msg)?;
    Ok(ready)
}

async fn run_cli(cli: Cli) -> anyhow::Result<()> {
    let _ = INSTANCE.set(cli.instance.clone());
    let cancel = CancellationToken::new();
    shutdown_on_signal(cancel.clone());
    match cli.command {
        Command::Run { config, until } if sluice_capture::config::fleet::is_fleet(&config) => {
            if until.is_some() {
                anyhow::bail!("--until is for one instance; a fleet file runs until stopped");
            }
            let fleet = sluice_capture::config::fleet::load(&config)?;
            let ready = start_serving(&fleet.log, &fleet.metrics.listen, &cancel, |recent| {
                http::fleet_monitor(&fleet, recent, cancel.clone())
            })
            .await?;
            sluice_capture::fleet::run(&config, fleet, cancel, ready).await?;
        }
        Command::Run { config, until } => {
            let cfg = load(&config)?;
            let until = parse_until(until)?;
            let ready = start_serving(&cfg.log, &cfg.metrics.listen, &cancel, |recent| {
                http::monitor(&cfg, recent, cancel.clone())
            })
            .await?;
            run::run(&cfg, until, cancel, ready).await?;
        }
        Command::Check { config } => {
            let all = load_all(&config)?;
            let mut failed = false;
            for cfg in &all {
                if all.len() > 1 {
                    println!("instance {}:", cfg.instance);
                }
                let checks = run::check(cfg).await?;
                for c in &checks {
                    println!("{c}");
                }
                failed |= checks.iter().any(|c| c.status == CheckStatus::Fail);
            }
            if failed {
                std::process::exit(1);
            }
        }
        Command::Tail {
            config,
            from,
            until_end,
            until,
        } => {
            let cfg = load(&config)?;
            sluice_config::logging::init(&cfg.log);
            let start = from
                .map(|f| StartAt::parse(&f))
                .transpose()
                .map_err(anyhow::Error::msg)
                .context("--from")?;
            let until = parse_until(until)?;
            match run::tail(&cfg, start, until_end, until, cancel).await {
                // Whoever read the events closed the pipe (`tail ... | head`): a normal end.
                Err(CaptureError::Stdout(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other?,
            }
        }
        Command::Position { config } => {
            let cfg = load(&config)?;
            for line in run::position(&cfg).await? {
                println!("{line}");
            }
        }
        Command::Snapshot(args) => {
            let cfg = load(&args.config)?;
            sluice_capture::snapshot::command(&cfg, &args, cancel).await?;
        }
        Command::Migrate(args) => {
            let cfg = load(&args.config)?;
            sluice_config::logging::init(&cfg.log);
            for line in run::migrate(&cfg, &args).await? {
                println!("{line}");
            }
        }
    }
    Ok(())
}
