//! From one Kafka message to the items of every target, or the reasons it cannot be written.
//! Pure: no I/O, tested with plain unit tests.

use crate::target::Item;
use sluice_event::ChangeEvent;
use sluice_rules::{OnError, RuleSet};

/// The rules and which target each one writes to.
pub struct Routing {
    pub rules: RuleSet,
    /// `rule_target[i]` is the index (in `target_names`) of rule `i`'s target.
    pub rule_target: Vec<usize>,
    pub target_names: Vec<String>,
}

/// What one message turned into.
#[derive(Debug, Default)]
pub struct Prepared {
    /// `(target index, item)`, in rule order.
    pub items: Vec<(usize, Item)>,
    /// Definite failures found before any write: bad bytes, a rule that cannot map the event.
    pub failures: Vec<Failure>,
}

/// A definite failure of one message (for one rule, or for all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The rule's name, when the failure is a rule's.
    pub rule: Option<String>,
    /// The target's name, when the failure is a target's.
    pub target: Option<String>,
    pub reason: String,
    /// The rule says `on_error = "stop"`.
    pub stop: bool,
}

impl Routing {
    /// Decodes `payload` and applies every matching rule.
    pub fn prepare(&self, payload: Option<&[u8]>) -> Prepared {
        let mut out = Prepared::default();
        // A tombstone (null value) is not a change event and carries nothing to write.
        let Some(payload) = payload else {
            return out;
        };
        let event = match ChangeEvent::decode(payload) {
            Ok(e) => e,
            Err(e) => {
                out.failures.push(Failure {
                    rule: None,
                    target: None,
                    reason: e.to_string(),
                    stop: false,
                });
                return out;
            }
        };
        for i in self
            .rules
            .matching(&event.instance, &event.database, &event.table)
        {
            let rule = self.rules.rule(i);
            let target = self.rule_target.get(i).copied().unwrap_or(0);
            match rule.apply(&event) {
                Ok(Some(mapped)) => out.items.push((
                    target,
                    Item {
                        rule: i,
                        mapped,
                        bytes: payload.len(),
                    },
                )),
                Ok(None) => {}
                Err(e) => out.failures.push(Failure {
                    rule: Some(rule.name().to_owned()),
                    target: self.target_names.get(target).cloned(),
                    reason: e.to_string(),
                    stop: rule.on_error() == OnError::Stop,
                }),
            }
        }
        out
    }

    /// The name of rule `i`, for headers and metrics.
    pub fn rule_name(&self, i: usize) -> &str {
        self.rules.rule(i).name()
    }

    /// Whether rule `i` stops the sink on a definite failure.
    pub fn stops(&self, i: usize) -> bool {
        self.rules.rule(i).on_error() == OnError::Stop
    }
}
