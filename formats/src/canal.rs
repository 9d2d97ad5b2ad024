//! Canal's flat messages as Sluice change events (docs/formats.md).

use crate::{Format, FormatError};
use sluice_event::ChangeEvent;

/// The change events of one message.
pub fn decode(_payload: &[u8]) -> Result<Vec<ChangeEvent>, FormatError> {
    Err(FormatError::new(Format::Canal, "not supported yet"))
}
