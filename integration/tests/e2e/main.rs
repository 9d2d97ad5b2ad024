//! The one end-to-end test binary: every module talks to the real local services that
//! `scripts/services.sh up` starts (addresses overridable, see docs/testing.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod capture;
mod capture_json;
mod chaos;
mod debezium;
mod detect;
mod elasticsearch;
mod es_transport;
mod fleet;
mod formats;
mod group_session;
mod kerberos;
mod mysql_replica;
mod mysql_tls;
mod operations;
mod outage;
mod redis_cluster;
mod secrets;
mod security;
mod server_settings;
mod sink;
mod smoke;
mod snapshot;
