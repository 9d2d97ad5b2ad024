//! The `noop` target: accepts every item and writes nothing; measures the runtime's own ceiling.

use super::{Item, Outcome, TargetError, Write};
use serde::Deserialize;

/// `[targets.<name>] type = "noop"` has no settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopConfig {}

/// Says `Done` to every item.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopTarget;

impl Write for NoopTarget {
    async fn write(&self, items: &[Item]) -> Vec<Outcome> {
        vec![Outcome::Done; items.len()]
    }

    async fn check(&self) -> Result<(), TargetError> {
        Ok(())
    }
}
