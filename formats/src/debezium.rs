//! Debezium's JSON envelope as Sluice change events (docs/formats.md).

use crate::{Format, FormatError};
use sluice_event::ChangeEvent;

/// The change events of one message.
pub fn decode(_payload: &[u8]) -> Result<Vec<ChangeEvent>, FormatError> {
    Err(FormatError::new(Format::Debezium, "not supported yet"))
}

/// The change events of one message, the primary key's names taken from its Kafka `key`.
pub fn decode_with_key(
    _key: Option<&[u8]>,
    payload: &[u8],
) -> Result<Vec<ChangeEvent>, FormatError> {
    decode(payload)
}
