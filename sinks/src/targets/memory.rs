//! The `memory` target: keeps every item it is given, in order, for tests to inspect.

use super::{Item, Outcome, TargetError, Write};
use std::sync::{Arc, Mutex};

/// Records every written item; clones share one record.
#[derive(Debug, Clone, Default)]
pub struct MemoryTarget {
    written: Arc<Mutex<Vec<Item>>>,
}

impl MemoryTarget {
    /// A copy of everything written so far, in write order.
    pub fn written(&self) -> Vec<Item> {
        match self.written.lock() {
            Ok(w) => w.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Write for MemoryTarget {
    async fn write(&self, items: &[Item]) -> Vec<Outcome> {
        let mut w = match self.written.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        w.extend_from_slice(items);
        vec![Outcome::Done; items.len()]
    }

    async fn check(&self) -> Result<(), TargetError> {
        Ok(())
    }
}
