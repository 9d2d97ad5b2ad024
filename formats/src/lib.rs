//! Other captures' change messages read as Sluice change events, so every rule and target of
//! `sluice-sink` works on them unchanged: Canal's flat messages, Maxwell's JSON and Debezium's
//! JSON envelope (docs/formats.md). Pure: bytes in, events out, no I/O.

mod canal;
mod debezium;
mod maxwell;

use sluice_event::ChangeEvent;

/// How a topic's messages are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Sluice's own change event (docs/event-format.md).
    Sluice,
    /// Canal's flat message (`flatMessage = true`): many rows per message.
    Canal,
    /// Maxwell's JSON: one row per message.
    Maxwell,
    /// Debezium's JSON envelope, with or without its embedded schema.
    Debezium,
}

impl Format {
    /// The name used in configs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Sluice => "sluice",
            Format::Canal => "canal",
            Format::Maxwell => "maxwell",
            Format::Debezium => "debezium",
        }
    }
}

/// Why a message is not a change event of its format; the sink dead-letters it with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{format} message: {reason}")]
pub struct FormatError {
    /// The format the message was read as.
    pub format: &'static str,
    /// What is wrong, for a person.
    pub reason: String,
}

impl FormatError {
    pub(crate) fn new(format: Format, reason: impl Into<String>) -> FormatError {
        FormatError {
            format: format.as_str(),
            reason: reason.into(),
        }
    }
}

/// The change events of one message written in `format`, in the message's order. A message
/// that carries nothing to apply (a Debezium tombstone, a heartbeat) gives none.
pub fn decode(format: Format, payload: &[u8]) -> Result<Vec<ChangeEvent>, FormatError> {
    match format {
        Format::Sluice => ChangeEvent::decode(payload)
            .map(|e| vec![e])
            .map_err(|e| FormatError::new(format, e.to_string())),
        Format::Canal => canal::decode(payload),
        Format::Maxwell => maxwell::decode(payload),
        Format::Debezium => debezium::decode(payload),
    }
}

/// Which format a message looks like, from its top-level fields; `None` when it is none of
/// them (not a JSON object, or unknown fields).
pub fn detect(payload: &[u8]) -> Option<Format> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let o = value.as_object()?;
    if o.contains_key("v") && o.contains_key("seq") && o.contains_key("pos") {
        Some(Format::Sluice)
    } else if o.contains_key("isDdl") || o.contains_key("pkNames") || o.contains_key("mysqlType") {
        Some(Format::Canal)
    } else if o.contains_key("payload")
        || o.contains_key("op")
        || (o.contains_key("before") && o.contains_key("after"))
    {
        Some(Format::Debezium)
    } else if o.contains_key("database")
        && o.contains_key("table")
        && o.contains_key("type")
        && o.contains_key("ts")
    {
        Some(Format::Maxwell)
    } else {
        None
    }
}

/// [`decode`] of a Debezium message with its Kafka key, whose fields name the primary key
/// (Debezium's value does not).
pub fn debezium_with_key(
    key: Option<&[u8]>,
    payload: &[u8],
) -> Result<Vec<ChangeEvent>, FormatError> {
    debezium::decode_with_key(key, payload)
}
