//! Config files shared by `sluice-capture` and `sluice-sink`: loading TOML with `${ENV}`
//! interpolation, collecting every validation problem with its key path, secrets that never
//! print, and the Kafka, metrics and log sections both binaries have, with the Kafka client
//! context that turns librdkafka's connection reports into errors naming the setting to fix.

pub mod allocator;
mod common;
mod env;
pub mod kafka;
pub mod logging;
mod problems;
mod tls;

pub use common::{
    KafkaConfig, LogConfig, LogFormat, MetricsConfig, SaslMechanism, SecurityProtocol,
    DEFAULT_MAX_TABLES, DEFAULT_METRICS_LISTEN,
};
pub use env::interpolate_env;
pub use kafka::{KafkaSecurityError, KafkaWatch};
pub use problems::{Problem, Problems};
pub use tls::TlsMode;

use serde::de::DeserializeOwned;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // `cause` is not the error's `source`: printed in the message, it would print twice in an
    // error chain (`{:#}`), as it did.
    #[error("cannot read config file {path}: {cause}; check the path given with --config")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: {message}")]
    Env { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: invalid configuration:\n{problems}")]
    Invalid { path: PathBuf, problems: Problems },
}

/// A value that must not reach a log line (passwords, API keys).
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for handing to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A config that can check itself after parsing, reporting every problem at once.
pub trait Validate {
    /// Adds one [`Problem`] per invalid setting, each with its key path.
    fn validate(&self, problems: &mut Problems);
}

/// Reads a TOML file, interpolates `${ENV}` references, parses it into `T` and validates it.
pub fn load<T: DeserializeOwned + Validate>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
        path: path.to_owned(),
        cause,
    })?;
    parse(&text, path, |name| std::env::var(name).ok())
}

/// Like [`load`], on text already read, with a custom environment (for tests).
pub fn parse<T: DeserializeOwned + Validate>(
    text: &str,
    path: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<T, ConfigError> {
    let text = interpolate_env(text, env).map_err(|message| ConfigError::Env {
        path: path.to_owned(),
        message,
    })?;
    let value: T = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let mut problems = Problems::default();
    value.validate(&mut problems);
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })
    }
}
