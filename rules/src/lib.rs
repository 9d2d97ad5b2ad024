//! Mapping rules: match `database.table`, filter rows, map fields, render ids and keys.
//! Pure: no I/O. Users' documentation is docs/rules.md.
//!
//! [`RuleSet::compile`] turns the `[[rules]]` of a sink config into compiled rules once, at
//! start-up, reporting every problem with its key path; per event the sink calls
//! [`RuleSet::matching`] (cacheable per table) and [`Rule::apply`]. One rule and what it makes
//! of an event are in `rule`; its parts in `matcher`, `expr` (the `where` language), `fields`
//! and `template`.

mod config;
mod error;
mod expr;
mod fields;
mod matcher;
mod rule;
mod template;
#[cfg(test)]
mod test_util;

pub use config::{ConvertConfig, FieldsConfig, JsonPathConfig, MatchConfig, OnError, RuleConfig};
pub use error::{RuleError, TemplateError};
pub use expr::Filter;
pub use fields::mask::{Masking, MASKINGS};
pub use rule::{Mapped, Rule};
pub use template::Template;

use sluice_config::Problems;
use std::collections::HashMap;

/// Every rule of a sink config, compiled.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Compiles every rule; adds each problem with its key path (e.g. `rules[2].where`) to `problems`.
    pub fn compile(rules: &[RuleConfig], problems: &mut Problems) -> RuleSet {
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut compiled = Vec::with_capacity(rules.len());
        for (i, config) in rules.iter().enumerate() {
            let path = format!("rules[{i}]");
            if config.name.trim().is_empty() {
                problems.add(
                    format!("{path}.name"),
                    "the rule has no name; give it a unique name",
                );
            } else if let Some(first) = names.insert(&config.name, i) {
                problems.add(
                    format!("{path}.name"),
                    format!("rule name `{}` is already used by rules[{first}]; rule names must be unique", config.name),
                );
            }
            if config.target.trim().is_empty() {
                problems.add(
                    format!("{path}.target"),
                    "no target given; name one of the [targets.<name>] sections",
                );
            }
            compiled.push(Rule::compile(config, &path, problems));
        }
        RuleSet { rules: compiled }
    }

    /// Indices of the rules whose `match` accepts this instance/database/table (callers may
    /// cache the result per (instance, database, table)).
    pub fn matching(&self, instance: &str, database: &str, table: &str) -> Vec<usize> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.matcher.matches(instance, database, table))
            .map(|(i, _)| i)
            .collect()
    }

    /// The rule at `index` (an index from [`RuleSet::matching`]); panics if out of range.
    pub fn rule(&self, index: usize) -> &Rule {
        &self.rules[index]
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True if there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter()
    }
}

#[cfg(test)]
mod tests;
