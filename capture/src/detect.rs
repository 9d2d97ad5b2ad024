//! The plaintext detector: values of published columns that look like personal data (e-mail
//! addresses, phone numbers, ID card numbers, payment card numbers, or a configured pattern),
//! counted per column in a metric and told once in the log, so a team learns which columns to
//! mask before the data lands anywhere. It samples rows, so it costs the reader little.

use regex::Regex;
use serde::Deserialize;
use sluice_config::Problems;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Default `detect.sample_rows`: one row in this many of each table is checked.
pub const DEFAULT_SAMPLE_ROWS: u64 = 100;

/// The built-in pattern names.
pub const BUILT_IN: &str = "email, phone, phone_cn, id_card_cn, card";

/// `[detect]`: which patterns to look for, and how many rows to skip between looks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    /// Built-in patterns: `email`, `phone` (E.164, `+` and 8-15 digits), `phone_cn` (mainland
    /// China mobile numbers), `id_card_cn` (18-digit resident ID with its check digit), `card`
    /// (13-19 digits passing the Luhn check). Empty (the default) with no `custom` turns the
    /// detector off.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// More patterns by name: regexes a whole (trimmed) value must match.
    #[serde(default)]
    pub custom: BTreeMap<String, String>,
    /// Check one row in this many of each table (1 = every row); default
    /// [`DEFAULT_SAMPLE_ROWS`].
    #[serde(default)]
    pub sample_rows: Option<u64>,
}

impl DetectConfig {
    /// Records what is wrong under `detect`.
    pub fn validate(&self, p: &mut Problems) {
        for (i, name) in self.patterns.iter().enumerate() {
            if Pattern::built_in(name).is_none() {
                p.add(
                    format!("detect.patterns[{i}]"),
                    format!("unknown pattern `{name}`; use one of: {BUILT_IN}, or add it under detect.custom"),
                );
            }
        }
        for (name, re) in &self.custom {
            if let Err(e) = Regex::new(re) {
                p.add(
                    format!("detect.custom.{name}"),
                    format!("invalid regex: {e}"),
                );
            }
        }
        if self.sample_rows == Some(0) {
            p.add("detect.sample_rows", "must be at least 1");
        }
    }
}

enum Check {
    Regex(Regex),
    /// 18-digit resident ID: 17 digits and an ISO 7064 MOD 11-2 check character.
    IdCardCn,
    /// 13-19 digits (spaces and dashes allowed between) passing the Luhn check.
    Card,
}

struct Pattern {
    name: String,
    check: Check,
}

impl Pattern {
    fn built_in(name: &str) -> Option<Pattern> {
        let re = |r: &str| Regex::new(r).ok().map(Check::Regex);
        let check = match name {
            "email" => re(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")?,
            "phone" => re(r"^\+[1-9][0-9]{7,14}$")?,
            "phone_cn" => re(r"^(\+?86[- ]?)?1[3-9][0-9]{9}$")?,
            "id_card_cn" => Check::IdCardCn,
            "card" => Check::Card,
            _ => return None,
        };
        Some(Pattern {
            name: name.to_owned(),
            check,
        })
    }

    fn matches(&self, v: &str) -> bool {
        match &self.check {
            Check::Regex(r) => r.is_match(v),
            Check::IdCardCn => id_card_cn(v),
            Check::Card => luhn_card(v),
        }
    }
}

/// Counts matching values per (table, column, pattern).
pub struct Detector {
    patterns: Vec<Pattern>,
    sample: u64,
    /// Rows seen per table, for sampling.
    rows: HashMap<String, u64>,
    /// What was told in the log already.
    told: HashSet<(String, String, String)>,
}

impl Detector {
    /// The detector of a validated `[detect]`; `None` when it has no pattern.
    pub fn new(cfg: &DetectConfig) -> Option<Detector> {
        let mut patterns: Vec<Pattern> = cfg
            .patterns
            .iter()
            .filter_map(|n| Pattern::built_in(n))
            .collect();
        for (name, re) in &cfg.custom {
            if let Ok(r) = Regex::new(re) {
                patterns.push(Pattern {
                    name: name.clone(),
                    check: Check::Regex(r),
                });
            }
        }
        (!patterns.is_empty()).then(|| Detector {
            patterns,
            sample: cfg.sample_rows.unwrap_or(DEFAULT_SAMPLE_ROWS).max(1),
            rows: HashMap::new(),
            told: HashSet::new(),
        })
    }

