//! The requests: the client, one `_bulk` request per chunk, index creation and alias swaps.

use super::config::{parse_url, read_ca, ElasticsearchConfig};
use super::encoder::Op;
use super::retry::{classify, is_pressure, Failure};
use crate::targets::Outcome;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::transport::{
    MultiNodeConnectionPool, SingleNodeConnectionPool, Transport, TransportBuilder,
};
use elasticsearch::indices::{IndicesCreateParts, IndicesExistsParts, IndicesGetAliasParts};
use elasticsearch::{BulkParts, Elasticsearch};
use serde::Deserialize;
use std::time::Duration;

/// The server's answer to one bulk action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `error.type`; empty on success.
    pub kind: String,
    /// `error.reason` (and `caused_by.reason`); empty on success.
    pub reason: String,
}

/// A bulk request that failed as a whole: the outcome for all its items, and whether the
/// server said it was overloaded (or the request too big).
#[derive(Debug, Clone)]
pub struct RequestFailed {
    pub outcome: Outcome,
    pub pressure: bool,
}

/// Builds the client for `config`; the error says which setting is wrong.
pub fn client(config: &ElasticsearchConfig) -> Result<Elasticsearch, String> {
    let urls = config
        .urls
        .iter()
        .map(|u| parse_url(u))
        .collect::<Result<Vec<_>, _>>()?;
    let transport = match urls.as_slice() {
        [] => return Err("no URLs configured".into()),
        [one] => transport(
            TransportBuilder::new(SingleNodeConnectionPool::new(one.clone())),
            config,
        ),
        _ => transport(
            TransportBuilder::new(MultiNodeConnectionPool::round_robin(urls, None)),
            config,
        ),
    }?;
    Ok(Elasticsearch::new(transport))
}

fn transport(
    mut builder: TransportBuilder,
    config: &ElasticsearchConfig,
) -> Result<Transport, String> {
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        builder = builder.auth(Credentials::Basic(
            user.clone(),
            password.expose().to_owned(),
        ));
    }
    if let Some(key) = &config.api_key {
        builder = builder.auth(match key.expose().split_once(':') {
            Some((id, key)) => Credentials::ApiKey(id.to_owned(), key.to_owned()),
            None => Credentials::EncodedApiKey(key.expose().to_owned()),
        });
    }
    if let Some(ca) = &config.ca_file {
        let pem = read_ca(ca)?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| format!("ca_file {}: not a PEM certificate: {e}", ca.display()))?;
        builder = builder.cert_validation(CertificateValidation::Full(cert));
    } else if config.tls_skip_verify {
        builder = builder.cert_validation(CertificateValidation::None);
    }
    builder
        .timeout(Duration::from_millis(config.timeout_ms))
        .request_body_compression(config.gzip)
        .enable_meta_header(false)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Sends one `_bulk` request; `body` is NDJSON ending in a newline, `actions` its actions
/// (operation and document id) in order. An answer that does not answer exactly these actions
/// (another count, another operation or document at some place) fails the request as a whole,
/// to be retried: taking its statuses would count documents as written that were not.
pub async fn bulk(
    es: &Elasticsearch,
    body: &[u8],
    actions: &[(Op, &str)],
) -> Result<Vec<Answer>, RequestFailed> {
    let failed = |f: Failure<'_>| RequestFailed {
        pressure: is_pressure(&f),
        outcome: classify(&f),
    };
    let response = es
        .bulk(BulkParts::None)
        .body(vec![body])
        .send()
        .await
        .map_err(|e| failed(Failure::Request(&e)))?;
    let status = response.status_code().as_u16();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| failed(Failure::Request(&e)))?;
    if !(200..300).contains(&status) {
        return Err(failed(Failure::Status {
            status,
            body: &String::from_utf8_lossy(&bytes),
        }));
    }
    let parsed: BulkResponse = serde_json::from_slice(&bytes)
        .map_err(|e| failed(Failure::Response(&format!("not a bulk response ({e})"))))?;
    if let Some(what) = mismatch(&parsed.items, actions) {
        return Err(failed(Failure::Response(&what)));
    }
    Ok(parsed.items.into_iter().map(BulkItem::answer).collect())
}

