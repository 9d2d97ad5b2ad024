//! Unit tests of the `where` language: evaluation cases, parse errors and evaluation errors.

use super::number::{cmp_decimal, is_decimal};
use super::*;
use serde_json::json;
use std::cmp::Ordering;

fn event(kind: EventType, data: Value, old: Option<Value>) -> ChangeEvent {
    crate::test_util::event(kind, &["id"], data, old)
}

#[test]
fn evaluates() {
    let e = event(
        EventType::Update,
        json!({"id": 7, "status": "paid", "amount": "12.30", "price": 99.5, "big": u64::MAX,
               "note": null, "active": 1, "flag": true, "tags": ["a", "b"], "neg": "-0.50",
               "day": "2026-11-21", "odd name": "x"}),
        Some(json!({"status": "new", "amount": "10.00"})),
    );
    let cases = [
        (r#"status != "deleted" && amount > 100"#, false),
        (r#"status != "deleted" && amount > 12"#, true),
        ("amount == 12.3", true),
        ("amount == 12.30", true),
        ("amount >= 12.3 && amount <= 12.300", true),
        ("amount < 12.31", true),
        (r#"amount == "12.3""#, false), // text vs text compares as text
        ("price > 99.4999 && price < 100", true),
        ("price == 99.5", true),
        ("big > 18446744073709551614", true),
        ("big == 18446744073709551615", true),
        ("id == 7 && id == 7.0", true),
        (r#"id == "7""#, true),
        ("id in [1, 7, 9]", true),
        ("id not in [1, 7, 9]", false),
        (r#"status in ["paid", "shipped"]"#, true),
        (r#"!(status in ["paid"])"#, false),
        (r#""a" in tags && !("c" in tags)"#, true),
        ("id in []", false),
        ("note == null && note is null", true),
        ("note is not null || note != null", false),
        ("status is not null", true),
        ("note > 1 || note < 1", false),
        ("active && active == true && flag && flag == 1", true),
        ("!active", false),
        ("not note", true),
        ("neg < 0 && neg > -1 && neg == -0.5", true),
        (r#"day >= "2026-01-01" && day < "2027-01-01""#, true),
        (r#"old.status == "new" && status == "paid""#, true),
        ("old.amount < amount", true),
        ("old.id == id", true), // unchanged column: before == after
        (r#"data.status == "paid""#, true),
        ("`odd name` == 'x'", true),
        ("status != 'héllo 🌊' && status != \"it\\\"s\"", true),
        ("status == 'x' or id == 7 and status == 'paid'", true),
        ("(id == 1 || id == 7) && !(status == 'new')", true),
        ("id == 1 || id == 2 || id == 7", true),
        (
            "id == 1 && status == 'paid' || id == 7 && status == 'paid'",
            true,
        ),
    ];
    for (text, want) in cases {
        let f = Filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(f.eval(&e), Ok(want), "{text}");
    }
}

#[test]
fn old_by_event_type() {
    let insert = event(EventType::Insert, json!({"status": "new"}), None);
    let delete = event(EventType::Delete, json!({"status": "gone"}), None);
    let cases = [
        (&insert, "old.status == null", true),
        (&delete, "old.status == 'gone'", true),
        (&delete, "status == 'gone'", true),
    ];
    for (e, text, want) in cases {
        assert_eq!(Filter::parse(text).unwrap().eval(e), Ok(want), "{text}");
    }
}

#[test]
fn evaluation_errors() {
    let e = event(
        EventType::Insert,
        json!({"id": 1, "status": "paid", "attrs": {"a": 1}}),
        None,
    );
    let cases = [
        ("amount > 1", "column `amount` is not in shop.orders (it has: id, status, attrs); check the column name"),
        ("status > 1", "status > 1: cannot order text (\"paid\") against a number (1); compare numbers (or DECIMAL text) with numbers, text with text"),
        ("id in status", "`in` needs a list on its right, but status is text (\"paid\")"),
        ("status", "status is text (\"paid\"), not true/false; compare it, e.g. status == \"...\""),
        ("attrs < 1", "attrs < 1: cannot order an object ({\"a\":1}) against a number (1); compare numbers (or DECIMAL text) with numbers, text with text"),
    ];
    for (text, want) in cases {
        assert_eq!(
            Filter::parse(text).unwrap().eval(&e),
            Err(want.to_owned()),
            "{text}"
        );
    }
    // Short-circuit: the missing column on the right is never read.
    assert_eq!(
        Filter::parse("id == 2 && amount > 1").unwrap().eval(&e),
        Ok(false)
    );
}

#[test]
fn parse_errors() {
    let cases = [
        ("status = 1", "single `=` at character 8; write `==` to compare"),
        ("status ==", "expected a column, text, number, list, true, false or null at the end (character 10)"),
        ("(a == 1", "expected `)` at the end (character 8)"),
        ("a == 1 b == 2", "unexpected `b` at character 8; combine conditions with && or ||"),
        ("a == 'x", "text starting at character 6 is not closed by '"),
        ("a in [1, b]", "expected text, a number, true, false or null in a list at character 10, found `b`"),
        ("a in [1 2]", "expected `,` or `]` at character 9, found `2`"),
        ("a is 1", "expected `null` after `is` at character 6, found `1`"),
        ("old. == 1", "expected a column name after `old.` at character 6, found `==`"),
        ("a == 1.2.3", "`1.2.3` at character 6 is not a number"),
        ("a == #", "unexpected `#` at character 6; quote text with \"...\" and odd column names with `...`"),
        ("'x'", "\"x\" alone is not a condition; compare a column with it, e.g. status == \"x\""),
        ("", "expected a column, text, number, list, true, false or null at the end (character 1)"),
        ("a == )", "expected a column, text, number, list, true, false or null at character 6, found `)`"),
        ("`a == 1", "column name quoted with ` at character 1 is not closed"),
        ("é == 1", "unexpected `é` at character 1; quote text with \"...\" and odd column names with `...`"),
    ];
    for (text, want) in cases {
        assert_eq!(Filter::parse(text), Err(want.to_owned()), "{text}");
    }
}

#[test]
fn decimal_order() {
    let cases = [
        ("1", "1.0", Ordering::Equal),
        ("-0", "0.000", Ordering::Equal),
        ("012.50", "12.5", Ordering::Equal),
        ("12.5", "12.49", Ordering::Greater),
        ("-12.5", "-12.49", Ordering::Less),
        ("99", "100", Ordering::Less),
        ("-1", "0.1", Ordering::Less),
        ("0.001", "0.01", Ordering::Less),
        (
            "123456789012345678901234567890.5",
            "123456789012345678901234567890.4",
            Ordering::Greater,
        ),
    ];
    for (a, b, want) in cases {
        assert_eq!(cmp_decimal(a, b), want, "{a} vs {b}");
        assert_eq!(cmp_decimal(b, a), want.reverse(), "{b} vs {a}");
    }
    for (s, want) in [
        ("12.30", true),
        ("-1", true),
        ("+1.5", true),
        ("1.", false),
        (".5", false),
        ("1e5", false),
        ("", false),
        ("-", false),
        ("abc", false),
    ] {
        assert_eq!(is_decimal(s), want, "{s}");
    }
}

/// `digits` scaled down by 10^`scale`, as DECIMAL text (`-12.30` for -1230, 2).
fn decimal_text(digits: i64, scale: u32) -> String {
    let sign = if digits < 0 { "-" } else { "" };
    let abs = digits.unsigned_abs().to_string();
    let scale = scale as usize;
    if scale == 0 {
        return format!("{sign}{abs}");
    }
    let padded = format!("{abs:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

proptest::proptest! {
    /// Exact decimal order agrees with integer order at a common scale.
    #[test]
    fn decimal_order_matches_integers(a in -10_000_000i64..10_000_000, sa in 0u32..5, b in -10_000_000i64..10_000_000, sb in 0u32..5) {
        let scale = sa.max(sb);
        let ia = i128::from(a) * 10i128.pow(scale - sa);
        let ib = i128::from(b) * 10i128.pow(scale - sb);
        let (ta, tb) = (decimal_text(a, sa), decimal_text(b, sb));
        proptest::prop_assert!(is_decimal(&ta) && is_decimal(&tb));
        proptest::prop_assert_eq!(cmp_decimal(&ta, &tb), ia.cmp(&ib), "{} vs {}", ta, tb);
        // And through the where language, DECIMAL text against a number literal.
        let e = event(EventType::Insert, json!({"amount": ta}), None);
        let f = Filter::parse(&format!("amount < {tb}")).unwrap();
        proptest::prop_assert_eq!(f.eval(&e), Ok(ia < ib));
    }
}

/// Found by fuzzing: deeply nested parentheses overflowed the stack. Nesting is bounded (`!`,
/// parentheses and lists alike), with an error that says so; the bound itself still parses.
#[test]
fn nesting_is_bounded_with_a_clear_error() {
    use super::parser::MAX_NESTING;
    let e = event(EventType::Insert, json!({"a": 1}), None);
    let ok = format!(
        "{}a == 1{}",
        "(".repeat(MAX_NESTING),
        ")".repeat(MAX_NESTING)
    );
    assert_eq!(Filter::parse(&ok).unwrap().eval(&e), Ok(true));
    for deep in [
        format!("{}a == 1{}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("{}a", "!".repeat(100_000)),
        format!("a in {}1{}", "[".repeat(100_000), "]".repeat(100_000)),
    ] {
        let err = Filter::parse(&deep).unwrap_err();
        assert!(
            err.contains(&format!("more than {MAX_NESTING} deep")),
            "{err}"
        );
    }
}
