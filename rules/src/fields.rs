//! `[rules.fields]` compiled: which columns are kept, under which names, converted how, plus
//! JSONPath-extracted fields and constants. The conversions are in `convert`, the JSONPath
//! fields in `json_path`.

mod convert;
mod json_path;
pub(crate) mod mask;

use crate::config::{FieldsConfig, JsonPathConfig};
use crate::error::RuleError;
use crate::template::Template;
use convert::Conversion;
use json_path::{jsonpath_error, JsonField};
use serde_json::Value;
use sluice_config::Problems;
use sluice_event::Row;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The compiled field mapping of one rule.
#[derive(Debug, Clone)]
pub(crate) struct FieldMap {
    /// Plans for the source columns the config names; unnamed columns follow `keep_unlisted`.
    columns: HashMap<String, ColumnPlan>,
    /// False when `include` is given.
    keep_unlisted: bool,
    json_paths: Vec<JsonField>,
    constants: Vec<(String, Value)>,
    /// No option set: the mapped row is the source row.
    identity: bool,
    include: Option<Vec<String>>,
    exclude: HashSet<String>,
    rename: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
struct ColumnPlan {
    keep: bool,
    rename: Option<String>,
    convert: Option<(String, Conversion)>,
}

impl FieldMap {
    /// Compiles `fields`; problems are added under `path` (e.g. `rules[0].fields`).
    pub(crate) fn compile(fields: &FieldsConfig, path: &str, problems: &mut Problems) -> FieldMap {
        let mut columns: HashMap<String, ColumnPlan> = HashMap::new();
        let keep_unlisted = fields.include.is_none();
        let exclude: HashSet<String> = fields.exclude.iter().cloned().collect();
        for (i, c) in fields.include.iter().flatten().enumerate() {
            if exclude.contains(c) {
                problems.add(
                    format!("{path}.include[{i}]"),
                    format!("column `{c}` is in both fields.include and fields.exclude; keep it in one of them"),
                );
            }
            columns.entry(c.clone()).or_default().keep = true;
        }
        for c in &fields.exclude {
            columns.entry(c.clone()).or_default().keep = false;
        }
        let map = FieldMap {
            columns: HashMap::new(),
            keep_unlisted,
            json_paths: Vec::new(),
            constants: Vec::new(),
            identity: false,
            include: fields.include.clone(),
            exclude,
            rename: fields.rename.clone(),
        };

        let mut targets: HashMap<&str, &str> = HashMap::new();
        for (from, to) in &fields.rename {
            let key = format!("{path}.rename.{from}");
            if to.is_empty() {
                problems.add(
                    key,
                    "renames the column to an empty name; give a field name",
                );
                continue;
            }
            if let Some(reason) = map.dropped(from) {
                problems.add(
                    key.clone(),
                    format!("column `{from}` is {reason}, so renaming it has no effect"),
                );
            }
            if let Some(other) = targets.insert(to, from) {
                problems.add(
                    key,
                    format!("columns `{other}` and `{from}` are both renamed to `{to}`; give them different names"),
                );
            }
            columns
                .entry(from.clone())
                .or_insert_with(|| ColumnPlan {
                    keep: keep_unlisted,
                    ..ColumnPlan::default()
                })
                .rename = Some(to.clone());
        }

        for (column, spec) in &fields.convert {
            let key = format!("{path}.convert.{column}");
            if let Some(reason) = map.dropped(column) {
                problems.add(
                    key.clone(),
                    format!("column `{column}` is {reason}, so converting it has no effect"),
                );
            }
            if let Some(conv) = Conversion::compile(spec, &key, problems) {
                columns
                    .entry(column.clone())
                    .or_insert_with(|| ColumnPlan {
                        keep: keep_unlisted,
                        ..ColumnPlan::default()
                    })
                    .convert = Some((spec.kind.clone(), conv));
            }
        }

        let mut json_paths = Vec::new();
        for (
            name,
            JsonPathConfig {
                column,
                path: jp,
                all,
            },
        ) in &fields.json_path
        {
            let key = format!("{path}.json_path.{name}");
            if column.is_empty() {
                problems.add(
                    format!("{key}.column"),
                    "no column given; name the JSON column to read",
                );
            }
            match jsonpath_rust::parser::parse_json_path(jp) {
                Ok(query) => json_paths.push(JsonField {
                    name: name.clone(),
                    column: column.clone(),
                    path: jp.clone(),
                    query,
                    all: *all,
                }),
                Err(e) => problems.add(
                    format!("{key}.path"),
                    format!("invalid JSONPath `{jp}`: {}; write an RFC 9535 path such as `$.address.city` or `$.items[*].sku`", jsonpath_error(&e.to_string())),
                ),
            }
        }

        let mut constants = Vec::new();
        for (name, value) in &fields.constants {
            if fields.json_path.contains_key(name) {
                problems.add(
                    format!("{path}.constants.{name}"),
                    format!(
                        "field `{name}` is also set by fields.json_path.{name}; keep one of them"
                    ),
                );
            }
            constants.push((name.clone(), toml_to_json(value)));
        }

        let identity = columns.is_empty() && json_paths.is_empty() && constants.is_empty();
        FieldMap {
            columns,
            json_paths,
            constants,
            identity,
            ..map
        }
    }