/// How `items` fail to answer `actions`, if they do.
fn mismatch(items: &[BulkItem], actions: &[(Op, &str)]) -> Option<String> {
    if items.len() != actions.len() {
        return Some(format!(
            "{} items for {} actions",
            items.len(),
            actions.len()
        ));
    }
    items
        .iter()
        .zip(actions)
        .enumerate()
        .find_map(|(n, (item, (op, id)))| {
            let (answered_op, body) = item.parts();
            let same_op = answered_op == op_key(*op);
            // An item without `_id` (a server that leaves it out) is taken by its place.
            let same_id = body.id.as_deref().is_none_or(|got| got == *id);
            (!same_op || !same_id).then(|| {
                format!(
                    "item {n} answers {answered_op} of document `{}`, the request's action {n} is {} of document `{id}`",
                    body.id.as_deref().unwrap_or("?"),
                    op_key(*op)
                )
            })
        })
}

/// The key of an action in the bulk request and its answer.
fn op_key(op: Op) -> &'static str {
    match op {
        Op::Index => "index",
        Op::Update => "update",
        Op::Delete => "delete",
    }
}

/// Why `GET /` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingError {
    /// No answer: connection, TLS handshake, timeout. The text has the whole cause chain.
    Request(String),
    /// The server answered with a status other than 2xx.
    Status { status: u16, body: String },
}

/// `GET /`: proves the cluster answers and the credentials work.
pub async fn ping(es: &Elasticsearch) -> Result<(), PingError> {
    let r = es
        .info()
        .send()
        .await
        .map_err(|e| PingError::Request(cause_chain(&e)))?;
    let status = r.status_code().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        let body = r.text().await.unwrap_or_default();
        Err(PingError::Status { status, body })
    }
}

/// `error` and its sources, `a: b: c`: the client's own message ("error sending request")
/// hides the reason (refused, certificate not trusted) in its sources.
pub fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// `error.type: error.reason` of an Elasticsearch error body, else the body itself (shortened).
pub fn error_reason(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().map(|v| &v["error"]);
    match error.map(|e| (e["type"].as_str(), e["reason"].as_str())) {
        Some((Some(kind), Some(reason))) => format!("{kind}: {reason}"),
        _ => body.chars().take(300).collect(),
    }
}

/// Creates `index` with `body` (settings/mappings) unless it (or an alias of that name)
/// exists; returns true if this call created it.
pub async fn ensure_index(
    es: &Elasticsearch,
    index: &str,
    body: &serde_json::Value,
) -> Result<bool, String> {
    let exists = es
        .indices()
        .exists(IndicesExistsParts::Index(&[index]))
        .send()
        .await
        .map_err(|e| format!("cannot check whether index `{index}` exists: {e}"))?;
    if exists.status_code().is_success() {
        return Ok(false);
    }
    let r = es
        .indices()
        .create(IndicesCreateParts::Index(index))
        .body(body)
        .send()
        .await
        .map_err(|e| format!("cannot create index `{index}`: {e}"))?;
    let status = r.status_code().as_u16();
    let text = r.text().await.unwrap_or_default();
    if (200..300).contains(&status) {
        Ok(true)
    } else if text.contains("resource_already_exists_exception") {
        // Another sink process created it in the meantime.
        Ok(false)
    } else {
        Err(format!(
            "cannot create index `{index}`: HTTP {status}: {text}; check the settings/mappings file"
        ))
    }
}

/// What a name is on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameKind {
    Missing,
    /// A concrete index.
    Index,
    /// An alias, with the indices it points to.
    Alias(Vec<String>),
}

