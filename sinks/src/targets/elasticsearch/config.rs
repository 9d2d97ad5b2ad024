//! What users write for Elasticsearch/OpenSearch: `[targets.<name>] type = "elasticsearch"` and
//! `[rules.elasticsearch]`.

use super::super::parse_rule_table;
use elasticsearch::http::Url;
use serde::Deserialize;
use sluice_config::{Problems, Secret};
use sluice_rules::{Rule, Template};
use std::path::{Path, PathBuf};

/// Request timeout for one bulk request unless configured; a timeout is a transient error.
pub const DEFAULT_ES_TIMEOUT_MS: u64 = 30_000;

/// `[targets.<name>] type = "elasticsearch"`: a cluster that speaks the `_bulk` API
/// (Elasticsearch 7/8/9, OpenSearch 1/2/3).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Node URLs, e.g. `["https://es1:9200", "https://es2:9200"]`; requests go round-robin.
    pub urls: Vec<String>,
    /// Basic-auth user; needs `password`.
    pub username: Option<String>,
    /// Basic-auth password, from the environment: `password = "${ES_PASSWORD}"`.
    pub password: Option<Secret>,
    /// API key instead of basic auth: the encoded form (base64 of `id:key`) or `id:key`.
    pub api_key: Option<Secret>,
    /// PEM file with the CA certificate(s) that signed the servers' certificates.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. Off by default; for test clusters only.
    #[serde(default)]
    pub tls_skip_verify: bool,
    /// Timeout of one request in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Gzip request bodies (`Content-Encoding: gzip`): less network, more CPU.
    #[serde(default)]
    pub gzip: bool,
}

/// `[rules.elasticsearch]`: where a rule's documents go and how they are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchRuleConfig {
    /// Index (or alias) template over the mapped row, e.g. `orders` or `orders-{created_at|month}`.
    pub index: String,
    /// Routing template, e.g. `{tenant_id}`; default: the server routes by `_id`.
    pub routing: Option<String>,
    /// Ingest pipeline for indexed documents (mode `index` only).
    pub pipeline: Option<String>,
    /// `index` (default): whole documents versioned by `seq`. `upsert`: partial updates.
    #[serde(default)]
    pub mode: Mode,
    /// Mode `upsert` only: what a DELETE does, `document` (default) or `fields`.
    pub delete: Option<DeleteMode>,
    /// JSON file with `settings`/`mappings`; the index is created with it at start-up if missing.
    pub create_index: Option<PathBuf>,
}

/// How documents are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `index` with `version = seq`, `version_type = external_gte`; DELETE → versioned `delete`.
    #[default]
    Index,
    /// A scripted `update` that writes only this rule's fields, skipped when the document holds a
    /// newer `seq` of this rule (docs/elasticsearch.md, *mode = "upsert"*).
    Upsert,
}

/// What a DELETE does in mode `upsert`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleteMode {
    /// Delete the whole document.
    #[default]
    Document,
    /// Remove this rule's fields from the document (a Painless script), keeping the rest.
    Fields,
}

/// A rule's Elasticsearch settings, parsed and checked.
#[derive(Debug, Clone)]
pub struct ElasticsearchRule {
    /// The rule's name: in mode `upsert` the key of its `seq` in each document.
    pub name: String,
    pub index: Template,
    pub routing: Option<Template>,
    pub pipeline: Option<String>,
    pub mode: Mode,
    pub delete: DeleteMode,
    /// The body of `PUT /<index>` (read at start-up) for a constant index name.
    pub create_index: Option<serde_json::Value>,
}

