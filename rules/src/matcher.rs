//! `match.tables` entries compiled: exact names, globs and `/regex/`.

use crate::error::one_line;
use globset::{Glob, GlobSet, GlobSetBuilder};
use regex::Regex;
use sluice_config::Problems;

/// The compiled `match` of one rule.
#[derive(Debug, Clone)]
pub(crate) struct TableMatcher {
    /// Exact `(database, table)` pairs.
    exact: Vec<(String, String)>,
    globs: Option<GlobSet>,
    regexes: Vec<Regex>,
    source: Option<String>,
}

impl TableMatcher {
    /// Compiles `tables`; problems go under `path` (e.g. `rules[0].match`).
    pub(crate) fn compile(
        tables: &[String],
        source: Option<&str>,
        path: &str,
        problems: &mut Problems,
    ) -> TableMatcher {
        if tables.is_empty() {
            problems.add(
                format!("{path}.tables"),
                "no tables given; list at least one, e.g. [\"shop.orders\"] or [\"shop.orders_*\"]",
            );
        }
        let mut exact = Vec::new();
        let mut globs = GlobSetBuilder::new();
        let mut glob_count = 0;
        let mut regexes = Vec::new();
        for (i, entry) in tables.iter().enumerate() {
            let key = format!("{path}.tables[{i}]");
            if let Some(body) = entry
                .strip_prefix('/')
                .and_then(|rest| rest.strip_suffix('/'))
                .filter(|_| entry.len() >= 2)
            {
                match Regex::new(body) {
                    Ok(re) => regexes.push(re),
                    Err(e) => problems.add(
                        key,
                        format!(
                            "invalid regex `{body}`: {}; it is matched against `database.table`, e.g. /^shop\\.orders_\\d+$/",
                            one_line(&e.to_string())
                        ),
                    ),
                }
            } else if entry.contains(['*', '?', '[', '{']) {
                match Glob::new(entry) {
                    Ok(g) => {
                        globs.add(g);
                        glob_count += 1;
                    }
                    Err(e) => problems.add(
                        key,
                        format!("invalid glob `{entry}`: {}; e.g. shop.orders_* or shop.orders_[0-9][0-9]", e.kind()),
                    ),
                }
            } else {
                match entry.split_once('.') {
                    Some((db, table)) if !db.is_empty() && !table.is_empty() => {
                        exact.push((db.to_owned(), table.to_owned()))
                    }
                    _ => problems.add(
                        key,
                        format!("`{entry}` is not `database.table`; write e.g. \"shop.orders\", a glob \"shop.*\" or a regex \"/^shop\\.orders_\\d+$/\""),
                    ),
                }
            }
        }
        let globs = if glob_count == 0 {
            None
        } else {
            match globs.build() {
                Ok(set) => Some(set),
                Err(e) => {
                    problems.add(format!("{path}.tables"), format!("invalid globs: {e}"));
                    None
                }
            }
        };
        if source.is_some_and(str::is_empty) {
            problems.add(
                format!("{path}.source"),
                "empty source instance; remove it to match every instance, or give the instance name",
            );
        }
        TableMatcher {
            exact,
            globs,
            regexes,
            source: source.map(str::to_owned),
        }
    }

    /// Whether events of `instance`'s `database.table` match.
    pub(crate) fn matches(&self, instance: &str, database: &str, table: &str) -> bool {
        if self.source.as_deref().is_some_and(|s| s != instance) {
            return false;
        }
        if self.exact.iter().any(|(d, t)| d == database && t == table) {
            return true;
        }
        if self.globs.is_none() && self.regexes.is_empty() {
            return false;
        }
        let full = format!("{database}.{table}");
        self.globs.as_ref().is_some_and(|g| g.is_match(&full))
            || self.regexes.iter().any(|r| r.is_match(&full))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(tables: &[&str], source: Option<&str>) -> (TableMatcher, Problems) {
        let mut problems = Problems::default();
        let tables: Vec<String> = tables.iter().map(|s| s.to_string()).collect();
        let m = TableMatcher::compile(&tables, source, "rules[0].match", &mut problems);
        (m, problems)
    }

    #[test]
    fn matches_tables() {
        type Case<'a> = (
            &'a [&'a str],
            Option<&'a str>,
            (&'a str, &'a str, &'a str),
            bool,
        );
        let cases: &[Case] = &[
            (&["shop.orders"], None, ("i", "shop", "orders"), true),
            (&["shop.orders"], None, ("i", "shop", "orders_1"), false),
            (&["shop.orders"], None, ("i", "shopx", "orders"), false),
            (&["shop.orders_*"], None, ("i", "shop", "orders_07"), true),
            (&["shop.orders_*"], None, ("i", "shop", "orders"), false),
            (
                &["shop.orders_[0-9][0-9]"],
                None,
                ("i", "shop", "orders_63"),
                true,
            ),
            (
                &["shop.orders_[0-9][0-9]"],
                None,
                ("i", "shop", "orders_6"),
                false,
            ),
            (
                &["shop.orders_[0-9][0-9]"],
                None,
                ("i", "shop", "orders_632"),
                false,
            ),
            (&["*.users"], None, ("i", "tenant_a", "users"), true),
            (&["shop.{users,orders}"], None, ("i", "shop", "users"), true),
            (
                &[r"/^shop\.orders_\d+$/"],
                None,
                ("i", "shop", "orders_12"),
                true,
            ),
            (
                &[r"/^shop\.orders_\d+$/"],
                None,
                ("i", "shop", "orders_12x"),
                false,
            ),
            (&[r"/orders/"], None, ("i", "x", "old_orders_archive"), true),
            (&["a.b", "shop.orders"], None, ("i", "shop", "orders"), true),
            (
                &["shop.orders"],
                Some("main"),
                ("main", "shop", "orders"),
                true,
            ),
            (
                &["shop.orders"],
                Some("main"),
                ("other", "shop", "orders"),
                false,
            ),
            (
                &["shop.*"],
                Some("main"),
                ("other", "shop", "orders"),
                false,
            ),
        ];
        for (tables, source, (inst, db, table), want) in cases {
            let (m, p) = compile(tables, *source);
            assert!(p.is_empty(), "{tables:?}: {p}");
            assert_eq!(
                m.matches(inst, db, table),
                *want,
                "{tables:?} {inst} {db}.{table}"
            );
        }
    }

    #[test]
    fn reports_bad_entries() {
        let cases: &[(&[&str], Option<&str>, &str)] = &[
            (&[], None, "  rules[0].match.tables: no tables given; list at least one, e.g. [\"shop.orders\"] or [\"shop.orders_*\"]"),
            (&["orders"], None, "  rules[0].match.tables[0]: `orders` is not `database.table`; write e.g. \"shop.orders\", a glob \"shop.*\" or a regex \"/^shop\\.orders_\\d+$/\""),
            (&["a.b", "shop.orders_[0-9"], None, "  rules[0].match.tables[1]: invalid glob `shop.orders_[0-9`: unclosed character class; missing ']'; e.g. shop.orders_* or shop.orders_[0-9][0-9]"),
            (&["/shop.(orders/"], None, "  rules[0].match.tables[0]: invalid regex `shop.(orders`: regex parse error: shop.(orders ^ error: unclosed group; it is matched against `database.table`, e.g. /^shop\\.orders_\\d+$/"),
            (&["a.b"], Some(""), "  rules[0].match.source: empty source instance; remove it to match every instance, or give the instance name"),
        ];
        for (tables, source, want) in cases {
            let (_, p) = compile(tables, *source);
            assert_eq!(p.to_string(), *want, "{tables:?}");
        }
    }
}