/// Whether `name` is an alias (and of what), an index, or nothing.
pub async fn name_kind(es: &Elasticsearch, name: &str) -> Result<NameKind, String> {
    let r = es
        .indices()
        .get_alias(IndicesGetAliasParts::Name(&[name]))
        .send()
        .await
        .map_err(|e| format!("cannot read alias `{name}`: {e}"))?;
    if r.status_code().is_success() {
        let v: serde_json::Value = r
            .json()
            .await
            .map_err(|e| format!("cannot read alias `{name}`: {e}"))?;
        let mut indices: Vec<String> = v
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        indices.sort();
        if !indices.is_empty() {
            return Ok(NameKind::Alias(indices));
        }
    }
    let exists = es
        .indices()
        .exists(IndicesExistsParts::Index(&[name]))
        .send()
        .await
        .map_err(|e| format!("cannot check whether `{name}` exists: {e}"))?;
    Ok(if exists.status_code().is_success() {
        NameKind::Index
    } else {
        NameKind::Missing
    })
}

/// Points `alias` at `to` only, in one atomic `_aliases` request (removing it from `from`).
pub async fn swap_alias(
    es: &Elasticsearch,
    alias: &str,
    from: &[String],
    to: &str,
) -> Result<(), String> {
    let mut actions: Vec<serde_json::Value> = from
        .iter()
        .filter(|i| i.as_str() != to)
        .map(|i| serde_json::json!({"remove": {"index": i, "alias": alias}}))
        .collect();
    actions.push(serde_json::json!({"add": {"index": to, "alias": alias}}));
    update_aliases(es, actions, &format!("swap alias `{alias}` to `{to}`")).await
}

/// Deletes the concrete index `name` and creates the alias `name` → `to` in one atomic
/// `_aliases` request (`remove_index` + `add`), so readers of `name` never see it missing.
pub async fn replace_index_with_alias(
    es: &Elasticsearch,
    name: &str,
    to: &str,
) -> Result<(), String> {
    let actions = vec![
        serde_json::json!({"remove_index": {"index": name}}),
        serde_json::json!({"add": {"index": to, "alias": name}}),
    ];
    let what = format!("replace index `{name}` by an alias of `{to}`");
    update_aliases(es, actions, &what).await
}

/// One `POST /_aliases` with `actions`; all of them happen or none.
async fn update_aliases(
    es: &Elasticsearch,
    actions: Vec<serde_json::Value>,
    what: &str,
) -> Result<(), String> {
    let r = es
        .indices()
        .update_aliases()
        .body(serde_json::json!({ "actions": actions }))
        .send()
        .await
        .map_err(|e| format!("cannot {what}: {e}"))?;
    let status = r.status_code().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        let text = r.text().await.unwrap_or_default();
        Err(format!("cannot {what}: HTTP {status}: {text}"))
    }
}

#[derive(Deserialize)]
struct BulkResponse {
    items: Vec<BulkItem>,
}

/// `{"index": {...}}`: one key naming the action.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum BulkItem {
    Index(ItemBody),
    Create(ItemBody),
    Update(ItemBody),
    Delete(ItemBody),
}

#[derive(Deserialize)]
struct ItemBody {
    #[serde(rename = "_id", default)]
    id: Option<String>,
    status: u16,
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    caused_by: Option<Box<ErrorBody>>,
}

impl BulkItem {
    /// The action's key (`index`, `create`, ...) and the body under it.
    fn parts(&self) -> (&'static str, &ItemBody) {
        match self {
            BulkItem::Index(b) => ("index", b),
            BulkItem::Create(b) => ("create", b),
            BulkItem::Update(b) => ("update", b),
            BulkItem::Delete(b) => ("delete", b),
        }
    }