impl ElasticsearchConfig {
    /// Checks `[targets.<name>]`; `path` is `targets.<name>`.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        if self.urls.is_empty() {
            problems.add(
                format!("{path}.urls"),
                "no URLs; list the cluster's nodes, e.g. [\"http://127.0.0.1:9200\"]",
            );
        }
        for (i, u) in self.urls.iter().enumerate() {
            if let Err(e) = parse_url(u) {
                problems.add(format!("{path}.urls[{i}]"), e);
            }
        }
        match (&self.username, &self.password) {
            (Some(_), None) => problems.add(
                format!("{path}.password"),
                "username is set but password is not; add password = \"${ES_PASSWORD}\"",
            ),
            (None, Some(_)) => problems.add(
                format!("{path}.username"),
                "password is set but username is not; add username",
            ),
            _ => {}
        }
        if let Some(key) = &self.api_key {
            if self.username.is_some() {
                problems.add(
                    format!("{path}.api_key"),
                    "set either api_key or username/password, not both",
                );
            }
            let k = key.expose();
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic()) {
                problems.add(
                    format!("{path}.api_key"),
                    "must be the encoded API key (base64) or `id:key`, without spaces or control characters",
                );
            }
        }
        if let Some(ca) = &self.ca_file {
            if self.tls_skip_verify {
                problems.add(
                    format!("{path}.tls_skip_verify"),
                    "set either ca_file (verify against that CA) or tls_skip_verify, not both",
                );
            }
            if let Err(e) = read_ca(ca) {
                problems.add(format!("{path}.ca_file"), e);
            }
        }
        if self.timeout_ms == 0 {
            problems.add(format!("{path}.timeout_ms"), "must be at least 1");
        }
    }
}

impl ElasticsearchRule {
    /// Parses and checks `rules[i].elasticsearch`; `path` is `rules[i]`.
    pub fn parse(path: &str, rule: &Rule, problems: &mut Problems) -> Option<ElasticsearchRule> {
        let path = format!("{path}.elasticsearch");
        let Some(table) = &rule.config().elasticsearch else {
            problems.add(
                path,
                format!(
                    "missing; target `{}` is Elasticsearch, so the rule needs [rules.elasticsearch] with index = \"<name>\"",
                    rule.target()
                ),
            );
            return None;
        };
        let config: ElasticsearchRuleConfig = parse_rule_table(&path, table, problems)?;
        let before = problems.iter().count();
        let index = template(rule, &format!("{path}.index"), &config.index, problems);
        if config.index.trim().is_empty() {
            problems.add(
                format!("{path}.index"),
                "empty; name the index, e.g. \"orders\"",
            );
        } else if let Some(bad) = literal_text(&config.index)
            .chars()
            .find(|c| c.is_ascii_uppercase() || " \"*\\<>|,#?/".contains(*c))
        {
            problems.add(
                format!("{path}.index"),
                format!("`{}` cannot be an index name: `{bad}` is not allowed (index names are lower-case, without spaces or \" * \\ < > | , # ? /)", config.index),
            );
        }
        let routing = config
            .routing
            .as_deref()
            .and_then(|r| template(rule, &format!("{path}.routing"), r, problems));
        if config.mode == Mode::Upsert && config.pipeline.is_some() {
            problems.add(
                format!("{path}.pipeline"),
                "only applies to mode = \"index\": the update API runs no ingest pipeline; set a default_pipeline on the index instead",
            );
        }
        if config.mode == Mode::Index && config.delete.is_some() {
            problems.add(
                format!("{path}.delete"),
                "only applies to mode = \"upsert\"; in mode \"index\" a DELETE deletes the document",
            );
        }
        let mut create_index = None;
        if let Some(file) = &config.create_index {
            if index.as_ref().is_some_and(|t| t.columns().next().is_some()) {
                problems.add(
                    format!("{path}.create_index"),
                    format!("needs a fixed index name, but index = \"{}\" is a template; create an index template on the server for such names instead", config.index),
                );
            }
            match read_json(file) {
                Ok(v) => create_index = Some(v),
                Err(e) => problems.add(format!("{path}.create_index"), e),
            }
        }
        (problems.iter().count() == before)
            .then_some(())
            .and(index)
            .map(|index| ElasticsearchRule {
                name: rule.name().to_owned(),
                index,
                routing,
                pipeline: config.pipeline,
                mode: config.mode,
                delete: config.delete.unwrap_or_default(),
                create_index,
            })
    }

    /// Validation only: the problems [`ElasticsearchRule::parse`] would report.
    pub fn validate(path: &str, rule: &Rule, problems: &mut Problems) {
        let _ = ElasticsearchRule::parse(path, rule, problems);
    }
}