    /// Looks at one row of `database.table` (its `data` as JSON) if it is a sampled one;
    /// returns the (column, pattern) pairs that matched.
    pub fn observe(&mut self, database: &str, table: &str, data: &[u8]) -> Vec<(String, String)> {
        let qualified = format!("{database}.{table}");
        let n = self.rows.entry(qualified).or_insert(0);
        *n += 1;
        if !(*n - 1).is_multiple_of(self.sample) {
            return Vec::new();
        }
        let Ok(serde_json::Value::Object(row)) = serde_json::from_slice(data) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for (column, value) in &row {
            let text = match value {
                serde_json::Value::String(s) => s.trim(),
                _ => continue,
            };
            if text.len() < 6 || text.len() > 320 {
                continue;
            }
            for p in &self.patterns {
                if p.matches(text) {
                    metrics::counter!("sluice_capture_plaintext_values_total",
                        "database" => database.to_owned(), "table" => table.to_owned(),
                        "column" => column.clone(), "pattern" => p.name.clone())
                    .increment(1);
                    let key = (
                        format!("{database}.{table}"),
                        column.clone(),
                        p.name.clone(),
                    );
                    if self.told.insert(key) {
                        tracing::warn!(database, table, column = %column, pattern = %p.name,
                            "column {database}.{table}.{column} holds values that look like `{}`; mask it ([filter.mask]) or drop it ([filter.drop_columns]) before it lands anywhere",
                            p.name);
                    }
                    found.push((column.clone(), p.name.clone()));
                }
            }
        }
        found
    }
}

fn id_card_cn(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    b[17].to_ascii_uppercase() == CHECK[(sum % 11) as usize]
}

fn luhn_card(v: &str) -> bool {
    let digits: Vec<u32> = v
        .chars()
        .filter(|c| *c != ' ' && *c != '-')
        .map(|c| c.to_digit(10))
        .collect::<Option<Vec<u32>>>()
        .unwrap_or_default();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector(patterns: &[&str], sample: u64) -> Detector {
        Detector::new(&DetectConfig {
            patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
            custom: [("employee".to_owned(), r"^E\d{6}$".to_owned())].into(),
            sample_rows: Some(sample),
        })
        .expect("patterns")
    }

    #[test]
    fn each_built_in_pattern_flags_its_values_and_not_others() {
        let mut d = detector(&["email", "phone", "phone_cn", "id_card_cn", "card"], 1);
        let row = br#"{"id":"7","mail":"ann@example.com","mobile":"13812345678","intl":"+4915112345678",
            "idc":"11010519491231002X","visa":"4111 1111 1111 1111","staff":"E123456",
            "note":"call me","not_card":"4111111111111112","not_id":"110105194912310021","count":"12345678"}"#;
        let mut found = d.observe("shop", "users", row);
        found.sort();
        let want: Vec<(String, String)> = [
            ("idc", "id_card_cn"),
            ("intl", "phone"),
            ("mail", "email"),
            ("mobile", "phone_cn"),
            ("staff", "employee"),
            ("visa", "card"),
        ]
        .iter()
        .map(|(c, p)| ((*c).to_owned(), (*p).to_owned()))
        .collect();
        assert_eq!(found, want);
    }

    #[test]
    fn rows_are_sampled_per_table() {
        let mut d = detector(&["email"], 3);
        let row = br#"{"mail":"ann@example.com"}"#;
        let hits: Vec<usize> = (0..7).map(|_| d.observe("a", "t", row).len()).collect();
        assert_eq!(hits, [1, 0, 0, 1, 0, 0, 1]);
        assert_eq!(
            d.observe("a", "other", row).len(),
            1,
            "each table samples on its own"
        );
    }

    #[test]
    fn no_pattern_no_detector_and_bad_config_is_reported() {
        assert!(Detector::new(&DetectConfig::default()).is_none());
        let mut p = Problems::default();
        DetectConfig {
            patterns: vec!["ssn".into()],
            custom: [("x".to_owned(), "(".to_owned())].into(),
            sample_rows: Some(0),
        }
        .validate(&mut p);
        let text = p.to_string();
        assert!(
            text.contains("detect.patterns[0]: unknown pattern `ssn`"),
            "{text}"
        );
        assert!(text.contains("detect.custom.x: invalid regex"), "{text}");
        assert!(
            text.contains("detect.sample_rows: must be at least 1"),
            "{text}"
        );
    }
}
