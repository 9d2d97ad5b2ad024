//! `sluice-capture`: reads a MySQL/MariaDB binlog as a replica and publishes one change event per
//! row to Kafka, checkpointing only what Kafka acknowledged.

pub mod acks;
pub mod binlog;
pub mod checkpoint;
pub mod clients;
pub mod clock;
pub mod config;
pub mod decoder;
pub mod error;
pub mod filter;
pub mod http;
pub mod kafka_store;
pub mod output;
pub mod publish;
pub mod run;
pub mod snapshot;
pub mod source;
pub mod tally;
pub mod topics;
