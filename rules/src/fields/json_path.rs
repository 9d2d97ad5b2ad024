//! Fields extracted from a JSON column with an RFC 9535 JSONPath.

use jsonpath_rust::parser::model::JpQuery;
use serde_json::Value;
use sluice_event::Row;

#[derive(Debug, Clone)]
pub(super) struct JsonField {
    pub(super) name: String,
    pub(super) column: String,
    pub(super) path: String,
    pub(super) query: JpQuery,
    pub(super) all: bool,
}

impl JsonField {
    pub(super) fn extract(&self, row: &Row) -> Result<Value, String> {
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
pub(super) fn jsonpath_error(e: &str) -> String {
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
