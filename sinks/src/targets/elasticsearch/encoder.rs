//! One mapped row as `_bulk` lines (NDJSON): pure, so every case is a unit test against bytes.

use super::config::{DeleteMode, ElasticsearchRule, Mode};
use serde::Serialize;
use sluice_event::{EventType, Row};
use sluice_rules::Mapped;
use std::io::Write as _;

/// A bulk action; the server answers each with one item of its response, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Index,
    Update,
    Delete,
}

/// One action of an encoded item: what it was and where it went (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub op: Op,
    pub index: String,
}

/// `version_type` of every versioned write: a replay of the same `seq` rewrites the same
/// document, an older `seq` is refused with 409.
const VERSION_TYPE: &str = "external_gte";

/// Conflicting updates (mode `upsert`) are retried this often by the server itself.
const RETRY_ON_CONFLICT: u32 = 3;

/// The document field where mode `upsert` keeps, per rule name, the `seq` of the last change
/// that rule applied to the document.
pub const SEQ_FIELD: &str = "_sluice_seq";

/// The Painless script of every mode `upsert` write. The update API takes no external version,
/// so the script does the versioning itself: it compares the event's `seq` with the one stored
/// under the rule's name in [`SEQ_FIELD`] and leaves the document alone (`noop`) if that is
/// newer; otherwise it puts the rule's fields (`params.doc`) or removes them (`params.remove`)
/// and stores the `seq`. Like `external_gte`, the same `seq` applies again. The stored `seq`
/// stays after a removal, so a replayed older change cannot bring the fields back. The source
/// never changes (everything else is a parameter), so the server compiles it once.
const UPSERT_SCRIPT: &str = concat!(
    "Map s = ctx._source._sluice_seq;",
    "if (s == null) { s = new HashMap(); ctx._source._sluice_seq = s; }",
    " else if (s[params.rule] != null && s[params.rule] > params.seq) { ctx.op = 'noop'; return; }",
    "if (params.doc != null) { ctx._source.putAll(params.doc); }",
    " else { for (f in params.remove) { ctx._source.remove(f); } }",
    "s[params.rule] = params.seq;"
);

#[derive(Serialize)]
struct Meta<'a> {
    #[serde(rename = "_index")]
    index: &'a str,
    #[serde(rename = "_id")]
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    routing: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pipeline: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_on_conflict: Option<u32>,
}

/// The body of a mode `upsert` update: [`UPSERT_SCRIPT`] with its parameters. A write that may
/// create the document runs the script on an empty one (`scripted_upsert`); a removal does not
/// create it (a missing document answers `document_missing_exception`: nothing to remove).
#[derive(Serialize)]
struct ScriptedUpdate<'a> {
    script: Script<'a>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    scripted_upsert: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    upsert: Option<Empty>,
}

#[derive(Serialize)]
struct Script<'a> {
    source: &'static str,
    lang: &'static str,
    params: Params<'a>,
}

#[derive(Serialize)]
struct Params<'a> {
    rule: &'a str,
    seq: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    doc: Option<&'a Row>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remove: Option<Keys<'a>>,
}

/// `{}`.
#[derive(Serialize)]
struct Empty {}

/// The names of a row's fields, as a JSON array.
struct Keys<'a>(&'a Row);

impl Serialize for Keys<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.keys())
    }
}

