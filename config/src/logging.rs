//! The log setup both binaries share.

use crate::{LogConfig, LogFormat};

/// Installs the global tracing subscriber: `log.level` as the filter unless `RUST_LOG` is set,
/// `log.format` as text or JSON, on stderr (so `sluice-capture tail` keeps stdout for events),
/// colours only when stderr is a terminal, so log files get plain `key=value` fields. A second
/// call leaves the first subscriber in place.
pub fn init(log: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
