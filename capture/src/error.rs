//! The capture's errors, and the one function that decides which are transient.

use std::time::Duration;

/// Everything that can stop or pause the capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot decode binlog event at {file}:{offset}: {detail}; the binlog may be corrupt or written by an unsupported server version, check it with `mariadb-binlog --start-position={offset} {file}`")]
    Corrupt {
        file: String,
        offset: u64,
        detail: String,
    },
    #[error("MySQL/MariaDB at {addr}: {source}")]
    Mysql {
        addr: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("{0}")]
    Check(String),
    #[error("Kafka: {what}: {source}")]
    Kafka {
        what: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A `[kafka]` setting the brokers refuse (credentials, CA, client certificate).
    #[error(transparent)]
    KafkaSecurity(#[from] sluice_config::KafkaSecurityError),
    #[error("{0}")]
    Topic(String),
    #[error("checkpoint {path}: {source}; check that the state dir exists and is writable")]
    CheckpointIo {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint {path} is not a Sluice checkpoint: {detail}; move it away to start from source.start")]
    CheckpointFormat { path: String, detail: String },
    #[error("cannot write events to stdout: {0}")]
    Stdout(std::io::Error),
    #[error("binlog stream from {addr} ended; the server closed it (was it shut down?)")]
    StreamEnded { addr: String },
    /// A newer producer with the instance's `transactional.id` exists: another capture took
    /// the instance over, and this one must not publish it any more.
    #[error("instance {instance} was taken over: a newer producer with transactional.id {transactional_id} fenced this one, whose open transaction is aborted; this capture stops publishing the instance")]
    Fenced {
        instance: String,
        transactional_id: String,
    },
    /// Another capture of the instance is alive (its checkpoint is fresh).
    #[error("instance {instance} is being captured by {owner} (its last checkpoint was committed {age_ms} ms ago), and transactional.id {transactional_id} is in use; stop that capture first, or give this one another instance name{hint}")]
    InUse {
        instance: String,
        owner: String,
        age_ms: i64,
        transactional_id: String,
        hint: String,
    },
}

/// librdkafka's ways of saying that a newer producer with the same `transactional.id` exists.
pub fn is_fenced(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(C::Fenced | C::ProducerFenced | C::InvalidProducerEpoch)
    )
}

impl CaptureError {
    /// A failed Kafka request (`what`) as the definite error it is when librdkafka reported a
    /// setting the brokers refuse, else as a plain (transient) Kafka error.
    pub fn kafka(what: impl Into<String>, failure: sluice_config::kafka::KafkaFailure) -> Self {
        match failure {
            sluice_config::kafka::KafkaFailure::Settings(e) => CaptureError::KafkaSecurity(e),
            sluice_config::kafka::KafkaFailure::Request(source) => CaptureError::Kafka {
                what: what.into(),
                source,
            },
        }
    }

    /// A Kafka error as [`CaptureError::Fenced`] when it says the producer was fenced, else as
    /// a plain Kafka error about `what`.
    pub fn from_kafka(
        what: impl Into<String>,
        source: rdkafka::error::KafkaError,
        instance: &str,
    ) -> Self {
        if is_fenced(&source) {
            CaptureError::Fenced {
                instance: instance.to_owned(),
                transactional_id: format!("sluice-capture.{instance}"),
            }
        } else {
            CaptureError::Kafka {
                what: what.into(),
                source,
            }
        }
    }

    /// Transient errors are retried with backoff; definite ones stop the capture.
    pub fn is_transient(&self) -> bool {
        match self {
            CaptureError::Mysql { source, .. } => match source {
                mysql_async::Error::Io(_) => true,
                mysql_async::Error::Driver(d) => matches!(
                    d,
                    mysql_async::DriverError::ConnectionClosed
                        | mysql_async::DriverError::PoolDisconnected
                ),
                // 1236 (purged/unknown position), access denied and syntax errors are not going
                // to fix themselves; shutdown (1053), too many connections (1040) and a killed
                // connection (1317, 1927, 3169) are.
                mysql_async::Error::Server(s) => {
                    matches!(
                        s.code,
                        1040 | 1053 | 1205 | 1213 | 1317 | 1927 | 2006 | 2013 | 3169
                    )
                }
                _ => false,
            },
            // A client that could not be made from the config will not be made on a retry.
            CaptureError::Kafka {
                source: rdkafka::error::KafkaError::ClientCreation(_),
                ..
            } => false,
            CaptureError::Kafka { source, .. } => !matches!(
                source.rdkafka_error_code(),
                Some(rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed)
                    | Some(rdkafka::types::RDKafkaErrorCode::SaslAuthenticationFailed)
            ),
            CaptureError::StreamEnded { .. } => true,
            CaptureError::Fenced { .. } | CaptureError::InUse { .. } => false,
            CaptureError::Corrupt { .. }
            | CaptureError::KafkaSecurity(_)
            | CaptureError::Check(_)
            | CaptureError::Topic(_)
            | CaptureError::CheckpointIo { .. }
            | CaptureError::CheckpointFormat { .. }
            | CaptureError::Stdout(_) => false,
        }
    }
}

/// Capped exponential backoff: 200 ms doubling to 30 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(200),
        }
    }
}

impl Backoff {
    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(30));
        d
    }

    /// Back to the shortest delay after a success.
    pub fn reset(&mut self) {
        *self = Backoff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_caps() {
        let mut b = Backoff::default();
        let delays: Vec<_> = (0..10).map(|_| b.next_delay()).collect();
        assert_eq!(delays[0], Duration::from_millis(200));
        assert_eq!(delays[1], Duration::from_millis(400));
        assert_eq!(delays[9], Duration::from_secs(30));
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(200));
    }

    #[test]
    fn transient_or_definite() {
        let corrupt = CaptureError::Corrupt {
            file: "b.1".into(),
            offset: 4,
            detail: "x".into(),
        };
        assert!(!corrupt.is_transient());
        assert!(corrupt.to_string().contains("b.1:4"));
        let io = CaptureError::Mysql {
            addr: "h".into(),
            source: mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::other(
                "reset",
            ))),
        };
        assert!(io.is_transient());
        assert!(CaptureError::StreamEnded { addr: "h".into() }.is_transient());
        let timeout = CaptureError::Kafka {
            what: "reading metadata".into(),
            source: rdkafka::error::KafkaError::MetadataFetch(
                rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
            ),
        };
        assert!(timeout.is_transient());
        let creation = CaptureError::Kafka {
            what: "creating a producer".into(),
            source: rdkafka::error::KafkaError::ClientCreation("bad".into()),
        };
        assert!(!creation.is_transient());
        let login = CaptureError::KafkaSecurity(sluice_config::KafkaSecurityError::SaslLogin {
            broker: "h:9093".into(),
            user: "u".into(),
            mechanism: "SCRAM-SHA-512".into(),
        });
        assert!(!login.is_transient());
    }
}