    fn answer(self) -> Answer {
        let (BulkItem::Index(b) | BulkItem::Create(b) | BulkItem::Update(b) | BulkItem::Delete(b)) =
            self;
        let (kind, reason) = match b.error {
            None => (String::new(), String::new()),
            Some(e) => {
                let mut reason = e.reason.unwrap_or_default();
                // The whole chain: a script's failure reads "failed to execute script", then
                // "runtime error", and only the third level says what went wrong.
                let mut causes = Vec::new();
                let mut next = e.caused_by;
                while let Some(c) = next {
                    if let Some(r) = c.reason {
                        causes.push(format!("caused by {}: {r}", c.kind));
                    }
                    next = c.caused_by;
                }
                if !causes.is_empty() {
                    reason = format!("{reason} ({})", causes.join("; "));
                }
                (e.kind, reason)
            }
        };
        Answer {
            status: b.status,
            kind,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reason_names_type_and_reason_else_the_body() {
        let body = r#"{"error":{"type":"security_exception","reason":"bad user"},"status":401}"#;
        assert_eq!(error_reason(body), "security_exception: bad user");
        assert_eq!(error_reason("Unauthorized"), "Unauthorized");
        assert_eq!(error_reason(&"x".repeat(500)).len(), 300);
    }

    #[test]
    fn cause_chain_shows_the_sources() {
        let inner = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        assert_eq!(
            cause_chain(&Wrapped(inner)),
            "error sending request: invalid peer certificate: UnknownIssuer"
        );
    }

    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("error sending request")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn an_answer_to_other_actions_is_a_mismatch() {
        let items = |json: &str| -> Vec<BulkItem> {
            serde_json::from_str::<BulkResponse>(json).unwrap().items
        };
        let actions = [(Op::Index, "1"), (Op::Delete, "2")];
        let right = items(
            r#"{"items":[{"index":{"_id":"1","status":201}},{"delete":{"_id":"2","status":404}}]}"#,
        );
        assert_eq!(mismatch(&right, &actions), None);
        let no_ids = items(r#"{"items":[{"index":{"status":201}},{"delete":{"status":200}}]}"#);
        assert_eq!(mismatch(&no_ids, &actions), None);
        let cases = [
            (r#"{"items":[{"index":{"_id":"1","status":201}}]}"#, "1 items for 2 actions"),
            (
                r#"{"items":[{"index":{"_id":"2","status":201}},{"delete":{"_id":"1","status":200}}]}"#,
                "item 0 answers index of document `2`, the request's action 0 is index of document `1`",
            ),
            (
                r#"{"items":[{"index":{"_id":"1","status":201}},{"index":{"_id":"2","status":201}}]}"#,
                "item 1 answers index of document `2`, the request's action 1 is delete of document `2`",
            ),
            (
                r#"{"items":[{"create":{"_id":"1","status":201}},{"delete":{"_id":"2","status":200}}]}"#,
                "item 0 answers create of document `1`, the request's action 0 is index of document `1`",
            ),
        ];
        for (json, want) in cases {
            assert_eq!(
                mismatch(&items(json), &actions).as_deref(),
                Some(want),
                "{json}"
            );
        }
    }

    #[test]
    fn parses_item_answers_with_causes() {
        let body = br#"{"took":1,"errors":true,"items":[
            {"index":{"_id":"1","status":201,"result":"created"}},
            {"index":{"_id":"2","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [n]","caused_by":{"type":"illegal_argument_exception","reason":"For input string: \"abc\""}}}},
            {"delete":{"_id":"3","status":409,"error":{"type":"version_conflict_engine_exception","reason":"newer"}}},
            {"update":{"_id":"4","status":400,"error":{"type":"illegal_argument_exception","reason":"failed to execute script","caused_by":{"type":"script_exception","reason":"runtime error","script_stack":["x"],"caused_by":{"type":"class_cast_exception","reason":"Cannot cast java.lang.String to java.util.Map","caused_by":{"type":"x","reason":null}}}}}}]}"#;
        let r: BulkResponse = serde_json::from_slice(body).unwrap();
        let answers: Vec<Answer> = r.items.into_iter().map(BulkItem::answer).collect();
        assert_eq!(
            answers,
            vec![
                Answer {
                    status: 201,
                    kind: String::new(),
                    reason: String::new()
                },
                Answer {
                    status: 400,
                    kind: "mapper_parsing_exception".into(),
                    reason: "failed to parse field [n] (caused by illegal_argument_exception: For input string: \"abc\")".into()
                },
                Answer {
                    status: 409,
                    kind: "version_conflict_engine_exception".into(),
                    reason: "newer".into()
                },
                Answer {
                    status: 400,
                    kind: "illegal_argument_exception".into(),
                    reason: "failed to execute script (caused by script_exception: runtime error; caused by class_cast_exception: Cannot cast java.lang.String to java.util.Map)".into()
                },
            ]
        );
    }
}