    /// Why a source column never reaches the mapped row, if it does not.
    fn dropped(&self, column: &str) -> Option<&'static str> {
        if self.exclude.contains(column) {
            Some("dropped by fields.exclude")
        } else if self
            .include
            .as_ref()
            .is_some_and(|inc| !inc.iter().any(|c| c == column))
        {
            Some("not kept by fields.include")
        } else {
            None
        }
    }

    /// Adds a problem for each template column that cannot be in the mapped row. Without the
    /// source schema, a column can only be proven missing when `include`, `exclude` or `rename`
    /// says so; other names are checked per event.
    pub(crate) fn check_template(&self, template: &Template, path: &str, problems: &mut Problems) {
        for column in template.columns() {
            let produced = self.json_paths.iter().any(|j| j.name == column)
                || self.constants.iter().any(|(n, _)| n == column)
                || self
                    .rename
                    .iter()
                    .any(|(from, to)| to == column && self.dropped(from).is_none());
            if produced {
                continue;
            }
            let t = template.as_str();
            if let Some(to) = self.rename.get(column) {
                problems.add(
                    path,
                    format!("unknown column `{column}` in template `{t}`: fields.rename renames it to `{to}`; write `{{{to}}}`"),
                );
            } else if self.exclude.contains(column) {
                problems.add(
                    path,
                    format!("unknown column `{column}` in template `{t}`: fields.exclude drops it; remove it from fields.exclude or from the template"),
                );
            } else if let Some(include) = &self.include {
                if !include.iter().any(|c| c == column) {
                    problems.add(
                        path,
                        format!(
                            "unknown column `{column}` in template `{t}`: fields.include does not keep it; add it to fields.include (kept: {})",
                            self.output_names().join(", ")
                        ),
                    );
                }
            }
        }
    }

    /// Output field names known without the schema (all of them when `include` is given).
    fn output_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for c in self.include.iter().flatten() {
            if self.dropped(c).is_none() {
                names.push(self.rename.get(c).map_or(c.as_str(), String::as_str));
            }
        }
        names.extend(self.json_paths.iter().map(|j| j.name.as_str()));
        names.extend(self.constants.iter().map(|(n, _)| n.as_str()));
        names
    }

    /// Maps a source row that the caller owns (no copy when the mapping is the identity).
    pub(crate) fn map_owned(&self, row: Row, rule: &str) -> Result<Row, RuleError> {
        if self.identity {
            Ok(row)
        } else {
            self.map(&row, rule)
        }
    }

    /// Maps a source row.
    pub(crate) fn map(&self, row: &Row, rule: &str) -> Result<Row, RuleError> {
        if self.identity {
            return Ok(row.clone());
        }
        let mut out = Row::with_capacity(row.len() + self.json_paths.len() + self.constants.len());
        for (column, value) in row {
            let Some(plan) = self.columns.get(column) else {
                if self.keep_unlisted {
                    out.insert(column.clone(), value.clone());
                }
                continue;
            };
            if !plan.keep {
                continue;
            }
            let value = match &plan.convert {
                None => value.clone(),
                Some((name, conv)) => conv.apply(value).map_err(|message| RuleError::Convert {
                    rule: rule.to_owned(),
                    column: column.clone(),
                    conversion: name.clone(),
                    message,
                })?,
            };
            out.insert(plan.rename.as_ref().unwrap_or(column).clone(), value);
        }
        for field in &self.json_paths {
            let value = field.extract(row).map_err(|message| RuleError::JsonPath {
                rule: rule.to_owned(),
                field: field.name.clone(),
                column: field.column.clone(),
                path: field.path.clone(),
                message,
            })?;
            out.insert(field.name.clone(), value);
        }
        for (name, value) in &self.constants {
            out.insert(name.clone(), value.clone());
        }
        Ok(out)
    }
}

/// TOML to JSON; datetimes become their TOML text.
pub(crate) fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests;
