//! `{col}`, `{tenant}:{id}`, `orders-{created_at|month}` templates, parsed once at start-up.

use crate::error::{RuleError, TemplateError};
use serde_json::Value;
use sluice_event::Row;
use std::borrow::Cow;

/// A parsed template: literal text and `{column|filter|...}` placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Column { name: String, filters: Vec<Filter> },
}

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Lower,
    Upper,
    Trim,
    Year,
    Month,
    Date,
    Default(String),
}

/// Filter names, for error messages.
const FILTERS: &str = "lower, upper, trim, year, month, date, default:<text>";

impl Template {
    /// Parses `text`; `{{` and `}}` stand for literal braces.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let fail = |message: String| TemplateError {
            template: text.to_owned(),
            message,
        };
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((pos, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, n)| n) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|&(_, n)| n) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => {
                    return Err(fail(format!(
                        "unmatched `}}` at character {}; write `}}}}` for a literal brace",
                        pos + 1
                    )))
                }
                '{' => {
                    let start = pos + 1;
                    let end = loop {
                        match chars.next() {
                            Some((end, '}')) => break end,
                            Some((_, '{')) | None => {
                                return Err(fail(format!(
                                    "`{{` at character {} is not closed by `}}`; write `{{{{` for a literal brace",
                                    pos + 1
                                )))
                            }
                            Some(_) => {}
                        }
                    };
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(parse_placeholder(&text[start..end]).map_err(fail)?);
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            text: text.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The columns the template reads, in order of appearance (for start-up validation).
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Column { name, .. } => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Renders the template; a missing column, or a null one without `|default:`, is an error.
    pub fn render(&self, row: &Row) -> Result<String, RuleError> {
        match self.render_inner(row)? {
            Ok(s) => Ok(s),
            Err(column) => Err(self.error(format!(
                "column `{column}` is null; add `|default:<text>` to the placeholder, or skip such rows with where = '{column} != null'"
            ))),
        }
    }

    /// Like [`Template::render`], but `Ok(None)` when a column is null and has no `|default:`
    /// (a Redis key that cannot exist, for example).
    pub fn try_render(&self, row: &Row) -> Result<Option<String>, RuleError> {
        Ok(self.render_inner(row)?.ok())
    }

    /// `Ok(Err(column))` when `column` was null.
    fn render_inner<'t>(&'t self, row: &Row) -> Result<Result<String, &'t str>, RuleError> {
        let mut out = String::with_capacity(self.text.len() + 24);
        for part in &self.parts {
            let (name, filters) = match part {
                Part::Literal(s) => {
                    out.push_str(s);
                    continue;
                }
                Part::Column { name, filters } => (name, filters),
            };
            let value = row.get(name).ok_or_else(|| {
                self.error(format!(
                    "column `{name}` is not in the row; the row has: {}",
                    column_list(row)
                ))
            })?;
            let mut text = (!value.is_null()).then(|| value_text(value));
            for filter in filters {
                text = match (filter, text) {
                    (Filter::Default(d), None) => Some(Cow::Borrowed(d.as_str())),
                    (_, None) => None,
                    (f, Some(t)) => Some(self.apply_filter(f, t, name)?),
                };
            }
            match text {
                Some(t) => out.push_str(&t),
                None => return Ok(Err(name.as_str())),
            }
        }
        Ok(Ok(out))
    }

    fn apply_filter<'a>(
        &self,
        filter: &Filter,
        text: Cow<'a, str>,
        column: &str,
    ) -> Result<Cow<'a, str>, RuleError> {
        let date_prefix = |len: usize, name: &str| -> Result<Cow<'a, str>, RuleError> {
            if is_date_prefix(&text, len) {
                Ok(match &text {
                    Cow::Borrowed(s) => Cow::Borrowed(&s[..len]),
                    Cow::Owned(s) => Cow::Owned(s[..len].to_owned()),
                })
            } else {
                Err(self.error(format!(
                    "`|{name}` needs a date or datetime such as 2026-11-21 or 2026-11-21T09:15:02, but column `{column}` is `{text}`"
                )))
            }
        };
        match filter {
            Filter::Lower => Ok(Cow::Owned(text.to_lowercase())),
            Filter::Upper => Ok(Cow::Owned(text.to_uppercase())),
            Filter::Trim => Ok(match text {
                Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
                Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
            }),
            Filter::Year => date_prefix(4, "year"),
            Filter::Month => date_prefix(7, "month"),
            Filter::Date => date_prefix(10, "date"),
            Filter::Default(_) => Ok(text),
        }
    }

    fn error(&self, message: String) -> RuleError {
        RuleError::Template {
            rule: String::new(),
            template: self.text.clone(),
            message,
        }
    }
}

fn parse_placeholder(inner: &str) -> Result<Part, String> {
    let mut pieces = inner.split('|');
    let name = pieces.next().unwrap_or_default().trim();
    if name.is_empty() {
        return Err(format!(
            "`{{{inner}}}` names no column; write `{{column}}` or `{{column|filter}}`"
        ));
    }
    let mut filters = Vec::new();
    for piece in pieces {
        let piece = piece.trim();
        let filter = match piece.split_once(':') {
            Some(("default", text)) => Filter::Default(text.to_owned()),
            _ => match piece {
                "lower" => Filter::Lower,
                "upper" => Filter::Upper,
                "trim" => Filter::Trim,
                "year" => Filter::Year,
                "month" => Filter::Month,
                "date" => Filter::Date,
                _ => {
                    return Err(format!(
                        "unknown filter `{piece}` on column `{name}`; known filters: {FILTERS}"
                    ))
                }
            },
        };
        filters.push(filter);
    }
    Ok(Part::Column {
        name: name.to_owned(),
        filters,
    })
}

