//! What a user writes in a `[[rules]]` block (documented in docs/rules.md).

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// One `[[rules]]` block: which tables, which rows, how they map, and where they go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique within the sink config; named in errors, metrics and dead-letter headers.
    pub name: String,
    /// Name of a `[targets.<name>]` in the sink config.
    pub target: String,
    /// Which `database.table` (and optionally which source instance) the rule applies to.
    #[serde(rename = "match")]
    pub matcher: MatchConfig,
    /// Row filter expression (docs/rules.md, "where"); the rule skips rows it rejects.
    #[serde(rename = "where", default)]
    pub filter: Option<String>,
    /// Field mapping: include/exclude, rename, constants, conversions, JSONPath extraction.
    #[serde(default)]
    pub fields: FieldsConfig,
    /// Id/key template over the mapped row; default: primary-key values joined by `:`.
    #[serde(default)]
    pub id: Option<String>,
    /// For UPDATE: skip the rule unless one of these source columns is in `old`.
    #[serde(default)]
    pub only_if_changed: Vec<String>,
    /// What the sink does with a message this rule cannot map: dead-letter it or stop.
    #[serde(default)]
    pub on_error: OnError,
    /// Redis target options, parsed and validated by the sink's Redis module.
    #[serde(default)]
    pub redis: Option<toml::Table>,
    /// Elasticsearch/OpenSearch target options, parsed and validated by the sink.
    #[serde(default)]
    pub elasticsearch: Option<toml::Table>,
    /// MySQL target options, parsed and validated by the sink.
    #[serde(default)]
    pub mysql: Option<toml::Table>,
}

/// `match = { tables = [...], source = "..." }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Each entry: exact `shop.orders`, glob `shop.orders_*`, or regex `/^shop\.orders_\d+$/`.
    pub tables: Vec<String>,
    /// Source instance name; when set, events of other instances do not match.
    #[serde(default)]
    pub source: Option<String>,
}

/// What happens to a message that a rule cannot map (a definite error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Send the message to the dead-letter topic with the reason, then move on.
    #[default]
    DeadLetter,
    /// Halt the sink with the error.
    Stop,
}

/// `[rules.fields]`: how a source row becomes the mapped row.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldsConfig {
    /// Keep only these source columns (default: all).
    #[serde(default)]
    pub include: Option<Vec<String>>,
    /// Drop these source columns.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Source column name to output field name.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Fields added to every mapped row, with fixed values.
    #[serde(default)]
    pub constants: BTreeMap<String, toml::Value>,
    /// Source column name to conversion.
    #[serde(default)]
    pub convert: BTreeMap<String, ConvertConfig>,
    /// Output field name to a JSONPath query on a JSON column.
    #[serde(default)]
    pub json_path: BTreeMap<String, JsonPathConfig>,
}

/// One conversion: either its name alone (`"parse_json"`) or a table with its options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConvertConfig {
    /// `split`, `parse_json`, `map`, `epoch_seconds_to_date`, `epoch_seconds_to_datetime`,
    /// `epoch_millis_to_date`, `epoch_millis_to_datetime`, or the maskings `hash`, `mask` and
    /// `null` (docs/rules.md).
    pub kind: String,
    /// `split`: the separator, default `,`.
    pub separator: Option<String>,
    /// `map`: source value (as text) to output value.
    pub map: Option<BTreeMap<String, toml::Value>>,
    /// `map`: the output for values not in `map`; without it they pass unchanged.
    pub default: Option<toml::Value>,
    /// `hash`: the HMAC key, from the environment (`key = "${SLUICE_HASH_KEY}"`).
    pub key: Option<sluice_config::Secret>,
    /// `mask`: characters kept at the start (default 0).
    pub keep_first: Option<usize>,
    /// `mask`: characters kept at the end (default 0).
    pub keep_last: Option<usize>,
    /// `mask`: the character put in place of the others (default `*`).
    pub mask_with: Option<char>,
}