/// Appends the bulk lines of one item to `out` and returns its actions (none for DDL).
/// An error is definite (a template cannot render, no id); `out` is then left as it was.
pub fn encode(
    rule: &ElasticsearchRule,
    mapped: &Mapped,
    out: &mut Vec<u8>,
) -> Result<Vec<Action>, String> {
    let start = out.len();
    let result = encode_into(rule, mapped, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_into(
    rule: &ElasticsearchRule,
    mapped: &Mapped,
    out: &mut Vec<u8>,
) -> Result<Vec<Action>, String> {
    if mapped.kind == EventType::Ddl {
        return Ok(Vec::new());
    }
    if mapped.id.is_empty() {
        return Err("the document id is empty (a table without primary key?); set `id` in the rule, e.g. id = \"{uuid}\"".into());
    }
    let id = mapped.id.as_str();
    let (index, routing) = target_of(rule, &mapped.doc)?;
    let mut actions = Vec::with_capacity(2);
    if mapped.kind == EventType::Delete {
        remove(rule, mapped, &index, routing.as_deref(), out, &mut actions);
        return Ok(actions);
    }
    // A row whose index (or routing) template now renders differently leaves its old place.
    if let Some(old) = &mapped.old_doc {
        let (old_index, old_routing) = target_of(rule, old)?;
        if old_index != index || old_routing != routing {
            remove(
                rule,
                mapped,
                &old_index,
                old_routing.as_deref(),
                out,
                &mut actions,
            );
        }
    }
    match rule.mode {
        Mode::Index => {
            meta(
                out,
                "index",
                &Meta {
                    index: &index,
                    id,
                    version: Some(mapped.seq),
                    version_type: Some(VERSION_TYPE),
                    routing: routing.as_deref(),
                    pipeline: rule.pipeline.as_deref(),
                    retry_on_conflict: None,
                },
            );
            json_line(out, &mapped.doc);
            actions.push(Action {
                op: Op::Index,
                index,
            });
        }
        Mode::Upsert => {
            meta(out, "update", &update_meta(&index, id, routing.as_deref()));
            let params = Params {
                rule: &rule.name,
                seq: mapped.seq,
                doc: Some(&mapped.doc),
                remove: None,
            };
            json_line(out, &scripted(params, true));
            actions.push(Action {
                op: Op::Update,
                index,
            });
        }
    }
    Ok(actions)
}

/// The delete of a row from `index`: versioned in mode `index`; in mode `upsert` the whole
/// document (unversioned: nothing is left to hold a version) or only the rule's fields, as
/// configured.
fn remove(
    rule: &ElasticsearchRule,
    mapped: &Mapped,
    index: &str,
    routing: Option<&str>,
    out: &mut Vec<u8>,
    actions: &mut Vec<Action>,
) {
    let id = mapped.id.as_str();
    let op = match (rule.mode, rule.delete) {
        (Mode::Index, _) => {
            meta(
                out,
                "delete",
                &Meta {
                    index,
                    id,
                    version: Some(mapped.seq),
                    version_type: Some(VERSION_TYPE),
                    routing,
                    pipeline: None,
                    retry_on_conflict: None,
                },
            );
            Op::Delete
        }
        (Mode::Upsert, DeleteMode::Document) => {
            meta(
                out,
                "delete",
                &Meta {
                    index,
                    id,
                    version: None,
                    version_type: None,
                    routing,
                    pipeline: None,
                    retry_on_conflict: None,
                },
            );
            Op::Delete
        }
        (Mode::Upsert, DeleteMode::Fields) => {
            meta(out, "update", &update_meta(index, id, routing));
            // The before-image's fields, so an UPDATE that moved the row removes what it wrote.
            let fields = mapped.old_doc.as_ref().unwrap_or(&mapped.doc);
            let params = Params {
                rule: &rule.name,
                seq: mapped.seq,
                doc: None,
                remove: Some(Keys(fields)),
            };
            json_line(out, &scripted(params, false));
            Op::Update
        }
    };
    actions.push(Action {
        op,
        index: index.to_owned(),
    });
}

fn scripted(params: Params<'_>, upsert: bool) -> ScriptedUpdate<'_> {
    ScriptedUpdate {
        script: Script {
            source: UPSERT_SCRIPT,
            lang: "painless",
            params,
        },
        scripted_upsert: upsert,
        upsert: upsert.then_some(Empty {}),
    }
}

fn update_meta<'a>(index: &'a str, id: &'a str, routing: Option<&'a str>) -> Meta<'a> {
    Meta {
        index,
        id,
        version: None,
        version_type: None,
        routing,
        pipeline: None,
        retry_on_conflict: Some(RETRY_ON_CONFLICT),
    }
}

/// The index and routing the templates give for `row`.
fn target_of(rule: &ElasticsearchRule, row: &Row) -> Result<(String, Option<String>), String> {
    let index = rule
        .index
        .render(row)
        .map_err(|e| format!("cannot render the index name: {e}"))?;
    if index.is_empty() {
        return Err(format!(
            "index template `{}` rendered an empty name",
            rule.index.as_str()
        ));
    }
    // Index names are lower-case; a month or a tenant name from the row may not be.
    let index = index.to_lowercase();
    let routing = match &rule.routing {
        Some(t) => Some(
            t.render(row)
                .map_err(|e| format!("cannot render the routing: {e}"))?,
        ),
        None => None,
    };
    Ok((index, routing))
}

fn meta(out: &mut Vec<u8>, op: &str, m: &Meta<'_>) {
    let _ = write!(out, "{{\"{op}\":");
    json(out, m);
    out.extend_from_slice(b"}\n");
}

fn json_line<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    json(out, value);
    out.push(b'\n');
}