/// True if `s` starts with the first `len` characters (4, 7 or 10) of `YYYY-MM-DD`.
fn is_date_prefix(s: &str, len: usize) -> bool {
    let b = s.as_bytes();
    b.len() >= len
        && b[..len].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
        && (b.len() == len || len == 10 || b[len] == b'-')
}

/// A value as template text: strings as they are, other values as JSON; null as empty.
pub(crate) fn value_text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::Null => Cow::Borrowed(""),
        Value::String(s) => Cow::Borrowed(s),
        Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Value::Number(n) => Cow::Owned(n.to_string()),
        other => Cow::Owned(other.to_string()),
    }
}

/// The row's column names for an error message, shortened when the row is wide.
pub(crate) fn column_list(row: &Row) -> String {
    const MAX: usize = 20;
    let mut names: Vec<&str> = row.keys().take(MAX).map(String::as_str).collect();
    if row.len() > MAX {
        names.push("...");
    }
    if names.is_empty() {
        "no columns".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::row;
    use serde_json::json;

    #[test]
    fn renders() {
        let r = row(json!({
            "id": 7, "tenant": "ACME", "email": null, "created_at": "2026-11-21T09:15:02.123",
            "day": "2026-01-02", "price": "12.30", "ok": true, "tags": ["a","b"], "name": "  Bo "
        }));
        let cases = [
            ("{id}", "7"),
            ("{tenant}:{id}", "ACME:7"),
            ("{tenant|lower}:{id}", "acme:7"),
            ("{ tenant | lower | upper }", "ACME"),
            ("orders-{created_at|month}", "orders-2026-11"),
            ("orders-{day|month}", "orders-2026-01"),
            ("{created_at|date}/{created_at|year}", "2026-11-21/2026"),
            ("{email|default:none}", "none"),
            ("{email|lower|default:}x", "x"),
            ("{tenant|default:none}", "ACME"),
            ("p{price}", "p12.30"),
            ("{ok}", "true"),
            ("{tags}", "[\"a\",\"b\"]"),
            ("[{name|trim}]", "[Bo]"),
            ("{{literal}} {id}", "{literal} 7"),
            ("plain", "plain"),
            ("", ""),
        ];
        for (text, want) in cases {
            let t = Template::parse(text).unwrap();
            assert_eq!(t.render(&r).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn render_errors() {
        let r = row(json!({"id": 7, "email": null, "name": "bob"}));
        let cases = [
            (
                "user:{email}",
                "template `user:{email}`: column `email` is null; add `|default:<text>` to the placeholder, or skip such rows with where = 'email != null'",
            ),
            (
                "{nope}",
                "template `{nope}`: column `nope` is not in the row; the row has: id, email, name",
            ),
            (
                "{name|month}",
                "template `{name|month}`: `|month` needs a date or datetime such as 2026-11-21 or 2026-11-21T09:15:02, but column `name` is `bob`",
            ),
            (
                "{id|date}",
                "template `{id|date}`: `|date` needs a date or datetime such as 2026-11-21 or 2026-11-21T09:15:02, but column `id` is `7`",
            ),
        ];
        for (text, want) in cases {
            let t = Template::parse(text).unwrap();
            let err = t.render(&r).unwrap_err();
            assert_eq!(err.to_string(), want);
            assert_eq!(
                err.with_rule("r1").to_string(),
                format!("rule `r1`: {want}")
            );
        }
    }

    #[test]
    fn try_render_skips_nulls() {
        let r = row(json!({"id": 7, "email": null}));
        let t = Template::parse("user:email:{email}").unwrap();
        assert_eq!(t.try_render(&r).unwrap(), None);
        let t = Template::parse("user:{id}").unwrap();
        assert_eq!(t.try_render(&r).unwrap().as_deref(), Some("user:7"));
        assert!(Template::parse("{x}").unwrap().try_render(&r).is_err());
    }

    #[test]
    fn parse_errors() {
        let cases = [
            ("{id", "template `{id`: `{` at character 1 is not closed by `}`; write `{{` for a literal brace"),
            ("a}b", "template `a}b`: unmatched `}` at character 2; write `}}` for a literal brace"),
            ("x{}", "template `x{}`: `{}` names no column; write `{column}` or `{column|filter}`"),
            ("{ |lower}", "template `{ |lower}`: `{ |lower}` names no column; write `{column}` or `{column|filter}`"),
            ("{a{b}}", "template `{a{b}}`: `{` at character 1 is not closed by `}`; write `{{` for a literal brace"),
            ("{id|week}", "template `{id|week}`: unknown filter `week` on column `id`; known filters: lower, upper, trim, year, month, date, default:<text>"),
        ];
        for (text, want) in cases {
            assert_eq!(
                Template::parse(text).unwrap_err().to_string(),
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn columns_in_order() {
        let t = Template::parse("{tenant}:{id|lower}-{{x}}-{tenant}").unwrap();
        assert_eq!(t.columns().collect::<Vec<_>>(), ["tenant", "id", "tenant"]);
        assert_eq!(t.as_str(), "{tenant}:{id|lower}-{{x}}-{tenant}");
    }

    #[test]
    fn date_prefixes() {
        let cases = [
            ("2026-11-21", 7, true),
            ("2026-11-21T00:00:00", 10, true),
            ("2026-11", 7, true),
            ("2026", 4, true),
            ("20261121", 4, false),
            ("2026-1-21", 7, false),
            ("abcd-11-21", 4, false),
            ("2026", 7, false),
        ];
        for (s, len, want) in cases {
            assert_eq!(is_date_prefix(s, len), want, "{s} {len}");
        }
    }
}
