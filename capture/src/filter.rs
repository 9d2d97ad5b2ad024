//! Which tables, columns and change types become events.

use crate::config::FilterConfig;
use regex::Regex;
use sluice_event::EventType;
use sluice_rules::Masking;
use std::collections::{HashMap, HashSet};

/// The compiled `[filter]` section.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    drop_columns: HashMap<String, HashSet<String>>,
    /// Per `database.table`, per column: its masking.
    masks: HashMap<String, HashMap<String, Masking>>,
    types: Option<HashSet<EventType>>,
    /// Emit DDL events.
    pub ddl: bool,
}

impl Filter {
    /// Compiles a validated config section (invalid regexes were rejected at load).
    pub fn new(cfg: &FilterConfig) -> Result<Filter, regex::Error> {
        let compile = |v: &Vec<String>| {
            v.iter()
                .map(|r| Regex::new(r))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Filter {
            include: compile(&cfg.include)?,
            exclude: compile(&cfg.exclude)?,
            drop_columns: cfg
                .drop_columns
                .iter()
                .map(|(t, cols)| (t.clone(), cols.iter().cloned().collect()))
                .collect(),
            masks: cfg
                .mask
                .iter()
                .map(|(t, cols)| {
                    let mut problems = sluice_config::Problems::default();
                    let cols = cols
                        .iter()
                        .filter_map(|(c, spec)| {
                            Some((c.clone(), Masking::compile(spec, c, &mut problems)?))
                        })
                        .collect();
                    (t.clone(), cols)
                })
                .collect(),
            types: cfg.types.as_ref().map(|ts| {
                ts.iter()
                    .filter_map(|t| match t.as_str() {
                        "INSERT" => Some(EventType::Insert),
                        "UPDATE" => Some(EventType::Update),
                        "DELETE" => Some(EventType::Delete),
                        _ => None,
                    })
                    .collect()
            }),
            ddl: cfg.ddl,
        })
    }

    /// Whether changes of `database.table` are published.
    pub fn table(&self, database: &str, table: &str) -> bool {
        let name = format!("{database}.{table}");
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(&name)))
            && !self.exclude.iter().any(|r| r.is_match(&name))
    }

    /// Whether events of this type are published.
    pub fn kind(&self, kind: EventType) -> bool {
        self.types.as_ref().is_none_or(|t| t.contains(&kind))
    }

    /// The masked columns of `database.table`.
    pub fn masks(&self, database: &str, table: &str) -> Option<&HashMap<String, Masking>> {
        self.masks.get(&format!("{database}.{table}"))
    }

    /// Columns of `database.table` left out of events.
    pub fn dropped(&self, database: &str, table: &str) -> Option<&HashSet<String>> {
        self.drop_columns.get(&format!("{database}.{table}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_exclude_types_columns() {
        let cfg = FilterConfig {
            include: vec!["^shop\\.".into()],
            exclude: vec!["^shop\\.tmp_".into()],
            drop_columns: [("shop.users".to_owned(), vec!["pw".to_owned()])].into(),
            types: Some(vec!["INSERT".into()]),
            ddl: false,
            mask: Default::default(),
        };
        let f = Filter::new(&cfg).unwrap();
        assert!(f.table("shop", "orders"));
        assert!(!f.table("shop", "tmp_x"));
        assert!(!f.table("crm", "orders"));
        assert!(f.kind(EventType::Insert));
        assert!(!f.kind(EventType::Delete));
        assert!(f.dropped("shop", "users").unwrap().contains("pw"));
        let all = Filter::new(&FilterConfig::default()).unwrap();
        assert!(all.table("any", "thing") && all.kind(EventType::Update));
    }
}
