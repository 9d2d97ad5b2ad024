//! Unit tests of the field mapping: columns, conversions, JSONPath fields and config problems.

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
        ("convert = { tags = 'splitt' }", "  rules[0].fields.convert.tags: unknown conversion `splitt`; use one of: split, parse_json, map, epoch_seconds_to_date, epoch_seconds_to_datetime, epoch_millis_to_date, epoch_millis_to_datetime, hash, mask, null"),
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

#[test]
fn masks_sensitive_columns_and_never_shows_the_key() {
    let src = row(
        json!({"id": 7, "email": "a@x.io", "phone": "13812345678", "ssn": "123-45-6789", "note": null}),
    );
    let (map, problems) = compile(
        "convert = { email = { type = 'hash', key = 'secret-key-123' }, phone = { type = 'mask', keep_first = 3, keep_last = 4 }, ssn = 'null', note = { type = 'hash', key = 'secret-key-123' } }",
    );
    assert!(problems.is_empty(), "{problems}");
    let out = map.map(&src, "r").unwrap();
    assert_eq!(out["phone"], json!("138****5678"));
    assert_eq!(out["ssn"], Value::Null);
    assert_eq!(out["note"], Value::Null, "null stays null");
    assert_eq!(out["id"], json!(7));
    let hashed = out["email"].as_str().unwrap();
    assert_eq!(hashed.len(), 64);
    assert_eq!(
        out["email"],
        super::mask::hash(b"secret-key-123", &json!("a@x.io"))
    );
    assert!(
        !format!("{map:?}").contains("secret-key-123"),
        "the key must not print"
    );
}

#[test]
fn masking_problems_name_the_fix() {
    let (_, problems) =
        compile("convert = { email = 'hash', phone = { type = 'null', keep_first = 2 } }");
    let text = problems.to_string();
    assert!(text.contains("rules[0].fields.convert.email: conversion `hash` needs a key from the environment, e.g. { type = \"hash\", key = \"${SLUICE_HASH_KEY}\" }"), "{text}");
    assert!(
        text.contains(
            "`keep_first`, `keep_last` and `with` belong to conversion `mask`, not `null`"
        ),
        "{text}"
    );
}
