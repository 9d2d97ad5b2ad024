//! `sluice-sink`: a rule-driven Kafka consumer group that writes change events to targets
//! (Elasticsearch/OpenSearch, MySQL replicas, Redis) and commits an offset only after every
//! write of every earlier message succeeded or was dead-lettered. Users' documentation:
//! docs/sink.md; writing a target: docs/sink-targets.md; the whole path: docs/architecture.md.

pub mod config;
pub mod error;
pub mod observe;
pub mod offsets;
pub mod runtime;
pub mod targets;

pub use config::SinkConfig;
pub use error::SinkError;
pub use offsets::{PartitionOffsets, StartAt};
pub use runtime::{Health, Sink};
