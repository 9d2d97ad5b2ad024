//! `sluice-sink`: Kafka to targets (docs/sink.md).

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sluice_sinks::offsets::{self, StartAt};
use sluice_sinks::targets::{Target, Write};
use sluice_sinks::{observe, Sink, SinkConfig};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

// Messages are copied out of librdkafka's buffer, decoded, mapped and dropped by different tasks;
// glibc malloc was ~40% of the no-op sink's CPU on that pattern (perf), and the same build with
// mimalloc read 1.6-2.2x as many events/s (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long `run` waits at start-up for Kafka to answer before it leaves the waiting to the
/// consumer (a refused login or certificate ends the wait at once).
const KAFKA_PREFLIGHT: std::time::Duration = std::time::Duration::from_secs(10);

/// A rule-driven consumer group that writes change events to Elasticsearch, MySQL and Redis.
#[derive(Parser)]
#[command(name = "sluice-sink", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume and write until SIGTERM/SIGINT (then drain and commit).
    Run {
        #[arg(long)]
        config: PathBuf,
        /// `committed` (default), `earliest`, `latest`, or an RFC 3339 time: the group's offsets
        /// are set there (and committed) before consuming.
        #[arg(long, default_value = "committed")]
        start_at: StartAt,
    },
    /// Print committed offset, high watermark and lag per partition.
    Offsets {
        #[arg(long)]
        config: PathBuf,
        /// Consumer group (default: consumer.group_id of the config).
        #[arg(long)]
        group: Option<String>,
    },
    /// Backfill a new Elasticsearch index for one rule, then swap the rule's alias to it
    /// (docs/elasticsearch.md).
    Reindex {
        #[arg(long)]
        config: PathBuf,
        /// The rule (its index must be a fixed name: the alias to swap).
        #[arg(long)]
        rule: String,
        /// The new index, e.g. orders_v2.
        #[arg(long)]
        to: String,
        /// `earliest` (default) or an RFC 3339 time: where the backfill starts reading.
        #[arg(long, default_value = "earliest")]
        start_at: StartAt,
        /// Settings/mappings JSON for the new index (default: the rule's create_index).
        #[arg(long)]
        create_index: Option<PathBuf>,
        /// The rule's index is a concrete index: delete it and put the alias in its place.
        #[arg(long)]
        replace_index: bool,
    },
    /// Validate the config and rules, connect to Kafka and every target.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Compare a MySQL rule's source tables with its replica table by key ranges (row count and
    /// checksum per chunk); exits non-zero when they differ.
    Verify {
        #[arg(long)]
        config: PathBuf,
        /// The rule (by name) whose tables are compared.
        #[arg(long)]
        rule: String,
        /// The source server, mysql://user:password@host:port (default: the replica's server).
        #[arg(long, env = "SLUICE_SOURCE_URL", hide_env_values = true)]
        source_url: Option<String>,
        /// Source rows per chunk.
        #[arg(long, default_value_t = sluice_sinks::targets::mysql::verify::DEFAULT_CHUNK_ROWS)]
        chunk_rows: u64,
    },
}

fn main() -> std::process::ExitCode {
    sluice_config::allocator::keep_freed_memory_a_while();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluice-sink: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-sink: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config, start_at } => {
            let config = SinkConfig::load(&config)?;
            let recent = sluice_ops::Recent::new();
            sluice_config::logging::init_with(&config.log, recent.layer());
            // The consumer would retry refused credentials forever; stop with the reason instead.
            let c = config.clone();
            tokio::task::spawn_blocking(move || offsets::preflight(&c, KAFKA_PREFLIGHT))
                .await
                .context("kafka preflight task")??;
            let cancel = CancellationToken::new();
            let metrics = observe::install_metrics()?;
            let sink = Sink::new(config.clone());
            let monitor = observe::monitor(&config, sink.tally(), recent, cancel.clone());
            let server = observe::serve(
                &config.metrics.listen,
                metrics,
                sink.health(),
                monitor,
                cancel.clone(),
            )
            .await?;
            if start_at != StartAt::Committed {
                let c = config.clone();
                let set =
                    tokio::task::spawn_blocking(move || offsets::apply_start_at(&c, start_at))
                        .await
                        .context("start-at task")??;
                for (t, p, o) in &set {
                    tracing::info!(topic = %t, partition = p, offset = o, "start at {start_at}");
                }
            }
            tokio::spawn(signals(cancel.clone()));
            let result = sink.run(cancel.clone()).await;
            cancel.cancel();
            let _ = server.await;
            result?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Offsets { config, group } => {
            let config = SinkConfig::load(&config)?;
            let group = group.unwrap_or_else(|| config.consumer.group_id.clone());
            let rows = tokio::task::spawn_blocking(move || offsets::list(&config, &group))
                .await
                .context("offsets task")??;
            print!("{}", offsets::render_table(&rows));
            Ok(())
        }
        Command::Reindex {
            config,
            rule,
            to,
            start_at,
            create_index,
            replace_index,
        } => {
            let config = SinkConfig::load(&config)?;
            sluice_config::logging::init(&config.log);
            let job = sluice_sinks::targets::elasticsearch::Reindex {
                rule,
                to,
                start_at,
                create_index,
                replace_index,
            };
            let cancel = CancellationToken::new();
            tokio::spawn(signals(cancel.clone()));
            let report =
                sluice_sinks::targets::elasticsearch::reindex(&config, &job, cancel, |m| {
                    println!("{m}")
                })
                .await?;
            println!(
                "reindexed rule {} into {}; alias {} now points to it",
                job.rule, report.to, report.alias
            );
            Ok(())
        }
        Command::Check { config } => {
            let config = SinkConfig::load(&config)?;
            println!(
                "config: ok ({} rules, {} targets)",
                config.rules.len(),
                config.targets.len()
            );
            let c = config.clone();
            let partitions = tokio::task::spawn_blocking(move || offsets::check_kafka(&c))
                .await
                .context("kafka check task")??;
            println!(
                "kafka: ok ({} topics, {partitions} partitions)",
                config.consumer.topics.len()
            );
            let mut problems = sluice_config::Problems::default();
            let rules = sluice_rules::RuleSet::compile(&config.rules, &mut problems);
            for (name, t) in &config.targets {
                let target = Target::connect(name, t, &rules).await?;
                target.check().await?;
                println!("target {name} ({}): ok", target.kind());
            }
            Ok(())
        }
        Command::Verify {
            config,
            rule,
            source_url,
            chunk_rows,
        } => {
            let config = SinkConfig::load(&config)?;
            let report = sluice_sinks::targets::mysql::verify::verify(
                &config,
                &rule,
                source_url.as_deref(),
                chunk_rows,
            )
            .await?;
            println!("{report}");
            anyhow::ensure!(
                report.is_equal(),
                "the replica differs from the source in {} key ranges (listed above)",
                report.differences.len()
            );
            Ok(())
        }
    }
}

/// Cancels on SIGTERM or SIGINT.
async fn signals(cancel: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            cancel.cancel();
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    cancel.cancel();
}
