//! `${NAME}` and `${NAME:-default}` references in config text, resolved before parsing.

/// Replaces `${NAME}` with the variable's value (an error names every unset variable and its
/// line), `${NAME:-default}` with the value or the default, and `$$` with a literal `$`.
/// TOML comments are copied as they are, so documentation in a config may mention `${VAR}`.
pub fn interpolate_env(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut missing: Vec<String> = Vec::new();
    for (line_no, whole_line) in text.split_inclusive('\n').enumerate() {
        let (line, comment) = whole_line.split_at(comment_start(whole_line));
        let mut rest = line;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(stripped) = after.strip_prefix('$') {
                out.push('$');
                rest = stripped;
            } else if let Some(body) = after.strip_prefix('{') {
                let Some(end) = body.find('}') else {
                    return Err(format!(
                        "line {}: `${{` without a closing `}}`; write `$${{` for a literal `${{`",
                        line_no + 1
                    ));
                };
                let reference = &body[..end];
                let (name, default) = match reference.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (reference, None),
                };
                let valid =
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(format!(
                        "line {}: `${{{reference}}}` is not an environment reference; names are letters, digits and `_`",
                        line_no + 1
                    ));
                }
                match (env(name), default) {
                    (Some(v), _) => out.push_str(&v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => {
                        missing.push(format!("${{{name}}} (line {})", line_no + 1));
                    }
                }
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        out.push_str(comment);
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(format!(
            "environment variable not set: {}; export it or write `${{NAME:-default}}`",
            missing.join(", ")
        ))
    }
}

/// Byte index where the line's TOML comment starts (a `#` outside strings), or its length.
fn comment_start(line: &str) -> usize {
    let mut in_basic = false;
    let mut in_literal = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_basic => escaped = true,
            '"' if !in_literal => in_basic = !in_basic,
            '\'' if !in_basic => in_literal = !in_literal,
            '#' if !in_basic && !in_literal => return i,
            _ => {}
        }
    }
    line.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "USER" => Some("sluice".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("a = \"${USER}\"", Ok("a = \"sluice\"")),
            ("a = \"${EMPTY}x\"", Ok("a = \"x\"")),
            ("a = \"${NOPE:-dflt}\"", Ok("a = \"dflt\"")),
            ("a = \"${USER:-dflt}\"", Ok("a = \"sluice\"")),
            ("price = \"$$5 and $x\"", Ok("price = \"$5 and $x\"")),
            ("# set ${NOPE} first\na = 1", Ok("# set ${NOPE} first\na = 1")),
            ("a = \"${USER}\" # not ${NOPE}", Ok("a = \"sluice\" # not ${NOPE}")),
            ("a = \"#${USER}\"", Ok("a = \"#sluice\"")),
            ("a = '#${USER}'", Ok("a = '#sluice'")),
            ("a = 1\nb = \"${NOPE}\"", Err("environment variable not set: ${NOPE} (line 2); export it or write `${NAME:-default}`")),
            ("a = \"${US ER}\"", Err("line 1: `${US ER}` is not an environment reference; names are letters, digits and `_`")),
            ("a = \"${USER\"", Err("line 1: `${` without a closing `}`; write `$${` for a literal `${`")),
        ];
        for (input, want) in cases {
            let got = interpolate_env(input, env);
            assert_eq!(got.as_deref().map_err(|e| e.as_str()), *want, "{input}");
        }
    }
}
