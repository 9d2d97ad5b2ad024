//! Unit tests of compiled rules: config problems, matching, mapping, `where` and templates.

use super::*;
use crate::test_util::event;
use serde_json::{json, Value};
use sluice_event::{ChangeEvent, EventType};

#[derive(serde::Deserialize)]
struct File {
    rules: Vec<RuleConfig>,
}

fn compile(text: &str) -> (RuleSet, Problems) {
    let file: File = toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let mut problems = Problems::default();
    let set = RuleSet::compile(&file.rules, &mut problems);
    (set, problems)
}

/// `Rule::apply`, checked against `Rule::apply_owned` of the same event.
fn applied(rule: &Rule, e: &ChangeEvent) -> Result<Option<Mapped>, RuleError> {
    let borrowed = rule.apply(e);
    match (&borrowed, rule.apply_owned(e.clone())) {
        (Ok(a), Ok(b)) => assert_eq!(*a, b, "apply_owned differs"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("apply gave {a:?}, apply_owned {b:?}"),
    }
    borrowed
}

fn rule(body: &str) -> RuleSet {
    let (set, problems) = compile(&format!(
        "[[rules]]\nname = 'r'\ntarget = 't'\nmatch = {{ tables = ['shop.orders'] }}\n{body}"
    ));
    assert!(problems.is_empty(), "{body}: {problems}");
    set
}

#[test]
fn compile_reports_every_problem_with_its_path() {
    let (set, problems) = compile(
        r#"
[[rules]]
name = "a"
target = "t"
match = { tables = ["shop.orders", '/shop.(orders/', "shop.orders_[0-9"] }
where = "status = 1"

[[rules]]
name = "a"
target = ""
match = { tables = ["shop.x"] }
id = "{email}"
only_if_changed = [""]
fields = { include = ["id", "status"], convert = { status = "splitt" }, json_path = { city = { column = "c", path = "$.[" } } }

[[rules]]
name = "c"
target = "t"
match = { tables = ["x.y"] }
id = "{id"
"#,
    );
    assert_eq!(set.len(), 3);
    let got: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
    let want = [
        "rules[0].match.tables[1]: invalid regex `shop.(orders`: regex parse error: shop.(orders ^ error: unclosed group; it is matched against `database.table`, e.g. /^shop\\.orders_\\d+$/",
        "rules[0].match.tables[2]: invalid glob `shop.orders_[0-9`: unclosed character class; missing ']'; e.g. shop.orders_* or shop.orders_[0-9][0-9]",
        "rules[0].where: invalid expression `status = 1`: single `=` at character 8; write `==` to compare",
        "rules[1].name: rule name `a` is already used by rules[0]; rule names must be unique",
        "rules[1].target: no target given; name one of the [targets.<name>] sections",
        "rules[1].fields.convert.status: unknown conversion `splitt`; use one of: split, parse_json, map, epoch_seconds_to_date, epoch_seconds_to_datetime, epoch_millis_to_date, epoch_millis_to_datetime, hash, mask, null",
        "rules[1].fields.json_path.city.path: invalid JSONPath `$.[`: expected wildcard_selector or ALPHA at character 3; write an RFC 9535 path such as `$.address.city` or `$.items[*].sku`",
        "rules[1].id: unknown column `email` in template `{email}`: fields.include does not keep it; add it to fields.include (kept: id, status)",
        "rules[1].only_if_changed[0]: empty column name; list source column names",
        "rules[2].id: template `{id`: `{` at character 1 is not closed by `}`; write `{{` for a literal brace",
    ];
    assert_eq!(got, want);
}

#[test]
fn matching_returns_every_matching_rule() {
    let (set, problems) = compile(
        r#"
[[rules]]
name = "exact"
target = "t"
match = { tables = ["shop.orders_01"] }
[[rules]]
name = "glob"
target = "t"
match = { tables = ["shop.orders_[0-9][0-9]"], source = "main" }
[[rules]]
name = "regex"
target = "u"
match = { tables = ['/^shop\.orders_\d+$/'] }
[[rules]]
name = "other"
target = "u"
match = { tables = ["crm.*"] }
"#,
    );
    assert!(problems.is_empty(), "{problems}");
    let cases: [(&str, &str, &str, &[usize]); 5] = [
        ("main", "shop", "orders_01", &[0, 1, 2]),
        ("replica", "shop", "orders_01", &[0, 2]),
        ("main", "shop", "orders_123", &[2]),
        ("main", "crm", "leads", &[3]),
        ("main", "shop", "users", &[]),
    ];
    for (inst, db, table, want) in cases {
        assert_eq!(set.matching(inst, db, table), want, "{inst} {db}.{table}");
    }
    assert_eq!(set.rule(1).name(), "glob");
    assert_eq!(set.rule(2).target(), "u");
    assert_eq!(set.rule(2).on_error(), OnError::DeadLetter);
    assert_eq!(set.iter().count(), 4);
    assert!(!set.is_empty());
}

#[test]
fn applies_rules() {
    use EventType::{Ddl, Delete, Insert, Update};
    let row =
        json!({"id": 7, "tenant": "ACME", "status": "paid", "amount": "120.00", "email": "B@x"});
    let old = json!({"status": "new", "email": "A@x"});
    // (rule body, event kind, pk, old, want: None = skipped, else (id, doc, old_doc, changed))
    type Want = Option<(&'static str, Value, Option<Value>, &'static [&'static str])>;
    type Case = (
        &'static str,
        EventType,
        &'static [&'static str],
        Option<Value>,
        Want,
    );
    let cases: Vec<Case> = vec![
        ("", Insert, &["id"], None, Some(("7", row.clone(), None, &[]))),
        ("", Delete, &["tenant", "id"], None, Some(("ACME:7", row.clone(), None, &[]))),
        ("", Insert, &[], None, Some(("", row.clone(), None, &[]))),
        ("", Ddl, &["id"], None, None),
        (
            "",
            Update,
            &["id"],
            Some(old.clone()),
            Some((
                "7",
                row.clone(),
                Some(json!({"id": 7, "tenant": "ACME", "status": "new", "amount": "120.00", "email": "A@x"})),
                &["status", "email"],
            )),
        ),
        ("", Update, &["id"], None, Some(("7", row.clone(), Some(row.clone()), &[]))),
        (
            "id = '{tenant|lower}:{id}'\nfields = { include = ['id', 'tenant', 'email'], rename = { email = 'mail' } }",
            Update,
            &["id"],
            Some(old.clone()),
            Some((
                "acme:7",
                json!({"id": 7, "tenant": "ACME", "mail": "B@x"}),
                Some(json!({"id": 7, "tenant": "ACME", "mail": "A@x"})),
                &["status", "email"],
            )),
        ),
        ("only_if_changed = ['amount']", Update, &["id"], Some(old.clone()), None),
        ("only_if_changed = ['amount']", Update, &["id"], None, None),
        ("only_if_changed = ['amount', 'email']", Update, &["id"], Some(old.clone()), Some(("7", row.clone(), None, &["status", "email"]))),
        ("only_if_changed = ['amount']", Insert, &["id"], None, Some(("7", row.clone(), None, &[]))),
        ("where = 'status != \"deleted\" && amount > 100'", Insert, &["id"], None, Some(("7", row.clone(), None, &[]))),
        ("where = 'status != \"deleted\" && amount > 120'", Insert, &["id"], None, None),
        ("where = 'old.status == \"new\" && status == \"paid\"'", Update, &["id"], Some(old.clone()), Some(("7", row.clone(), None, &["status", "email"]))),
        ("where = 'old.status == \"new\"'", Update, &["id"], Some(json!({"amount": "1.00"})), None),
    ];
    for (body, kind, pk, old, want) in cases {
        let set = rule(body);
        let e = event(kind, pk, row.clone(), old);
        let got = applied(set.rule(0), &e).unwrap_or_else(|err| panic!("{body}: {err}"));
        let Some((id, doc, old_doc, changed)) = want else {
            assert_eq!(got, None, "{body} {kind}");
            continue;
        };
        let got = got.unwrap_or_else(|| panic!("{body} {kind}: skipped"));
        assert_eq!(got.kind, kind);
        assert_eq!(got.seq, 42);
        assert_eq!(got.id, id, "{body} {kind}");
        assert_eq!(Value::Object(got.doc.clone()), doc, "{body} {kind}");
        if let Some(old_doc) = old_doc {
            assert_eq!(
                got.old_doc.map(Value::Object),
                Some(old_doc),
                "{body} {kind}"
            );
        } else if kind != Update {
            assert_eq!(got.old_doc, None, "{body} {kind}");
        }
        assert_eq!(got.changed, changed, "{body} {kind}");
    }
}

#[test]
fn update_leaving_the_filter_maps_to_delete() {
    let row = json!({"id": 7, "status": "paid", "amount": "120.00"});
    // (where, old, want: None = skipped, else (kind, doc))
    type Case = (&'static str, Value, Option<(EventType, Value)>);
    let cases: Vec<Case> = vec![
        (
            "amount > 130",
            json!({"amount": "150.00"}),
            Some((
                EventType::Delete,
                json!({"id": 7, "status": "paid", "amount": "150.00"}),
            )),
        ),
        ("amount > 130", json!({"status": "new"}), None),
        ("amount > 200", json!({"amount": "150.00"}), None),
        (
            "amount > 100",
            json!({"amount": "50.00"}),
            Some((EventType::Update, row.clone())),
        ),
        (
            "status in ['new', 'open']",
            json!({"status": "new"}),
            Some((
                EventType::Delete,
                json!({"id": 7, "status": "new", "amount": "120.00"}),
            )),
        ),
        // Only transitions new -> paid; the before-image never passes, so nothing to delete.
        (
            "old.status == 'new' && status == 'shipped'",
            json!({"status": "new"}),
            None,
        ),
    ];
    for (filter, old, want) in cases {
        let set = rule(&format!("where = \"{filter}\"\nid = 'o{{id}}'"));
        let e = event(EventType::Update, &["id"], row.clone(), Some(old));
        let got = applied(set.rule(0), &e).unwrap();
        match (got, want) {
            (None, None) => {}
            (Some(m), Some((kind, doc))) => {
                assert_eq!(m.kind, kind, "{filter}");
                assert_eq!(Value::Object(m.doc), doc, "{filter}");
                assert_eq!(m.id, "o7", "{filter}");
                assert_eq!(m.seq, 42);
                if kind == EventType::Delete {
                    assert_eq!(m.old_doc, None, "{filter}");
                    assert!(m.changed.is_empty(), "{filter}");
                }
            }
            (got, want) => panic!("{filter}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn apply_errors_name_the_rule() {
    let row = json!({"id": 7, "status": "paid", "email": null, "ts": "x"});
    let cases = [
        ("where = 'status > 1'", "rule `r`: where `status > 1`: status > 1: cannot order text (\"paid\") against a number (1); compare numbers (or DECIMAL text) with numbers, text with text"),
        ("where = 'nope == 1'", "rule `r`: where `nope == 1`: column `nope` is not in shop.orders (it has: id, status, email, ts); check the column name"),
        ("id = 'u:{email}'", "rule `r`: template `u:{email}`: column `email` is null; add `|default:<text>` to the placeholder, or skip such rows with where = 'email != null'"),
        ("fields = { convert = { ts = 'epoch_seconds_to_date' } }", "rule `r`: fields.convert.ts (`epoch_seconds_to_date`): expected whole epoch seconds, got the text \"x\""),
    ];
    for (body, want) in cases {
        let set = rule(body);
        let err = applied(
            set.rule(0),
            &event(EventType::Insert, &["id"], row.clone(), None),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), want, "{body}");
        assert_eq!(err.rule(), Some("r"));
    }
}

/// The complete example of docs/rules.md compiles and does what the page says.
#[test]
fn docs_example_works() {
    let doc = include_str!("../../docs/rules.md");
    let example = doc
        .split("## A complete example")
        .nth(1)
        .and_then(|rest| rest.split("```toml\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("docs/rules.md has a complete example");
    let (set, problems) = compile(example);
    assert!(problems.is_empty(), "{problems}");
    assert_eq!(set.matching("shop-main", "shop", "users"), [0]);
    assert_eq!(set.matching("shop-main", "shop", "orders_07"), [1]);
    assert!(set.matching("other", "shop", "orders_07").is_empty());
    let redis = set.rule(0).config().redis.as_ref().expect("[rules.redis]");
    assert_eq!(redis["keys"].as_array().map(Vec::len), Some(2));

    let mut e = event(
        EventType::Insert,
        &["id"],
        json!({"id": 9, "tenant_id": 3, "status": "paid", "amount": "10.50",
               "internal_note": "x", "tags": "a,b", "created_epoch": 1763716502,
               "status_code": 1, "shipping": {"address": {"city": "Oslo"}},
               "items": "[{\"sku\":\"A1\"},{\"sku\":\"B2\"}]"}),
        None,
    );
    e.table = "orders_07".into();
    e.instance = "shop-main".into();
    let m = applied(set.rule(1), &e).unwrap().expect("mapped");
    assert_eq!(m.id, "3:9");
    assert_eq!(
        Value::Object(m.doc),
        json!({"id": 9, "tenant_id": 3, "status": "paid", "total": "10.50", "tags": ["a", "b"],
               "created_epoch": "2025-11-21T09:15:02Z", "status_code": "paid",
               "shipping": {"address": {"city": "Oslo"}},
               "items": "[{\"sku\":\"A1\"},{\"sku\":\"B2\"}]",
               "city": "Oslo", "skus": ["A1", "B2"], "origin": "shop-main"})
    );
    e.data.insert("status".into(), json!("deleted"));
    assert_eq!(applied(set.rule(1), &e).unwrap(), None);
}

#[test]
fn target_templates_are_checked() {
    let set = rule("fields = { include = ['id', 'email'], rename = { email = 'mail' } }");
    let cases = [
        ("user:{id}", ""),
        ("user:email:{mail|lower}", ""),
        ("user:email:{email}", "  rules[0].redis.keys[1]: unknown column `email` in template `user:email:{email}`: fields.rename renames it to `mail`; write `{mail}`"),
        ("user:{name}", "  rules[0].redis.keys[1]: unknown column `name` in template `user:{name}`: fields.include does not keep it; add it to fields.include (kept: id, mail)"),
    ];
    for (text, want) in cases {
        let mut problems = Problems::default();
        set.rule(0).check_template(
            &Template::parse(text).unwrap(),
            "rules[0].redis.keys[1]",
            &mut problems,
        );
        assert_eq!(problems.to_string(), want, "{text}");
    }
}
