//! Errors of applying a rule to one event. All are definite: the same event fails the same way
//! every time, so the sink dead-letters the message (or stops, per `on_error`).

/// Why a rule could not map an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The `where` expression could not be evaluated on this row.
    #[error("rule `{rule}`: where `{expr}`: {message}")]
    Where {
        rule: String,
        expr: String,
        message: String,
    },
    /// A `fields.convert` conversion rejected the column's value.
    #[error("rule `{rule}`: fields.convert.{column} (`{conversion}`): {message}")]
    Convert {
        rule: String,
        column: String,
        conversion: String,
        message: String,
    },
    /// A `fields.json_path` extraction failed.
    #[error("rule `{rule}`: fields.json_path.{field} (`{path}` on column `{column}`): {message}")]
    JsonPath {
        rule: String,
        field: String,
        column: String,
        path: String,
        message: String,
    },
    /// A template could not be rendered from the row; `rule` is empty when not yet known.
    #[error("{}template `{template}`: {message}", rule_prefix(rule))]
    Template {
        rule: String,
        template: String,
        message: String,
    },
}

impl RuleError {
    /// Names the rule in a template error raised outside [`crate::Rule::apply`].
    pub fn with_rule(self, name: &str) -> RuleError {
        match self {
            RuleError::Template {
                template, message, ..
            } => RuleError::Template {
                rule: name.to_owned(),
                template,
                message,
            },
            other => other,
        }
    }

    /// The rule named in the error, if any.
    pub fn rule(&self) -> Option<&str> {
        let rule = match self {
            RuleError::Where { rule, .. }
            | RuleError::Convert { rule, .. }
            | RuleError::JsonPath { rule, .. }
            | RuleError::Template { rule, .. } => rule,
        };
        (!rule.is_empty()).then_some(rule.as_str())
    }
}

fn rule_prefix(rule: &str) -> String {
    if rule.is_empty() {
        String::new()
    } else {
        format!("rule `{rule}`: ")
    }
}

/// Why a template text is not a valid template (found at start-up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template `{template}`: {message}")]
pub struct TemplateError {
    pub template: String,
    pub message: String,
}

/// Parser errors that span several lines (the input with a caret under it) on one line.
pub(crate) fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
