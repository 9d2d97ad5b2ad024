//! Mapping rules: match `database.table`, filter rows, map fields, render ids and keys.
//! Pure: no I/O. Users' documentation is docs/rules.md.
//!
//! [`RuleSet::compile`] turns the `[[rules]]` of a sink config into compiled rules once, at
//! start-up, reporting every problem with its key path; per event the sink calls
//! [`RuleSet::matching`] (cacheable per table) and [`Rule::apply`].

mod config;
mod error;
mod expr;
mod fields;
mod matcher;
mod template;

pub use config::{ConvertConfig, FieldsConfig, JsonPathConfig, MatchConfig, OnError, RuleConfig};
pub use error::{RuleError, TemplateError};
pub use template::Template;

use fields::FieldMap;
use matcher::TableMatcher;
use sluice_config::Problems;
use sluice_event::{ChangeEvent, EventType, Row};
use std::collections::HashMap;

/// Every rule of a sink config, compiled.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    config: RuleConfig,
    matcher: TableMatcher,
    filter: Option<expr::Filter>,
    fields: FieldMap,
    id: Option<Template>,
}

/// What a rule made of one event, ready for its target.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// INSERT, UPDATE or DELETE (DDL events never map).
    pub kind: EventType,
    /// The event's `seq`, the external version for targets.
    pub seq: i64,
    /// The rendered `id` template (default: primary-key values joined by `:`).
    pub id: String,
    /// The mapped row: the after-image (for DELETE: the before-image).
    pub doc: Row,
    /// UPDATE only: the mapped full before-image (`data` overlaid with `old`).
    pub old_doc: Option<Row>,
    /// UPDATE only: the source columns present in `old`.
    pub changed: Vec<String>,
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

impl Rule {
    fn compile(config: &RuleConfig, path: &str, problems: &mut Problems) -> Rule {
        let matcher = TableMatcher::compile(
            &config.matcher.tables,
            config.matcher.source.as_deref(),
            &format!("{path}.match"),
            problems,
        );
        let filter = config
            .filter
            .as_deref()
            .and_then(|text| match expr::Filter::parse(text) {
                Ok(f) => Some(f),
                Err(e) => {
                    problems.add(
                        format!("{path}.where"),
                        format!("invalid expression `{text}`: {e}"),
                    );
                    None
                }
            });
        let fields = FieldMap::compile(&config.fields, &format!("{path}.fields"), problems);
        let id = config
            .id
            .as_deref()
            .and_then(|text| match Template::parse(text) {
                Ok(t) => {
                    fields.check_template(&t, &format!("{path}.id"), problems);
                    Some(t)
                }
                Err(e) => {
                    problems.add(format!("{path}.id"), e.to_string());
                    None
                }
            });
        for (i, c) in config.only_if_changed.iter().enumerate() {
            if c.trim().is_empty() {
                problems.add(
                    format!("{path}.only_if_changed[{i}]"),
                    "empty column name; list source column names",
                );
            }
        }
        Rule {
            config: config.clone(),
            matcher,
            filter,
            fields,
            id,
        }
    }

    /// The rule's unique name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The name of the target the rule writes to.
    pub fn target(&self) -> &str {
        &self.config.target
    }

    /// What the sink does when this rule cannot map a message.
    pub fn on_error(&self) -> OnError {
        self.config.on_error
    }

    /// The rule as configured (target modules read their own section from it).
    pub fn config(&self) -> &RuleConfig {
        &self.config
    }

    /// Checks a target's template (e.g. `rules[0].redis.keys[1]`) against this rule's field
    /// mapping, adding "unknown column `x` in template ..." problems at `path`.
    pub fn check_template(&self, template: &Template, path: &str, problems: &mut Problems) {
        self.fields.check_template(template, path, problems);
    }

    /// Applies where / only_if_changed / field mapping. Ok(None) = the rule skips this event.
    pub fn apply(&self, event: &ChangeEvent) -> Result<Option<Mapped>, RuleError> {
        if event.kind == EventType::Ddl {
            return Ok(None);
        }
        let old = event
            .old
            .as_ref()
            .filter(|_| event.kind == EventType::Update);
        let only = &self.config.only_if_changed;
        if event.kind == EventType::Update
            && !only.is_empty()
            && !only.iter().any(|c| old.is_some_and(|o| o.contains_key(c)))
        {
            return Ok(None);
        }
        if let Some(filter) = &self.filter {
            let keep = filter.eval(event).map_err(|message| RuleError::Where {
                rule: self.config.name.clone(),
                expr: self.config.filter.clone().unwrap_or_default(),
                message,
            })?;
            if !keep {
                return Ok(None);
            }
        }
        let name = &self.config.name;
        let doc = self.fields.map(&event.data, name)?;
        let (old_doc, changed) = match (event.kind, old) {
            (EventType::Update, Some(old)) => {
                let mut before = event.data.clone();
                for (k, v) in old {
                    before.insert(k.clone(), v.clone());
                }
                (
                    Some(self.fields.map(&before, name)?),
                    old.keys().cloned().collect(),
                )
            }
            (EventType::Update, None) => (Some(doc.clone()), Vec::new()),
            _ => (None, Vec::new()),
        };
        let id = match &self.id {
            Some(t) => t.render(&doc).map_err(|e| e.with_rule(name))?,
            None => default_id(event),
        };
        Ok(Some(Mapped {
            kind: event.kind,
            seq: event.seq,
            id,
            doc,
            old_doc,
            changed,
        }))
    }
}

/// Primary-key values of `data` joined by `:`; empty for tables without a primary key.
fn default_id(event: &ChangeEvent) -> String {
    let mut id = String::new();
    for (i, col) in event.pk.iter().enumerate() {
        if i > 0 {
            id.push(':');
        }
        if let Some(v) = event.data.get(col) {
            id.push_str(&template::value_text(v));
        }
    }
    id
}
