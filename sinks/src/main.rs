//! `sluice-sink`: Kafka to targets. The consumer runtime lands with the sink issue.

use clap::Parser;

/// A rule-driven consumer group that writes change events to Elasticsearch, MySQL and Redis.
#[derive(Parser)]
#[command(name = "sluice-sink", version)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!("sluice-sink is not built yet: the sink runtime lands with the sink issue")
}
