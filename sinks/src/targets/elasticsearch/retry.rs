//! Which Elasticsearch answers are worth retrying.

use super::encoder::Op;
use crate::targets::Outcome;

/// Something that went wrong with a bulk request or one of its items.
#[derive(Debug)]
pub enum Failure<'a> {
    /// The request did not complete: connection refused or lost, timeout, TLS.
    Request(&'a elasticsearch::Error),
    /// The server answered the whole request with a status other than 2xx.
    Status { status: u16, body: &'a str },
    /// The server answered 2xx with something that is not a bulk response for these items.
    Response(&'a str),
    /// The answer to one action of the bulk request.
    Item(&'a ItemFailure),
}

/// A bulk item's status and error, as the server reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemFailure {
    pub op: Op,
    pub status: u16,
    /// `error.type`, e.g. `mapper_parsing_exception`; empty if the server gave none.
    pub kind: String,
    /// `error.reason`, with `caused_by.reason` appended when present.
    pub reason: String,
    pub index: String,
    pub id: String,
}

/// The one place that decides. Done: 2xx; 409 of a versioned write (the index already holds
/// this or a newer version); 404 of a delete (nothing to delete) and of a fields-only update
/// (no document to remove them from). Retry: whole-request failures of any kind (the
/// deployment's problem, not the items'), 429, 5xx, `es_rejected_execution_exception`,
/// 401/403, a missing index, a read-only (blocked) index, a cluster that does not run the
/// upsert script, 409 of an update. Reject: every other 4xx of an item (mapping and parse
/// errors), with the server's reason.
pub fn classify(failure: &Failure<'_>) -> Outcome {
    match failure {
        Failure::Request(e) => Outcome::Retry(format!("elasticsearch request failed: {e}")),
        Failure::Status { status, body } => Outcome::Retry(format!(
            "elasticsearch answered the bulk request with HTTP {status}: {}",
            clip(body)
        )),
        Failure::Response(what) => Outcome::Retry(format!(
            "elasticsearch answered the bulk request with an unexpected body: {what}"
        )),
        Failure::Item(f) => classify_item(f),
    }
}

fn classify_item(f: &ItemFailure) -> Outcome {
    let status = f.status;
    let what = || {
        format!(
            "{} of document `{}` in index `{}`: HTTP {status} {}: {}",
            op_name(f.op),
            f.id,
            f.index,
            f.kind,
            f.reason
        )
    };
    match (status, f.op, f.kind.as_str()) {
        (200..=299, _, _) => Outcome::Done,
        (409, Op::Index | Op::Delete, _) => Outcome::Done,
        (404, Op::Delete, _) => Outcome::Done,
        (404, Op::Update, "document_missing_exception") => Outcome::Done,
        (_, _, "es_rejected_execution_exception") | (429, _, _) => {
            Outcome::Retry(format!("elasticsearch is overloaded: {}", what()))
        }
        (500..=599, _, _) => Outcome::Retry(format!("elasticsearch failed: {}", what())),
        (401 | 403, _, _) | (_, _, "cluster_block_exception") => Outcome::Retry(format!(
            "elasticsearch refused access: {}; check the target's credentials and the index's privileges and blocks",
            what()
        )),
        (_, Op::Update, _) if scripts_disabled(&f.reason) => Outcome::Retry(format!(
            "{}; mode \"upsert\" needs inline Painless scripts in the update context: allow them on the cluster (script.allowed_types and script.allowed_contexts, if set, must include `inline` and `update`)",
            what()
        )),
        (_, _, "index_not_found_exception") => Outcome::Retry(format!(
            "{}; create the index (or set create_index in the rule), or allow automatic index creation",
            what()
        )),
        (409, Op::Update, _) => {
            Outcome::Retry(format!("concurrent update, retrying: {}", what()))
        }
        _ => Outcome::Reject(format!(
            "elasticsearch rejected the {}; fix the index mapping or the rule's fields/convert, then replay the message from the dead-letter topic",
            what()
        )),
    }
}

/// True if the server refused to run a script because of its settings, not the script: the
/// texts of OpenSearch's and Elasticsearch's `ScriptService`.
fn scripts_disabled(reason: &str) -> bool {
    reason.contains("cannot execute [inline] scripts")
        || reason.contains("cannot execute scripts using [update] context")
        || reason.contains("script_lang not supported [painless]")
}

/// True if the failure says the server is overloaded or the request too big, so the next
/// requests should carry fewer items.
pub fn is_pressure(failure: &Failure<'_>) -> bool {
    match failure {
        Failure::Status { status, .. } => matches!(status, 413 | 429 | 503),
        Failure::Item(f) => f.status == 429 || f.kind == "es_rejected_execution_exception",
        Failure::Request(e) => e.is_timeout(),
        Failure::Response(_) => false,
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Index => "index",
        Op::Update => "update",
        Op::Delete => "delete",
    }
}

/// A response body cut to a length that fits a log line and a Kafka header.
fn clip(body: &str) -> &str {
    const MAX: usize = 500;
    if body.len() <= MAX {
        return body;
    }
    let mut end = MAX;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    &body[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(op: Op, status: u16, kind: &str) -> ItemFailure {
        ItemFailure {
            op,
            status,
            kind: kind.into(),
            reason: "why".into(),
            index: "orders".into(),
            id: "7".into(),
        }
    }

    #[test]
    fn item_outcomes() {
        use Op::*;
        let done = [
            (Index, 201, ""),
            (Update, 200, ""),
            (Index, 409, "version_conflict_engine_exception"),
            (Delete, 409, "version_conflict_engine_exception"),
            (Delete, 404, ""),
            (Update, 404, "document_missing_exception"),
        ];
        for (op, status, kind) in done {
            let f = item(op, status, kind);
            assert_eq!(classify(&Failure::Item(&f)), Outcome::Done, "{f:?}");
        }
        let retry = [
            (Index, 429, "too_many_requests"),
            (Index, 503, "unavailable_shards_exception"),
            (Index, 400, "es_rejected_execution_exception"),
            (Index, 403, "cluster_block_exception"),
            (Index, 401, "security_exception"),
            (Index, 404, "index_not_found_exception"),
            (Update, 409, "version_conflict_engine_exception"),
        ];
        for (op, status, kind) in retry {
            let f = item(op, status, kind);
            assert!(
                matches!(classify(&Failure::Item(&f)), Outcome::Retry(_)),
                "{f:?}"
            );
        }
        let mut f = item(Update, 400, "illegal_argument_exception");
        f.reason = "failed to execute script (caused by illegal_argument_exception: cannot execute [inline] scripts)".into();
        assert!(
            matches!(classify(&Failure::Item(&f)), Outcome::Retry(m) if m.contains("script.allowed_types")),
            "{f:?}"
        );
        for (op, status, kind) in [
            (Index, 400, "mapper_parsing_exception"),
            (Update, 400, "illegal_argument_exception"),
            (Update, 404, "index_closed_exception"),
        ] {
            let f = item(op, status, kind);
            assert!(
                matches!(classify(&Failure::Item(&f)), Outcome::Reject(_)),
                "{f:?}"
            );
        }
    }

    #[test]
    fn a_rejection_names_document_index_and_server_reason() {
        let mut f = item(Op::Index, 400, "mapper_parsing_exception");
        f.reason = "failed to parse field [n] of type [long]".into();
        assert_eq!(
            classify(&Failure::Item(&f)),
            Outcome::Reject("elasticsearch rejected the index of document `7` in index `orders`: HTTP 400 mapper_parsing_exception: failed to parse field [n] of type [long]; fix the index mapping or the rule's fields/convert, then replay the message from the dead-letter topic".into())
        );
    }

    #[test]
    fn whole_request_failures_are_retried() {
        for status in [400, 401, 413, 429, 500, 503] {
            let f = Failure::Status { status, body: "{}" };
            assert!(matches!(classify(&f), Outcome::Retry(_)), "{status}");
        }
        assert!(matches!(
            classify(&Failure::Response("3 items for 4 actions")),
            Outcome::Retry(_)
        ));
        assert!(is_pressure(&Failure::Status {
            status: 429,
            body: ""
        }));
        assert!(!is_pressure(&Failure::Status {
            status: 401,
            body: ""
        }));
        assert!(is_pressure(&Failure::Item(&item(
            Op::Index,
            400,
            "es_rejected_execution_exception"
        ))));
        let long = "é".repeat(400);
        assert!(clip(&long).len() <= 500);
    }
}
