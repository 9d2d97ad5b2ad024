//! `[rules.fields]` compiled: which columns are kept, under which names, converted how, plus
//! JSONPath-extracted fields and constants.

use crate::config::{ConvertConfig, FieldsConfig, JsonPathConfig};
use crate::error::RuleError;
use crate::template::Template;
use chrono::{DateTime, Datelike, Timelike, Utc};
use jsonpath_rust::parser::model::JpQuery;
use serde_json::Value;
use sluice_config::Problems;
use sluice_event::Row;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

/// Conversion names, for error messages.
const CONVERSIONS: &str = "split, parse_json, map, epoch_seconds_to_date, epoch_seconds_to_datetime, epoch_millis_to_date, epoch_millis_to_datetime";

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

#[derive(Debug, Clone)]
enum Conversion {
    Split(String),
    ParseJson,
    Map {
        table: HashMap<String, Value>,
        default: Option<Value>,
    },
    Epoch {
        millis: bool,
        datetime: bool,
    },
}

#[derive(Debug, Clone)]
struct JsonField {
    name: String,
    column: String,
    path: String,
    query: JpQuery,
    all: bool,
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

impl Conversion {
    fn compile(spec: &ConvertConfig, key: &str, problems: &mut Problems) -> Option<Conversion> {
        let kind = spec.kind.as_str();
        let epoch = |millis, datetime| Conversion::Epoch { millis, datetime };
        let conv = match kind {
            "split" => match spec.separator.as_deref() {
                Some("") => {
                    problems.add(
                        format!("{key}.separator"),
                        "the separator is empty; give at least one character, e.g. \",\"",
                    );
                    return None;
                }
                sep => Conversion::Split(sep.unwrap_or(",").to_owned()),
            },
            "parse_json" => Conversion::ParseJson,
            "map" => match &spec.map {
                Some(table) => Conversion::Map {
                    table: table
                        .iter()
                        .map(|(k, v)| (k.clone(), toml_to_json(v)))
                        .collect(),
                    default: spec.default.as_ref().map(toml_to_json),
                },
                None => {
                    problems.add(key, "conversion `map` needs a `map` table, e.g. { type = \"map\", map = { \"0\" = \"new\", \"1\" = \"paid\" } }");
                    return None;
                }
            },
            "epoch_seconds_to_date" => epoch(false, false),
            "epoch_seconds_to_datetime" => epoch(false, true),
            "epoch_millis_to_date" => epoch(true, false),
            "epoch_millis_to_datetime" => epoch(true, true),
            other => {
                problems.add(
                    key,
                    format!("unknown conversion `{other}`; use one of: {CONVERSIONS}"),
                );
                return None;
            }
        };
        if spec.separator.is_some() && kind != "split" {
            problems.add(
                format!("{key}.separator"),
                format!("`separator` belongs to conversion `split`, not `{kind}`; remove it"),
            );
        }
        if (spec.map.is_some() || spec.default.is_some()) && kind != "map" {
            problems.add(
                key,
                format!(
                    "`map` and `default` belong to conversion `map`, not `{kind}`; remove them"
                ),
            );
        }
        Some(conv)
    }

    /// Converts one value; null stays null.
    fn apply(&self, value: &Value) -> Result<Value, String> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        match self {
            Conversion::Split(sep) => match value {
                Value::String(s) => Ok(Value::Array(
                    s.split(sep.as_str())
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(|p| Value::String(p.to_owned()))
                        .collect(),
                )),
                Value::Array(_) => Ok(value.clone()),
                other => Err(format!("expected text to split, got {}", kind_of(other))),
            },
            Conversion::ParseJson => match value {
                Value::String(s) => serde_json::from_str(s).map_err(|e| {
                    format!("the text is not JSON ({e}); fix the data or drop the conversion")
                }),
                // JSON columns arrive already parsed.
                other => Ok(other.clone()),
            },
            Conversion::Map { table, default } => {
                let found = match value {
                    Value::String(s) => table.get(s.as_str()),
                    Value::Number(n) => table.get(n.to_string().as_str()),
                    Value::Bool(b) => table.get(if *b { "true" } else { "false" }),
                    _ => None,
                };
                Ok(found
                    .or(default.as_ref())
                    .cloned()
                    .unwrap_or_else(|| value.clone()))
            }
            Conversion::Epoch { millis, datetime } => {
                epoch_text(value, *millis, *datetime).map(Value::String)
            }
        }
    }
}

/// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SSZ` or (millis) `YYYY-MM-DDTHH:MM:SS.mmmZ`, in UTC.
fn epoch_text(value: &Value, millis: bool, datetime: bool) -> Result<String, String> {
    let unit = if millis { "milliseconds" } else { "seconds" };
    let n = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("expected whole epoch {unit}, got {}", kind_of(value)))?;
    let t: Option<DateTime<Utc>> = if millis {
        DateTime::from_timestamp_millis(n)
    } else {
        DateTime::from_timestamp(n, 0)
    };
    let t = t.ok_or_else(|| format!("epoch {unit} {n} is out of the supported date range"))?;
    let mut s = format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day());
    if datetime {
        let _ = write!(s, "T{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
        if millis {
            let _ = write!(s, ".{:03}", t.timestamp_subsec_millis());
        }
        s.push('Z');
    }
    Ok(s)
}

impl JsonField {
    fn extract(&self, row: &Row) -> Result<Value, String> {
        let source = row.get(&self.column).ok_or_else(|| {
            format!(
                "column `{}` is not in the row (it has: {}); check fields.json_path column names",
                self.column,
                crate::template::column_list(row)
            )
        })?;
        let parsed;
        let doc = match source {
            Value::Null => {
                return Ok(if self.all {
                    Value::Array(Vec::new())
                } else {
                    Value::Null
                })
            }
            Value::String(s) => {
                parsed = serde_json::from_str::<Value>(s)
                    .map_err(|e| format!("the column's text is not JSON ({e})"))?;
                &parsed
            }
            other => other,
        };
        let found = jsonpath_rust::query::js_path_process(&self.query, doc)
            .map_err(|e| format!("query failed: {e}"))?;
        Ok(if self.all {
            Value::Array(found.into_iter().map(|r| r.val().clone()).collect())
        } else {
            found
                .into_iter()
                .next()
                .map_or(Value::Null, |r| r.val().clone())
        })
    }
}

