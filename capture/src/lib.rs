//! `sluice-capture`: a MySQL/MariaDB binlog read as a replica, one Kafka event per row changed.
//!
//! It checkpoints only what Kafka acknowledged. The modules from the bottom up, each using only
//! modules listed before it: `error`, `clock`, `tally`, `config` (with `config::snapshot`),
//! `checkpoint`, `binlog` (pure parsing), `gtid` (GTID states and sets), `filter`, `output`
//! (what the reader hands the publisher), `decoder`, `source` (the replication client), `clients`
//! and `topics` (Kafka), `acks`, `kafka_store`, `checkpoint_store` (both stores as one),
//! `publish`, `snapshot`, `run` (the commands) and `http`.

pub mod acks;
pub mod binlog;
pub mod checkpoint;
pub mod checkpoint_store;
pub mod clients;
pub mod clock;
pub mod config;
pub mod decoder;
pub mod detect;
pub mod error;
pub mod filter;
pub mod fleet;
pub mod gtid;
pub mod http;
pub mod kafka_store;
pub mod output;
pub mod publish;
pub mod run;
pub mod snapshot;
pub mod source;
pub mod tally;
pub mod topics;