/// `json_path.<field> = { column = "attrs", path = "$.address.city" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonPathConfig {
    /// The source column holding JSON (a JSON column, or text holding JSON).
    pub column: String,
    /// The JSONPath query (RFC 9535), e.g. `$.address.city`.
    pub path: String,
    /// Always produce an array of every match (default: the first match, or null).
    #[serde(default)]
    pub all: bool,
}

/// The table form of a conversion; `type` names it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConvertTable {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    separator: Option<String>,
    #[serde(default)]
    map: Option<BTreeMap<String, toml::Value>>,
    #[serde(default)]
    default: Option<toml::Value>,
    #[serde(default)]
    key: Option<sluice_config::Secret>,
    #[serde(default)]
    keep_first: Option<usize>,
    #[serde(default)]
    keep_last: Option<usize>,
    #[serde(default)]
    with: Option<char>,
}

impl<'de> Deserialize<'de> for ConvertConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ConvertVisitor;

        impl<'de> Visitor<'de> for ConvertVisitor {
            type Value = ConvertConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a conversion name such as \"parse_json\", or a table with `type`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ConvertConfig, E> {
                Ok(ConvertConfig {
                    kind: v.to_owned(),
                    ..ConvertConfig::default()
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ConvertConfig, A::Error> {
                let t = ConvertTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ConvertConfig {
                    kind: t.kind,
                    separator: t.separator,
                    map: t.map,
                    default: t.default,
                    key: t.key,
                    keep_first: t.keep_first,
                    keep_last: t.keep_last,
                    mask_with: t.with,
                })
            }
        }

        deserializer.deserialize_any(ConvertVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        rules: Vec<RuleConfig>,
    }

    fn parse(text: &str) -> Result<File, String> {
        toml::from_str::<File>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn full_rule_parses() {
        let f = parse(
            r#"
[[rules]]
name = "orders"
target = "search"
match = { tables = ["shop.orders_*"], source = "shop-main" }
where = 'status != "deleted"'
id = "{tenant}:{id}"
only_if_changed = ["status"]
on_error = "stop"

[rules.fields]
include = ["id", "status", "attrs"]
exclude = ["secret"]
rename = { status = "state" }
constants = { origin = "shop", weight = 2 }
convert = { tags = { type = "split", separator = ";" }, attrs = "parse_json" }
json_path = { city = { column = "attrs", path = "$.city" } }

[rules.elasticsearch]
index = "orders"
"#,
        )
        .unwrap();
        let r = &f.rules[0];
        assert_eq!(r.matcher.tables, ["shop.orders_*"]);
        assert_eq!(r.matcher.source.as_deref(), Some("shop-main"));
        assert_eq!(r.on_error, OnError::Stop);
        assert_eq!(r.fields.convert["attrs"].kind, "parse_json");
        assert_eq!(r.fields.convert["tags"].separator.as_deref(), Some(";"));
        assert_eq!(r.fields.json_path["city"].path, "$.city");
        assert!(!r.fields.json_path["city"].all);
        assert_eq!(
            r.elasticsearch.as_ref().unwrap()["index"].as_str(),
            Some("orders")
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let cases = [
            (
                "[[rules]]\nname='a'\ntarget='t'\nmatch={tables=['a.b']}\nwhere_='x'\n",
                "unknown field `where_`",
            ),
            (
                "[[rules]]\nname='a'\ntarget='t'\nmatch={table=['a.b']}\n",
                "unknown field `table`",
            ),
            (
                "[[rules]]\nname='a'\ntarget='t'\nmatch={tables=['a.b']}\nfields={convert={x={type='split',sep=','}}}\n",
                "unknown field `sep`",
            ),
            (
                "[[rules]]\nname='a'\ntarget='t'\nmatch={tables=['a.b']}\non_error='ignore'\n",
                "unknown variant `ignore`",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