/// jsonpath-rust's parse errors are pest reports over several lines; keep the position and
/// what was expected.
fn jsonpath_error(e: &str) -> String {
    let at = e
        .split_once("--> ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|pos| pos.split_once(':'))
        .map(|(_, col)| col.to_owned());
    let expected = e.lines().rev().find_map(|l| l.trim().strip_prefix("= "));
    match (expected, at) {
        (Some(what), Some(col)) => format!("{what} at character {col}"),
        _ => crate::error::one_line(e),
    }
}

fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.len() <= 40 => format!("the text \"{s}\""),
        Value::String(_) => "a long text".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
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
mod tests {
    use super::*;
    use crate::test_util::row;
    use serde_json::json;

    fn compile(toml_text: &str) -> (FieldMap, Problems) {
        let fields: FieldsConfig = toml::from_str(toml_text).unwrap();
        let mut problems = Problems::default();
        let map = FieldMap::compile(&fields, "rules[0].fields", &mut problems);
        (map, problems)
    }

    #[test]
    fn maps_rows() {
        let src = row(
            json!({"id": 7, "email": "A@x", "pw": "h", "amount": "12.30", "attrs": "{\"city\":\"Oslo\",\"n\":[1,2]}"}),
        );
        let cases = [
            ("", json!({"id": 7, "email": "A@x", "pw": "h", "amount": "12.30", "attrs": "{\"city\":\"Oslo\",\"n\":[1,2]}"})),
            ("exclude = ['pw', 'attrs']", json!({"id": 7, "email": "A@x", "amount": "12.30"})),
            ("include = ['amount', 'id']", json!({"id": 7, "amount": "12.30"})),
            ("include = ['id', 'amount']\nrename = { amount = 'total' }", json!({"id": 7, "total": "12.30"})),
            ("rename = { pw = 'hash' }\nexclude = ['attrs', 'email']", json!({"id": 7, "hash": "h", "amount": "12.30"})),
            (
                "include = ['id']\nconstants = { origin = 'shop', v = 2, on = true, list = [1, 'a'], when = 2026-11-21 }",
                json!({"id": 7, "origin": "shop", "v": 2, "on": true, "list": [1, "a"], "when": "2026-11-21"}),
            ),
            ("include = ['id', 'email']\nconstants = { email = 'hidden' }", json!({"id": 7, "email": "hidden"})),
            (
                "include = ['id']\njson_path = { city = { column = 'attrs', path = '$.city' }, ns = { column = 'attrs', path = '$.n[*]', all = true } }",
                json!({"id": 7, "city": "Oslo", "ns": [1, 2]}),
            ),
            (
                "include = ['id']\njson_path = { none = { column = 'attrs', path = '$.zip' }, nones = { column = 'attrs', path = '$.zip', all = true }, first = { column = 'attrs', path = '$.n[*]' } }",
                json!({"id": 7, "first": 1, "none": null, "nones": []}),
            ),
            (
                "include = ['id', 'attrs']\nconvert = { attrs = 'parse_json' }\nrename = { attrs = 'a' }",
                json!({"id": 7, "a": {"city": "Oslo", "n": [1, 2]}}),
            ),
        ];
        for (text, want) in cases {
            let (map, problems) = compile(text);
            assert!(problems.is_empty(), "{text}: {problems}");
            assert_eq!(Value::Object(map.map(&src, "r").unwrap()), want, "{text}");
        }
    }

    #[test]
    fn converts_values() {
        let cases = [
            ("'split'", json!("a, b,,c "), json!(["a", "b", "c"])),
            ("'split'", json!(""), json!([])),
            (
                "{ type = 'split', separator = '::' }",
                json!("a::b"),
                json!(["a", "b"]),
            ),
            ("'split'", json!(["x"]), json!(["x"])),
            ("'split'", json!(null), json!(null)),
            (
                "'parse_json'",
                json!("{\"a\":[1,null]}"),
                json!({"a": [1, null]}),
            ),
            ("'parse_json'", json!({"a": 1}), json!({"a": 1})),
            ("'parse_json'", json!("3"), json!(3)),
            (
                "{ type = 'map', map = { '0' = 'new', '1' = 'paid' } }",
                json!(1),
                json!("paid"),
            ),
            (
                "{ type = 'map', map = { '0' = 'new', '1' = 'paid' } }",
                json!("0"),
                json!("new"),
            ),
            (
                "{ type = 'map', map = { '0' = 'new' } }",
                json!(5),
                json!(5),
            ),
            (
                "{ type = 'map', map = { '0' = 'new' }, default = 'other' }",
                json!(5),
                json!("other"),
            ),
            (
                "{ type = 'map', map = { 'true' = 1 } }",
                json!(true),
                json!(1),
            ),
            (
                "{ type = 'map', map = { '0' = false }, default = true }",
                json!(null),
                json!(null),
            ),
            (
                "'epoch_seconds_to_date'",
                json!(1_763_716_502),
                json!("2025-11-21"),
            ),
            (
                "'epoch_seconds_to_datetime'",
                json!(1_763_716_502),
                json!("2025-11-21T09:15:02Z"),
            ),
            (
                "'epoch_seconds_to_datetime'",
                json!("0"),
                json!("1970-01-01T00:00:00Z"),
            ),
            (
                "'epoch_seconds_to_datetime'",
                json!(-1),
                json!("1969-12-31T23:59:59Z"),
            ),
            (
                "'epoch_millis_to_date'",
                json!(1_763_716_502_123_i64),
                json!("2025-11-21"),
            ),
            (
                "'epoch_millis_to_datetime'",
                json!(1_763_716_502_123_i64),
                json!("2025-11-21T09:15:02.123Z"),
            ),
            (
                "'epoch_millis_to_datetime'",
                json!(5),
                json!("1970-01-01T00:00:00.005Z"),
            ),
        ];
        for (spec, input, want) in cases {
            let (map, problems) = compile(&format!("convert = {{ c = {spec} }}"));
            assert!(problems.is_empty(), "{spec}: {problems}");
            let out = map.map(&row(json!({"c": input})), "r").unwrap();
            assert_eq!(out["c"], want, "{spec} on {input}");
        }
    }

    #[test]
    fn conversion_and_extraction_errors() {
        let cases = [
            ("convert = { c = 'split' }", json!(5), "rule `r`: fields.convert.c (`split`): expected text to split, got the number 5"),
            ("convert = { c = 'parse_json' }", json!("{oops"), "rule `r`: fields.convert.c (`parse_json`): the text is not JSON (key must be a string at line 1 column 2); fix the data or drop the conversion"),
            ("convert = { c = 'epoch_millis_to_date' }", json!("soon"), "rule `r`: fields.convert.c (`epoch_millis_to_date`): expected whole epoch milliseconds, got the text \"soon\""),
            ("convert = { c = 'epoch_seconds_to_date' }", json!(1.5), "rule `r`: fields.convert.c (`epoch_seconds_to_date`): expected whole epoch seconds, got the number 1.5"),
            ("convert = { c = 'epoch_seconds_to_date' }", json!(i64::MAX), "rule `r`: fields.convert.c (`epoch_seconds_to_date`): epoch seconds 9223372036854775807 is out of the supported date range"),
            ("json_path = { f = { column = 'c', path = '$.a' } }", json!("not json"), "rule `r`: fields.json_path.f (`$.a` on column `c`): the column's text is not JSON (expected ident at line 1 column 2)"),
            ("json_path = { f = { column = 'x', path = '$.a' } }", json!(1), "rule `r`: fields.json_path.f (`$.a` on column `x`): column `x` is not in the row (it has: c); check fields.json_path column names"),
        ];
        for (text, input, want) in cases {
            let (map, problems) = compile(text);
            assert!(problems.is_empty(), "{text}: {problems}");
            let err = map.map(&row(json!({"c": input})), "r").unwrap_err();
            assert_eq!(err.to_string(), want, "{text}");
            assert_eq!(err.rule(), Some("r"));
        }
    }

    #[test]
    fn reports_config_problems() {
        let cases = [
            ("convert = { tags = 'splitt' }", "  rules[0].fields.convert.tags: unknown conversion `splitt`; use one of: split, parse_json, map, epoch_seconds_to_date, epoch_seconds_to_datetime, epoch_millis_to_date, epoch_millis_to_datetime"),
            ("convert = { t = { type = 'split', separator = '' } }", "  rules[0].fields.convert.t.separator: the separator is empty; give at least one character, e.g. \",\""),
            ("convert = { t = { type = 'parse_json', separator = ',' } }", "  rules[0].fields.convert.t.separator: `separator` belongs to conversion `split`, not `parse_json`; remove it"),
            ("convert = { t = { type = 'split', default = 1 } }", "  rules[0].fields.convert.t: `map` and `default` belong to conversion `map`, not `split`; remove them"),
            ("convert = { t = 'map' }", "  rules[0].fields.convert.t: conversion `map` needs a `map` table, e.g. { type = \"map\", map = { \"0\" = \"new\", \"1\" = \"paid\" } }"),
            ("json_path = { city = { column = 'a', path = '$.[' } }", "  rules[0].fields.json_path.city.path: invalid JSONPath `$.[`: "),
            ("json_path = { city = { column = '', path = '$.a' } }", "  rules[0].fields.json_path.city.column: no column given; name the JSON column to read"),
            ("include = ['a']\nexclude = ['a']", "  rules[0].fields.include[0]: column `a` is in both fields.include and fields.exclude; keep it in one of them"),
            ("exclude = ['a']\nrename = { a = 'b' }", "  rules[0].fields.rename.a: column `a` is dropped by fields.exclude, so renaming it has no effect"),
            ("include = ['x']\nconvert = { a = 'split' }", "  rules[0].fields.convert.a: column `a` is not kept by fields.include, so converting it has no effect"),
            ("rename = { a = 'c', b = 'c' }", "  rules[0].fields.rename.b: columns `a` and `b` are both renamed to `c`; give them different names"),
            ("rename = { a = '' }", "  rules[0].fields.rename.a: renames the column to an empty name; give a field name"),
            ("constants = { c = 1 }\njson_path = { c = { column = 'a', path = '$.x' } }", "  rules[0].fields.constants.c: field `c` is also set by fields.json_path.c; keep one of them"),
        ];
        for (text, want) in cases {
            let (_, problems) = compile(text);
            let got = problems.to_string();
            assert!(got.starts_with(want), "{text}:\n got {got}\nwant {want}");
            assert_eq!(problems.iter().count(), 1, "{text}: {got}");
        }
    }

    #[test]
    fn template_columns_checked_against_fields() {
        let cases = [
            ("include = ['id', 'amount']\nrename = { amount = 'total' }", "{id}:{total}", ""),
            ("include = ['id']\nconstants = { t = 1 }\njson_path = { city = { column = 'a', path = '$.c' } }", "{t}/{city}/{id}", ""),
            ("include = ['id', 'status']", "{email}", "  rules[0].id: unknown column `email` in template `{email}`: fields.include does not keep it; add it to fields.include (kept: id, status)"),
            ("include = ['id', 'amount']\nrename = { amount = 'total' }", "{amount}", "  rules[0].id: unknown column `amount` in template `{amount}`: fields.rename renames it to `total`; write `{total}`"),
            ("exclude = ['pw']", "k:{pw}", "  rules[0].id: unknown column `pw` in template `k:{pw}`: fields.exclude drops it; remove it from fields.exclude or from the template"),
            ("exclude = ['pw']", "k:{anything}", ""),
            ("", "{whatever}", ""),
        ];
        for (fields, template, want) in cases {
            let (map, problems) = compile(fields);
            assert!(problems.is_empty(), "{fields}: {problems}");
            let mut problems = Problems::default();
            map.check_template(
                &Template::parse(template).unwrap(),
                "rules[0].id",
                &mut problems,
            );
            assert_eq!(problems.to_string(), want, "{fields} / {template}");
        }
    }
}
