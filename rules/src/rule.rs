//! One compiled rule, and what it makes of an event: skipped, mapped, or a DELETE when an
//! UPDATE leaves its `where` filter.

use crate::config::{OnError, RuleConfig};
use crate::error::RuleError;
use crate::expr;
use crate::fields::FieldMap;
use crate::matcher::TableMatcher;
use crate::template::{self, Template};
use sluice_config::Problems;
use sluice_event::{ChangeEvent, EventType, Row};

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    config: RuleConfig,
    pub(crate) matcher: TableMatcher,
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

impl Rule {
    pub(crate) fn compile(config: &RuleConfig, path: &str, problems: &mut Problems) -> Rule {
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
        match self.gate(event)? {
            Gate::Skip => Ok(None),
            Gate::Mapped(m) => Ok(Some(*m)),
            Gate::Map => self.map_event(event).map(Some),
        }
    }

    /// [`Rule::apply`] for the last rule that reads `event`: the row moves into the mapped
    /// document instead of being copied (the caller's hot path; same result as `apply`).
    pub fn apply_owned(&self, event: ChangeEvent) -> Result<Option<Mapped>, RuleError> {
        match self.gate(&event)? {
            Gate::Skip => Ok(None),
            Gate::Mapped(m) => Ok(Some(*m)),
            Gate::Map => self.map_event_owned(event).map(Some),
        }
    }

    /// DDL, only_if_changed and the `where` filter: whether the event maps as it is.
    fn gate(&self, event: &ChangeEvent) -> Result<Gate, RuleError> {
        if event.kind == EventType::Ddl {
            return Ok(Gate::Skip);
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
            return Ok(Gate::Skip);
        }
        let name = &self.config.name;
        if let Some(filter) = &self.filter {
            let where_error = |message| RuleError::Where {
                rule: name.clone(),
                expr: self.config.filter.clone().unwrap_or_default(),
                message,
            };
            if !filter.eval(event).map_err(where_error)? {
                // An UPDATE that takes the row out of the filter must remove what its earlier
                // image put into the target, or a filtered index/cache/replica never converges.
                let Some(old) = old.filter(|o| filter.reads_any(o.keys())) else {
                    return Ok(Gate::Skip);
                };
                let before = overlay(&event.data, old);
                if !filter.eval_before(event, &before).map_err(where_error)? {
                    return Ok(Gate::Skip);
                }
                let doc = self.fields.map_owned(before, name)?;
                return Ok(Gate::Mapped(Box::new(Mapped {
                    kind: EventType::Delete,
                    seq: event.seq,
                    id: self.render_id(&doc, event)?,
                    doc,
                    old_doc: None,
                    changed: Vec::new(),
                })));
            }
        }
        Ok(Gate::Map)
    }

    /// The field mapping of an event that passed the gate.
    fn map_event(&self, event: &ChangeEvent) -> Result<Mapped, RuleError> {
        let name = &self.config.name;
        let old = event
            .old
            .as_ref()
            .filter(|_| event.kind == EventType::Update);
        let doc = self.fields.map(&event.data, name)?;
        let (old_doc, changed) = match (event.kind, old) {
            (EventType::Update, Some(old)) => (
                Some(self.fields.map_owned(overlay(&event.data, old), name)?),
                old.keys().cloned().collect(),
            ),
            (EventType::Update, None) => (Some(doc.clone()), Vec::new()),
            _ => (None, Vec::new()),
        };
        let id = self.render_id(&doc, event)?;
        Ok(Mapped {
            kind: event.kind,
            seq: event.seq,
            id,
            doc,
            old_doc,
            changed,
        })
    }

    /// [`Rule::map_event`] taking the event apart: one copy of the row (the UPDATE's
    /// before-image) instead of two, none for INSERT and DELETE with an identity mapping.
    fn map_event_owned(&self, event: ChangeEvent) -> Result<Mapped, RuleError> {
        let name = &self.config.name;
        // Rendered from the source row, as `map_event` does, before the row moves.
        let default = self.id.is_none().then(|| default_id(&event));
        let ChangeEvent {
            kind,
            seq,
            data,
            old,
            ..
        } = event;
        let old = old.filter(|_| kind == EventType::Update);
        let (doc, old_doc, changed) = match (kind, old) {
            (EventType::Update, Some(old)) => {
                let mut before = data.clone();
                let mut changed = Vec::with_capacity(old.len());
                for (k, v) in old {
                    changed.push(k.clone());
                    before.insert(k, v);
                }
                let doc = self.fields.map_owned(data, name)?;
                (doc, Some(self.fields.map_owned(before, name)?), changed)
            }
            (EventType::Update, None) => {
                let doc = self.fields.map_owned(data, name)?;
                let old_doc = doc.clone();
                (doc, Some(old_doc), Vec::new())
            }
            _ => (self.fields.map_owned(data, name)?, None, Vec::new()),
        };
        let id = match (&self.id, default) {
            (Some(t), _) => t.render(&doc).map_err(|e| e.with_rule(name))?,
            (None, Some(id)) => id,
            (None, None) => String::new(),
        };
        Ok(Mapped {
            kind,
            seq,
            id,
            doc,
            old_doc,
            changed,
        })
    }
}

/// What the checks before the mapping decided.
enum Gate {
    /// The rule skips the event.
    Skip,
    /// The event is already mapped (an UPDATE that left the `where` filter: a DELETE).
    Mapped(Box<Mapped>),
    /// Map the event's row.
    Map,
}

impl Rule {
    /// The `id` template over the mapped row, or the default id.
    fn render_id(&self, doc: &Row, event: &ChangeEvent) -> Result<String, RuleError> {
        match &self.id {
            Some(t) => t.render(doc).map_err(|e| e.with_rule(&self.config.name)),
            None => Ok(default_id(event)),
        }
    }
}

/// The full before-image of an UPDATE: `data` with `old` laid over it.
fn overlay(data: &Row, old: &Row) -> Row {
    let mut before = data.clone();
    for (k, v) in old {
        before.insert(k.clone(), v.clone());
    }
    before
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