fn template(rule: &Rule, path: &str, text: &str, problems: &mut Problems) -> Option<Template> {
    match Template::parse(text) {
        Ok(t) => {
            rule.check_template(&t, path, problems);
            Some(t)
        }
        Err(e) => {
            problems.add(path, e.to_string());
            None
        }
    }
}

/// The template's text outside its `{placeholders}` (what it renders as is).
fn literal_text(template: &str) -> String {
    let mut depth = 0usize;
    template
        .chars()
        .filter(|c| {
            match c {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                _ => return depth == 0,
            }
            false
        })
        .collect()
}

/// A node URL: http or https with a host.
pub fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| {
        format!("`{text}` is not a URL ({e}); write e.g. \"http://127.0.0.1:9200\"")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "`{text}` is not an http(s) URL with a host; write e.g. \"https://es1:9200\""
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "the URL of {} has credentials in it; put them in username/password (from the environment) instead",
            url.host_str().unwrap_or_default()
        ));
    }
    Ok(url)
}

/// The PEM bytes of a CA file, or what is wrong with it.
pub fn read_ca(path: &Path) -> Result<Vec<u8>, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the CA certificate in PEM form",
            path.display()
        ));
    }
    Ok(pem)
}

fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read {}: {e}; the path is relative to the working directory",
            path.display()
        )
    })?;
    let v: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
        format!(
            "{} is not JSON ({e}); it must hold the body of PUT /<index>, e.g. {{\"mappings\":{{...}}}}",
            path.display()
        )
    })?;
    if !v.is_object() {
        return Err(format!(
            "{} must hold a JSON object with settings and/or mappings",
            path.display()
        ));
    }
    Ok(v)
}

fn default_timeout_ms() -> u64 {
    DEFAULT_ES_TIMEOUT_MS
}

#[cfg(test)]
mod tests {
    use crate::SinkConfig;
    use std::path::Path;

    const BASE: &str = r#"
[kafka]
brokers = ["127.0.0.1:9092"]
[consumer]
group_id = "g"
topics = ["t"]
[targets.search]
type = "elasticsearch"
urls = ["http://127.0.0.1:9200"]
"#;

    fn parse(text: &str) -> Result<SinkConfig, String> {
        sluice_config::parse::<SinkConfig>(text, Path::new("sink.toml"), |_| None)
            .map_err(|e| e.to_string())
    }

    fn with_rule(target_extra: &str, rule: &str) -> String {
        format!("{BASE}{target_extra}\n[[rules]]\nname = \"orders\"\ntarget = \"search\"\nmatch = {{ tables = [\"shop.orders\"] }}\n{rule}")
    }

    #[test]
    fn example_config_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let path = dir.join("config/examples/sink-search.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        // create_index paths are relative to the working directory: the repository root.
        let text = text.replace(
            "\"config/examples/",
            &format!("\"{}/config/examples/", dir.display()),
        );
        let c = sluice_config::parse::<SinkConfig>(&text, &path, |_| None).unwrap();
        assert_eq!(c.rules.len(), 1);
        assert!(matches!(
            c.targets["search"],
            crate::targets::TargetConfig::Elasticsearch(_)
        ));
    }

    #[test]
    fn a_valid_rule_parses() {
        let c = parse(&with_rule(
            "gzip = true\ntimeout_ms = 5000\n",
            "[rules.elasticsearch]\nindex = \"orders-{created_at|month}\"\nrouting = \"{tenant}\"\nmode = \"upsert\"\ndelete = \"fields\"\n",
        ))
        .unwrap();
        assert_eq!(c.rules.len(), 1);
    }