/// Writing JSON of maps with string keys into a Vec cannot fail.
fn json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(&mut *out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_rules::Template;

    fn rule(mode: Mode, delete: DeleteMode, index: &str) -> ElasticsearchRule {
        ElasticsearchRule {
            name: "shipping".into(),
            index: Template::parse(index).unwrap(),
            routing: None,
            pipeline: None,
            mode,
            delete,
            create_index: None,
        }
    }

    fn row(v: serde_json::Value) -> Row {
        v.as_object().unwrap().clone()
    }

    fn mapped(kind: EventType, doc: serde_json::Value, old: Option<serde_json::Value>) -> Mapped {
        Mapped {
            kind,
            seq: 42,
            id: "7".into(),
            doc: row(doc),
            old_doc: old.map(row),
            changed: Vec::new(),
        }
    }

    fn lines(rule: &ElasticsearchRule, m: &Mapped) -> (String, Vec<Op>) {
        let mut out = Vec::new();
        let actions = encode(rule, m, &mut out).unwrap();
        (
            String::from_utf8(out).unwrap(),
            actions.iter().map(|a| a.op).collect(),
        )
    }

    #[test]
    fn index_mode_writes_versioned_documents_and_deletes() {
        let r = rule(Mode::Index, DeleteMode::Document, "orders");
        let cases = [
            (
                mapped(EventType::Insert, json!({"id":7,"amount":"12.30"}), None),
                "{\"index\":{\"_index\":\"orders\",\"_id\":\"7\",\"version\":42,\"version_type\":\"external_gte\"}}\n{\"id\":7,\"amount\":\"12.30\"}\n",
                vec![Op::Index],
            ),
            (
                mapped(
                    EventType::Update,
                    json!({"id":7,"s":"b"}),
                    Some(json!({"id":7,"s":"a"})),
                ),
                "{\"index\":{\"_index\":\"orders\",\"_id\":\"7\",\"version\":42,\"version_type\":\"external_gte\"}}\n{\"id\":7,\"s\":\"b\"}\n",
                vec![Op::Index],
            ),
            (
                mapped(EventType::Delete, json!({"id":7}), None),
                "{\"delete\":{\"_index\":\"orders\",\"_id\":\"7\",\"version\":42,\"version_type\":\"external_gte\"}}\n",
                vec![Op::Delete],
            ),
        ];
        for (m, want, ops) in cases {
            assert_eq!(lines(&r, &m), (want.to_owned(), ops), "{m:?}");
        }
    }

    #[test]
    fn routing_pipeline_and_a_moved_row() {
        let mut r = rule(Mode::Index, DeleteMode::Document, "orders-{created|month}");
        r.routing = Some(Template::parse("{tenant}").unwrap());
        r.pipeline = Some("enrich".into());
        let m = mapped(
            EventType::Update,
            json!({"tenant":"T1","created":"2026-11-02"}),
            Some(json!({"tenant":"T1","created":"2026-10-30"})),
        );
        let (text, ops) = lines(&r, &m);
        assert_eq!(
            text,
            "{\"delete\":{\"_index\":\"orders-2026-10\",\"_id\":\"7\",\"version\":42,\"version_type\":\"external_gte\",\"routing\":\"T1\"}}\n\
             {\"index\":{\"_index\":\"orders-2026-11\",\"_id\":\"7\",\"version\":42,\"version_type\":\"external_gte\",\"routing\":\"T1\",\"pipeline\":\"enrich\"}}\n\
             {\"tenant\":\"T1\",\"created\":\"2026-11-02\"}\n"
        );
        assert_eq!(ops, vec![Op::Delete, Op::Index]);
    }

    /// The lines of `text` as JSON values.
    fn parsed(text: &str) -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn upsert_mode_writes_and_removes_fields_with_the_seq_script() {
        let doc = json!({"id":7,"note":"x \"q\""});
        let r = rule(Mode::Upsert, DeleteMode::Document, "orders");
        let (text, ops) = lines(&r, &mapped(EventType::Insert, doc.clone(), None));
        assert_eq!(ops, vec![Op::Update]);
        assert_eq!(
            parsed(&text),
            vec![
                json!({"update":{"_index":"orders","_id":"7","retry_on_conflict":3}}),
                json!({"script":{"source":UPSERT_SCRIPT,"lang":"painless",
                    "params":{"rule":"shipping","seq":42,"doc":{"id":7,"note":"x \"q\""}}},
                    "scripted_upsert":true,"upsert":{}}),
            ]
        );
        // A whole-document delete stays a plain, unversioned delete.
        assert_eq!(
            lines(&r, &mapped(EventType::Delete, doc.clone(), None)),
            (
                "{\"delete\":{\"_index\":\"orders\",\"_id\":\"7\"}}\n".to_owned(),
                vec![Op::Delete]
            )
        );
        // A fields delete removes the rule's fields and creates no document.
        let f = rule(Mode::Upsert, DeleteMode::Fields, "orders");
        let (text, ops) = lines(&f, &mapped(EventType::Delete, doc, None));
        assert_eq!(ops, vec![Op::Update]);
        assert_eq!(
            parsed(&text),
            vec![
                json!({"update":{"_index":"orders","_id":"7","retry_on_conflict":3}}),
                json!({"script":{"source":UPSERT_SCRIPT,"lang":"painless",
                    "params":{"rule":"shipping","seq":42,"remove":["id","note"]}}}),
            ]
        );
    }

    #[test]
    fn a_moved_row_in_upsert_mode_removes_the_old_fields_then_writes_the_new() {
        let f = rule(Mode::Upsert, DeleteMode::Fields, "orders-{m}");
        let m = mapped(
            EventType::Update,
            json!({"m":"b","x":1}),
            Some(json!({"m":"a","y":2})),
        );
        let (text, ops) = lines(&f, &m);
        assert_eq!(ops, vec![Op::Update, Op::Update]);
        let l = parsed(&text);
        assert_eq!(l[0]["update"]["_index"], "orders-a");
        assert_eq!(l[1]["script"]["params"]["remove"], json!(["m", "y"]));
        assert_eq!(l[2]["update"]["_index"], "orders-b");
        assert_eq!(l[3]["script"]["params"]["doc"], json!({"m":"b","x":1}));
    }

    #[test]
    fn the_script_keeps_the_seq_in_the_documented_field() {
        assert!(UPSERT_SCRIPT.contains(&format!("ctx._source.{SEQ_FIELD}")));
        // One line of NDJSON, and nothing JSON would have to escape beyond the quotes.
        assert!(!UPSERT_SCRIPT.contains(['\n', '"', '\\']));
    }

    #[test]
    fn definite_errors_leave_the_buffer_as_it_was() {
        let r = rule(Mode::Index, DeleteMode::Document, "orders-{created|month}");
        let mut out = b"before\n".to_vec();
        let mut m = mapped(EventType::Insert, json!({"created": null}), None);
        let err = encode(&r, &m, &mut out).unwrap_err();
        assert!(err.starts_with("cannot render the index name: "), "{err}");
        m.id.clear();
        let err = encode(&r, &m, &mut out).unwrap_err();
        assert!(err.starts_with("the document id is empty"), "{err}");
        assert_eq!(out, b"before\n");
        let ddl = mapped(EventType::Ddl, json!({}), None);
        assert_eq!(encode(&r, &ddl, &mut out), Ok(Vec::new()));
    }

    #[test]
    fn index_names_are_lower_cased() {
        let r = rule(Mode::Index, DeleteMode::Document, "t-{tenant}");
        let m = mapped(EventType::Insert, json!({"tenant":"ACME"}), None);
        assert!(lines(&r, &m)
            .0
            .starts_with("{\"index\":{\"_index\":\"t-acme\""));
    }
}
