//! The `[snapshot]` section of capture.toml: when snapshots run, chunks, watermarks, rate limit.

use regex::Regex;
use serde::Deserialize;
use sluice_config::Problems;

/// Rows per chunk SELECT.
pub const DEFAULT_CHUNK_SIZE: usize = 10_000;
/// The signalling table Sluice creates for watermarks and on-demand requests.
pub const DEFAULT_SIGNAL_TABLE: &str = "sluice.sluice_signal";

/// The `[snapshot]` section; without it the capture never snapshots.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// `initial`: a new instance (no checkpoint yet) loads `tables` once while it starts
    /// streaming; `never` (default): only on demand (`sluice-capture snapshot`).
    #[serde(default)]
    pub mode: Mode,
    /// `database.table` to load for `mode = "initial"`; empty means every table the
    /// `[filter]` selects.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Rows per chunk SELECT (and the most rows held in memory).
    #[serde(default = "default_chunk_size")]
    pub chunk_size: usize,
    /// `table`: watermark rows in `signal_table` (exact, needs write access); `position`:
    /// binlog positions before and after each chunk (read-only user, weaker; see the docs).
    #[serde(default)]
    pub watermarks: Watermarks,
    /// `database.table` of the signalling table, created if missing.
    #[serde(default = "default_signal_table")]
    pub signal_table: String,
    /// Snapshot rows per second at most, to spare the primary; 0 = no limit.
    #[serde(default)]
    pub max_rows_per_sec: u64,
}

/// When a snapshot runs without being asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Never,
    Initial,
}

/// How chunk reads are placed in the binlog stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Watermarks {
    #[default]
    Table,
    Position,
}

fn default_chunk_size() -> usize {
    DEFAULT_CHUNK_SIZE
}
fn default_signal_table() -> String {
    DEFAULT_SIGNAL_TABLE.to_owned()
}

impl SnapshotConfig {
    /// Reports problems under `snapshot.`; the `[filter]` regexes `include` and `exclude` must
    /// let the signalling table through.
    pub fn validate(&self, include: &[String], exclude: &[String], p: &mut Problems) {
        if self.chunk_size == 0 || self.chunk_size > 1_000_000 {
            p.add("snapshot.chunk_size", "must be between 1 and 1000000");
        }
        for (i, t) in self.tables.iter().enumerate() {
            if split_table(t).is_none() {
                p.add(
                    format!("snapshot.tables[{i}]"),
                    format!("`{t}` is not database.table"),
                );
            }
        }
        if split_table(&self.signal_table).is_none() {
            p.add(
                "snapshot.signal_table",
                format!("`{}` is not database.table", self.signal_table),
            );
        } else if self.watermarks == Watermarks::Table {
            let compiled = |v: &[String]| -> Vec<Regex> {
                v.iter().filter_map(|r| Regex::new(r).ok()).collect()
            };
            let name = &self.signal_table;
            let included = include.is_empty() || compiled(include).iter().any(|r| r.is_match(name));
            let excluded = compiled(exclude).iter().any(|r| r.is_match(name));
            if !included || excluded {
                p.add(
                    "snapshot.signal_table",
                    format!("the capture must read the rows of {name} from the binlog, but [filter] drops them; add \"^{}$\" to filter.include and keep it out of filter.exclude (its rows never reach Kafka)", regex::escape(name)),
                );
            }
        }
        if self.watermarks == Watermarks::Position && self.signal_table != DEFAULT_SIGNAL_TABLE {
            // Harmless, but says the user may expect a table that is never written.
            p.add(
                "snapshot.signal_table",
                "unused with watermarks = \"position\"; remove it",
            );
        }
    }
}

/// `database.table` → (database, table).
pub fn split_table(s: &str) -> Option<(String, String)> {
    let (d, t) = s.split_once('.')?;
    (!d.is_empty() && !t.is_empty() && !t.contains('.')).then(|| (d.to_owned(), t.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_problems() {
        let snap = SnapshotConfig {
            mode: Mode::Initial,
            tables: vec!["nodot".into()],
            chunk_size: 0,
            watermarks: Watermarks::Table,
            signal_table: DEFAULT_SIGNAL_TABLE.into(),
            max_rows_per_sec: 0,
        };
        let mut p = Problems::default();
        snap.validate(&["^shop\\.".into()], &[], &mut p);
        let text = p.to_string();
        for want in [
            "snapshot.chunk_size",
            "snapshot.tables[0]",
            "snapshot.signal_table: the capture must read",
        ] {
            assert!(text.contains(want), "{want} missing in {text}");
        }
        let mut p = Problems::default();
        snap.validate(&[], &[], &mut p);
        assert!(!p.to_string().contains("signal_table"), "{p}");
    }
}
