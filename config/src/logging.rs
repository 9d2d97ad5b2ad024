//! The log setup both binaries share.

use crate::{LogConfig, LogFormat};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, Registry};

/// Installs the global tracing subscriber: `log.level` as the filter unless `RUST_LOG` is set,
/// `log.format` as text or JSON, on stderr (so `sluice-capture tail` keeps stdout for events),
/// colours only when stderr is a terminal, so log files get plain `key=value` fields. A second
/// call leaves the first subscriber in place.
pub fn init(log: &LogConfig) {
    init_with(log, tracing_subscriber::layer::Identity::new());
}

/// [`init`] with one more layer, which sees every event the level filter lets through (the
/// status page keeps the warnings and errors this way).
pub fn init_with<L: Layer<Registry> + Send + Sync + 'static>(log: &LogConfig, extra: L) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let base = tracing_subscriber::registry().with(extra).with(filter);
    let _ = match log.format {
        LogFormat::Text => base.with(fmt).try_init(),
        LogFormat::Json => base.with(fmt.json()).try_init(),
    };
}
