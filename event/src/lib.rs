//! The Sluice change event (v1): the one contract between `sluice-capture` and `sluice-sink`.
//!
//! A capture builds a [`ChangeEvent`] per row change, turns its column values into JSON with
//! [`Cell::to_json`], and publishes [`ChangeEvent::encode`] under [`ChangeEvent::key`] with
//! [`ChangeEvent::headers`]. A sink reads it back with [`ChangeEvent::decode`]. The capture's
//! hot path writes the same bytes without the per-row map: straight from the cells with
//! [`write_json`] and [`write_key`] (snapshot rows), or around row values it already wrote as JSON
//! with [`write_json_rendered`] and [`write_key_rendered`] (binlog rows). The format is
//! described for consumers in other languages in `docs/event-format.md`.

mod cell;
mod json_text;
mod key;
mod partition;
mod read;
mod seq;
mod write;

pub use cell::Cell;
pub use json_text::{compact_json, compact_json_into, json_column, MAX_JSON_DEPTH};
pub use key::{decode_key, encode_key, KeyError};
pub use partition::{murmur2, partition_for_key};
pub use seq::SeqGenerator;
pub use write::{
    json_key, write_bytes, write_cell, write_i64, write_json, write_json_rendered, write_key,
    write_key_rendered, write_str, write_u64, EventHead,
};

use serde::{Deserialize, Serialize};
use std::fmt;

/// The version written in every event's `v` field; a sink refuses events of any other version.
pub const EVENT_VERSION: u32 = 1;

/// Kafka header carrying the event's `seq` as a decimal string.
pub const HEADER_SEQ: &str = "sluice-seq";
/// Kafka header carrying the event's `type` (`INSERT`, `UPDATE`, `DELETE`, `DDL`).
pub const HEADER_TYPE: &str = "sluice-type";
/// Kafka header carrying `database.table`.
pub const HEADER_TABLE: &str = "sluice-table";

/// A row: column name to JSON value, in table column order.
pub type Row = serde_json::Map<String, serde_json::Value>;

/// One row change (or one DDL statement) read from a source instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// Format version, always [`EVENT_VERSION`] for events this crate writes.
    pub v: u32,
    /// Strictly increasing along one instance's stream; see [`SeqGenerator`].
    pub seq: i64,
    /// Whether the row came from the live binlog or from a snapshot read.
    pub source: Source,
    /// The configured name of the source instance.
    pub instance: String,
    pub database: String,
    pub table: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Commit time of the transaction on the source, in milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// When the capture read the event, in milliseconds since the Unix epoch.
    pub capture_ms: i64,
    pub pos: Position,
    /// Transaction id of the commit (XID event), when the transaction had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xid: Option<u64>,
    /// True for the last event of its transaction.
    #[serde(default)]
    pub txn_last: bool,
    /// Primary-key column names, in key order; empty for tables without a primary key.
    #[serde(default)]
    pub pk: Vec<String>,
    /// The row after the change; for DELETE, the row before it; empty for DDL.
    #[serde(default)]
    pub data: Row,
    /// For UPDATE only: the previous values of the columns that changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Row>,
    /// For DDL only: the statement text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

/// Where an event was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Binlog,
    Snapshot,
}

/// What happened to the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventType {
    Insert,
    Update,
    Delete,
    Ddl,
}

/// The binlog position of the event: file, offset of its rows event, row index within it, GTID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    pub file: String,
    pub offset: u64,
    #[serde(default)]
    pub row: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
}

/// Why bytes could not be read as a change event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message is not a Sluice change event: {0}; expected the JSON object described in docs/event-format.md")]
    Malformed(String),
    #[error("event version {found} is not supported (this build reads v{EVENT_VERSION}); upgrade sluice-sink or send v{EVENT_VERSION} events")]
    UnsupportedVersion { found: u64 },
}

impl EventType {
    /// The name used in the JSON `type` field and the `sluice-type` header.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Insert => "INSERT",
            EventType::Update => "UPDATE",
            EventType::Delete => "DELETE",
            EventType::Ddl => "DDL",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ChangeEvent {
    /// The event's value bytes: compact UTF-8 JSON, fields in the documented order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + 32 * self.data.len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the event's value bytes to `out`, so a hot loop can reuse one buffer.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // Serialising plain structs, string-keyed maps and JSON values into a Vec cannot fail.
        if let Err(e) = serde_json::to_writer(&mut *out, self) {
            unreachable!("serialising a ChangeEvent failed: {e}");
        }
    }

    /// Reads an event from a message value; rejects other versions and malformed JSON.
    pub fn decode(bytes: &[u8]) -> Result<ChangeEvent, DecodeError> {
        // The fast path covers what captures write; whatever it leaves, serde_json decides.
        if let Some(event) = read::decode_fast(bytes).filter(|e| e.v == EVENT_VERSION) {
            return Ok(event);
        }
        match serde_json::from_slice::<ChangeEvent>(bytes) {
            Ok(event) if event.v == EVENT_VERSION => Ok(event),
            Ok(event) => Err(DecodeError::UnsupportedVersion {
                found: u64::from(event.v),
            }),
            Err(e) => {
                // A newer format may not fit this struct; report its version rather than a field.
                #[derive(Deserialize)]
                struct Probe {
                    v: Option<u64>,
                }
                match serde_json::from_slice::<Probe>(bytes) {
                    Ok(Probe { v: Some(found) }) if found != u64::from(EVENT_VERSION) => {
                        Err(DecodeError::UnsupportedVersion { found })
                    }
                    _ => Err(DecodeError::Malformed(e.to_string())),
                }
            }
        }
    }

    /// The Kafka key: `["<database>","<table>",<pk value>...]`, values taken from `data`.
    pub fn key(&self) -> Vec<u8> {
        let values: Vec<&serde_json::Value> = self
            .pk
            .iter()
            .map(|col| self.data.get(col).unwrap_or(&serde_json::Value::Null))
            .collect();
        encode_key(&self.database, &self.table, &values)
    }

    /// Whether the Kafka key `key` names this event's row: the bytes [`ChangeEvent::key`] makes
    /// (compared as they are written, without building them), or another writing of the same
    /// JSON array (spacing, string escapes) with the same database, table and key values. A key
    /// that names another row put the message in that row's partition, so the sink refuses it.
    pub fn key_matches(&self, key: &[u8]) -> bool {
        let pk = || {
            self.pk
                .iter()
                .map(|col| self.data.get(col).unwrap_or(&serde_json::Value::Null))
        };
        let mut same = key::SameBytes::new(key);
        if key::write_key_to(&mut same, &self.database, &self.table, pk()) && same.matched() {
            return true;
        }
        match decode_key(key) {
            Ok((database, table, values)) => {
                database == self.database
                    && table == self.table
                    && values.len() == self.pk.len()
                    && pk().zip(&values).all(|(a, b)| a == b)
            }
            Err(_) => false,
        }
    }

    /// `database.table`, as carried in the `sluice-table` header.
    pub fn qualified_table(&self) -> String {
        format!("{}.{}", self.database, self.table)
    }

    /// The three Kafka headers every event carries.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            (HEADER_SEQ, self.seq.to_string()),
            (HEADER_TYPE, self.kind.as_str().to_owned()),
            (HEADER_TABLE, self.qualified_table()),
        ]
    }
}

/// The reader's fast path alone (`None` where it leaves the message to serde_json), for the
/// fuzzer's check that both paths agree (fuzz/fuzz_targets/event_decode.rs).
#[doc(hidden)]
pub fn decode_fast_only(bytes: &[u8]) -> Option<ChangeEvent> {
    read::decode_fast(bytes)
}
