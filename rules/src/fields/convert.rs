//! The `convert` conversions of one column: split, parse_json, map and the epoch formats.

use super::mask::Masking;
use super::toml_to_json;
use crate::config::ConvertConfig;
use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::Value;
use sluice_config::Problems;
use std::collections::HashMap;
use std::fmt::Write as _;

/// Conversion names, for error messages.
const CONVERSIONS: &str = "split, parse_json, map, epoch_seconds_to_date, epoch_seconds_to_datetime, epoch_millis_to_date, epoch_millis_to_datetime, hash, mask, null";

#[derive(Clone)]
pub(super) enum Conversion {
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
    /// `hash`, `mask` or `null`.
    Masked(Masking),
}

// The key never prints.
impl std::fmt::Debug for Conversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Conversion::Split(s) => write!(f, "Split({s:?})"),
            Conversion::ParseJson => f.write_str("ParseJson"),
            Conversion::Map { .. } => f.write_str("Map"),
            Conversion::Epoch { millis, datetime } => write!(f, "Epoch({millis}, {datetime})"),
            Conversion::Masked(m) => write!(f, "{m:?}"),
        }
    }
}

impl Conversion {
    pub(super) fn compile(
        spec: &ConvertConfig,
        key: &str,
        problems: &mut Problems,
    ) -> Option<Conversion> {
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
            "hash" | "mask" | "null" => Conversion::Masked(Masking::compile(spec, key, problems)?),
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
        if spec.key.is_some() && kind != "hash" {
            problems.add(
                format!("{key}.key"),
                format!("`key` belongs to conversion `hash`, not `{kind}`; remove it"),
            );
        }
        if (spec.keep_first.is_some() || spec.keep_last.is_some() || spec.mask_with.is_some())
            && kind != "mask"
        {
            problems.add(
                key,
                format!("`keep_first`, `keep_last` and `with` belong to conversion `mask`, not `{kind}`; remove them"),
            );
        }
        Some(conv)
    }

    /// Converts one value; null stays null.
    pub(super) fn apply(&self, value: &Value) -> Result<Value, String> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        match self {
            Conversion::Masked(m) => Ok(m.apply(value)),
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