    /// Each bad setting with the exact message a user sees.
    #[test]
    fn bad_settings_say_what_and_where() {
        let p = "sink.toml: invalid configuration:\n  ";
        let cases: Vec<(String, String)> = vec![
            (
                with_rule("", ""),
                format!("{p}rules[0].elasticsearch: missing; target `search` is Elasticsearch, so the rule needs [rules.elasticsearch] with index = \"<name>\""),
            ),
            (
                with_rule("", "[rules.elasticsearch]\nindex = \"Orders\"\n"),
                format!("{p}rules[0].elasticsearch.index: `Orders` cannot be an index name: `O` is not allowed (index names are lower-case, without spaces or \" * \\ < > | , # ? /)"),
            ),
            (
                with_rule("", "[rules.elasticsearch]\nindex = \"orders\"\nmode = \"upsert\"\npipeline = \"p\"\n"),
                format!("{p}rules[0].elasticsearch.pipeline: only applies to mode = \"index\": the update API runs no ingest pipeline; set a default_pipeline on the index instead"),
            ),
            (
                with_rule("", "[rules.elasticsearch]\nindex = \"orders\"\ndelete = \"fields\"\n"),
                format!("{p}rules[0].elasticsearch.delete: only applies to mode = \"upsert\"; in mode \"index\" a DELETE deletes the document"),
            ),
            (
                with_rule("", "fields = { include = [\"id\"] }\n[rules.elasticsearch]\nindex = \"orders\"\nrouting = \"{tenant}\"\n"),
                format!("{p}rules[0].elasticsearch.routing: unknown column `tenant` in template `{{tenant}}`: fields.include does not keep it; add it to fields.include (kept: id)"),
            ),
            (
                with_rule("", "[rules.elasticsearch]\nindex = \"orders-{m}\"\ncreate_index = \"/nonexistent/m.json\"\n"),
                format!("{p}rules[0].elasticsearch.create_index: needs a fixed index name, but index = \"orders-{{m}}\" is a template; create an index template on the server for such names instead\n  rules[0].elasticsearch.create_index: cannot read /nonexistent/m.json: No such file or directory (os error 2); the path is relative to the working directory"),
            ),
            (
                with_rule("", "[rules.elasticsearch]\nindex = \"orders\"\nmode = \"merge\"\n"),
                "unknown variant `merge`, expected `index` or `upsert`".into(),
            ),
            (
                with_rule("username = \"u\"\n", "[rules.elasticsearch]\nindex = \"o\"\n"),
                format!("{p}targets.search.password: username is set but password is not; add password = \"${{ES_PASSWORD}}\""),
            ),
            (
                with_rule("api_key = \"a b\"\n", "[rules.elasticsearch]\nindex = \"o\"\n"),
                format!("{p}targets.search.api_key: must be the encoded API key (base64) or `id:key`, without spaces or control characters"),
            ),
            (
                with_rule("timeout_ms = 0\ntls_skip_verify = true\nca_file = \"/nonexistent.pem\"\n", "[rules.elasticsearch]\nindex = \"o\"\n"),
                format!("{p}targets.search.tls_skip_verify: set either ca_file (verify against that CA) or tls_skip_verify, not both\n  targets.search.ca_file: cannot read CA file /nonexistent.pem: No such file or directory (os error 2)\n  targets.search.timeout_ms: must be at least 1"),
            ),
            (
                with_rule("", "[rules.elasticsearch]\nindex = \"o\"\n").replace("http://127.0.0.1:9200", "ftp://x"),
                format!("{p}targets.search.urls[0]: `ftp://x` is not an http(s) URL with a host; write e.g. \"https://es1:9200\""),
            ),
            (
                with_rule("", "[rules.elasticsearch]\nindex = \"o\"\n").replace("http://127.0.0.1:9200", "http://u:pw@es:9200"),
                format!("{p}targets.search.urls[0]: the URL of es has credentials in it; put them in username/password (from the environment) instead"),
            ),
            (
                with_rule("", "[rules.elasticsearch]\nindex = \"o\"\n[rules.redis]\nkeys = [\"k\"]\n"),
                format!("{p}rules[0].redis: target `search` is not of type redis; remove [rules.redis] or point the rule at a redis target"),
            ),
        ];
        for (text, want) in cases {
            let err = parse(&text).unwrap_err();
            if want.starts_with(p) {
                assert_eq!(err, want);
            } else {
                assert!(err.contains(&want), "want {want:?}\n got {err:?}");
            }
        }
    }
}
