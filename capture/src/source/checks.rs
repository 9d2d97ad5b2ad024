//! The start-up checks, and the server facts they read: version, variables, grants, binlogs.

use std::collections::HashMap;
use std::fmt;

/// The server family, from `version()`; they differ in GTIDs and a few events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    MySql,
}

/// The outcome of one start-up check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckStatus {
    Ok,
    Warn,
    Fail,
}

/// One start-up check: what was checked and what to do about it.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: &'static str,
    pub status: CheckStatus,
    pub message: String,
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.status {
            CheckStatus::Ok => "ok  ",
            CheckStatus::Warn => "WARN",
            CheckStatus::Fail => "FAIL",
        };
        write!(f, "[{s}] {}: {}", self.name, self.message)
    }
}

/// The server facts the checks need.
#[derive(Debug, Clone, Default)]
pub struct ServerFacts {
    pub version: String,
    pub variables: HashMap<String, String>,
    pub grants: Vec<String>,
    /// `SHOW BINARY LOGS`: file names, oldest first.
    pub binlogs: Vec<String>,
}

impl ServerFacts {
    /// MariaDB or MySQL.
    pub fn flavor(&self) -> Flavor {
        if self.version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.variables.get(name).map(String::as_str)
    }

    /// Every start-up check, each with a fix in its message. `position` is the file the capture
    /// would start from (checkpoint or configured start), if it names one.
    pub fn checks(
        &self,
        addr: &str,
        allow_partial_image: bool,
        position: Option<&str>,
    ) -> Vec<CheckResult> {
        let mut out = Vec::new();
        let mut add = |name, status, message: String| {
            out.push(CheckResult {
                name,
                status,
                message,
            })
        };
        add(
            "server",
            CheckStatus::Ok,
            format!("{addr} runs {} ({:?})", self.version, self.flavor()),
        );
        match self.var("log_bin") {
            Some(v) if v.eq_ignore_ascii_case("ON") => add("log_bin", CheckStatus::Ok, "ON".into()),
            v => add(
                "log_bin",
                CheckStatus::Fail,
                format!("log_bin is {} on {addr}; Sluice reads the binary log: add log_bin (and server_id) to my.cnf and restart the server", v.unwrap_or("OFF")),
            ),
        }
        match self.var("binlog_format") {
            Some(v) if v.eq_ignore_ascii_case("ROW") => add("binlog_format", CheckStatus::Ok, "ROW".into()),
            v => add(
                "binlog_format",
                CheckStatus::Fail,
                format!("binlog_format is {} on {addr}; Sluice needs ROW: SET GLOBAL binlog_format=ROW (and in my.cnf)", v.unwrap_or("unknown")),
            ),
        }
        match self.var("binlog_row_image") {
            Some(v) if v.eq_ignore_ascii_case("FULL") => add("binlog_row_image", CheckStatus::Ok, "FULL".into()),
            v if allow_partial_image => add(
                "binlog_row_image",
                CheckStatus::Warn,
                format!("binlog_row_image is {}; events carry only the logged columns (source.allow_partial_row_image = true)", v.unwrap_or("unknown")),
            ),
            v => add(
                "binlog_row_image",
                CheckStatus::Fail,
                format!("binlog_row_image is {} on {addr}; sinks need whole rows: SET GLOBAL binlog_row_image=FULL (and in my.cnf), or set source.allow_partial_row_image = true to accept partial rows", v.unwrap_or("unknown")),
            ),
        }
        match self.var("binlog_row_metadata") {
            Some(v) if v.eq_ignore_ascii_case("FULL") => add("binlog_row_metadata", CheckStatus::Ok, "FULL".into()),
            v => add(
                "binlog_row_metadata",
                CheckStatus::Warn,
                format!("binlog_row_metadata is {} on {addr}; column names come from information_schema instead, which is wrong while a schema change is replicated: SET GLOBAL binlog_row_metadata=FULL (and in my.cnf)", v.unwrap_or("unsupported")),
            ),
        }
        // MySQL 8: JSON columns of an UPDATE may be logged as diffs against the before image,
        // which the capture applies; without the before image's value there is nothing to
        // apply them to.
        match self.var("binlog_row_value_options") {
            Some(v) if v.to_ascii_uppercase().contains("PARTIAL_JSON") => {
                let full = self
                    .var("binlog_row_image")
                    .is_some_and(|v| v.eq_ignore_ascii_case("FULL"));
                if full {
                    add(
                        "binlog_row_value_options",
                        CheckStatus::Ok,
                        "PARTIAL_JSON: JSON diffs are applied to the before image".into(),
                    );
                } else {
                    add("binlog_row_value_options", CheckStatus::Fail, format!("binlog_row_value_options is PARTIAL_JSON on {addr} with binlog_row_image {}: an UPDATE's JSON columns are logged as diffs against a before image that lacks them, so the new values cannot be rebuilt: SET GLOBAL binlog_row_value_options='' (and in my.cnf) and restart the capture, or use binlog_row_image=FULL", self.var("binlog_row_image").unwrap_or("unknown")));
                }
            }
            _ => {}
        }
        let compressed = self
            .var("log_bin_compress")
            .is_some_and(|v| v.eq_ignore_ascii_case("ON"));
        if compressed {
            add("log_bin_compress", CheckStatus::Fail, format!("log_bin_compress is ON on {addr}; Sluice reads uncompressed binlogs only: SET GLOBAL log_bin_compress=OFF (and in my.cnf), then FLUSH BINARY LOGS"));
        } else {
            add("log_bin_compress", CheckStatus::Ok, "OFF".into());
        }
        let grants = self.grants.join("\n").to_ascii_uppercase();
        let all = grants.contains("ALL PRIVILEGES");
        let slave = all || grants.contains("REPLICATION SLAVE");
        let client = all
            || grants.contains("REPLICATION CLIENT")
            || grants.contains("BINLOG MONITOR")
            || grants.contains("SUPER");
        if slave && client {
            add(
                "grants",
                CheckStatus::Ok,
                "REPLICATION SLAVE and REPLICATION CLIENT".into(),
            );
        } else {
            add("grants", CheckStatus::Fail, format!("the user lacks {}{}: GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO <user> (MariaDB 10.5+: BINLOG MONITOR for REPLICATION CLIENT)", if slave { "" } else { "REPLICATION SLAVE " }, if client { "" } else { "REPLICATION CLIENT" }));
        }
        if let Some(file) = position {
            if self.binlogs.is_empty() || self.binlogs.iter().any(|f| f == file) {
                add(
                    "position",
                    CheckStatus::Ok,
                    format!("{file} is on the server"),
                );
            } else {
                let oldest = self.binlogs.first().map(String::as_str).unwrap_or("none");
                add("position", CheckStatus::Fail, format!("{file} is no longer on {addr} (purged?); the oldest binlog there is {oldest}. Changes in between are lost to this capture: take a fresh snapshot and start with source.start = \"end\", or start from \"oldest\" accepting the gap, after moving the checkpoint file away"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(vars: &[(&str, &str)], grants: &[&str]) -> ServerFacts {
        ServerFacts {
            version: "10.11.6-MariaDB".into(),
            variables: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            grants: grants.iter().map(|g| g.to_string()).collect(),
            binlogs: vec!["binlog.000002".into(), "binlog.000003".into()],
        }
    }

    #[test]
    fn every_check_names_a_fix() {
        let bad = facts(
            &[
                ("log_bin", "OFF"),
                ("binlog_format", "STATEMENT"),
                ("binlog_row_image", "MINIMAL"),
                ("binlog_row_metadata", "MINIMAL"),
                ("binlog_row_value_options", "PARTIAL_JSON"),
                ("log_bin_compress", "ON"),
            ],
            &["GRANT SELECT ON *.* TO `u`@`%`"],
        );
        let results = bad.checks("h:1", false, Some("binlog.000001"));
        let fails: Vec<&CheckResult> = results
            .iter()
            .filter(|r| r.status == CheckStatus::Fail)
            .collect();
        let names: Vec<&str> = fails.iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            [
                "log_bin",
                "binlog_format",
                "binlog_row_image",
                "binlog_row_value_options",
                "log_bin_compress",
                "grants",
                "position"
            ]
        );
        assert!(fails[1].message.contains("SET GLOBAL binlog_format=ROW"));
        assert!(fails[3]
            .message
            .contains("SET GLOBAL binlog_row_value_options=''"));
        assert!(fails[6]
            .message
            .contains("oldest binlog there is binlog.000002"));
        assert!(results
            .iter()
            .any(|r| r.name == "binlog_row_metadata" && r.status == CheckStatus::Warn));
        let good = facts(
            &[
                ("log_bin", "ON"),
                ("binlog_format", "ROW"),
                ("binlog_row_image", "FULL"),
                ("binlog_row_metadata", "FULL"),
                ("binlog_row_value_options", "PARTIAL_JSON"),
                ("log_bin_compress", "OFF"),
            ],
            &["GRANT ALL PRIVILEGES ON *.* TO `u`@`%`"],
        );
        assert!(good
            .checks("h:1", false, Some("binlog.000003"))
            .iter()
            .all(|r| r.status == CheckStatus::Ok));
        assert_eq!(good.flavor(), Flavor::MariaDb);
    }
}
