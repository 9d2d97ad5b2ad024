//! One table to snapshot and how far it got, with the progress line the CLI prints.

use super::value::KeyValue;
use serde::{Deserialize, Serialize};

/// One table to snapshot and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The request that asked for it (`initial` for the start-up snapshot).
    pub request: String,
    pub database: String,
    pub table: String,
    /// Extra condition of a partial backfill (`--where`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    pub state: JobState,
    /// Key of the last row of the last chunk emitted; the next chunk starts after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_key: Option<Vec<KeyValue>>,
    /// Rows emitted (after the window dropped the ones the binlog carried).
    pub rows: u64,
    /// Rows the server estimated at the start (information_schema.TABLES), for the ETA.
    pub estimate: u64,
    pub chunks: u64,
    pub started_ms: i64,
    pub updated_ms: i64,
    /// Why a job failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Pending,
    Running,
    Done,
    Failed,
}

impl Job {
    pub(super) fn new(request: &str, database: &str, table: &str, filter: Option<String>) -> Job {
        Job {
            request: request.to_owned(),
            database: database.to_owned(),
            table: table.to_owned(),
            filter,
            state: JobState::Pending,
            last_key: None,
            rows: 0,
            estimate: 0,
            chunks: 0,
            started_ms: 0,
            updated_ms: 0,
            error: None,
        }
    }

    /// `database.table`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.database, self.table)
    }

    /// Rows per second since the job started.
    pub fn rate(&self) -> f64 {
        let secs = (self.updated_ms - self.started_ms) as f64 / 1000.0;
        if secs > 0.0 {
            self.rows as f64 / secs
        } else {
            0.0
        }
    }

    /// Seconds left at the current rate, from the server's row estimate.
    pub fn eta_secs(&self) -> Option<f64> {
        let rate = self.rate();
        (rate > 0.0 && self.state == JobState::Running)
            .then(|| self.estimate.saturating_sub(self.rows) as f64 / rate)
    }

    /// One line for the CLI: a bar, rows, rate, ETA.
    pub fn line(&self) -> String {
        let pct = if self.state == JobState::Done {
            100.0
        } else if self.estimate > 0 {
            (self.rows as f64 * 100.0 / self.estimate as f64).min(99.0)
        } else {
            0.0
        };
        let filled = (pct / 5.0) as usize;
        let bar = format!("{}{}", "#".repeat(filled), ".".repeat(20 - filled.min(20)));
        let eta = match self.eta_secs() {
            Some(s) => format!(" ETA {}s", s.round() as u64),
            None => String::new(),
        };
        let state = match self.state {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "FAILED",
        };
        let mut line = format!(
            "{:<32} [{bar}] {pct:5.1}% {} rows (~{} estimated), {} chunks, {:.0} rows/s{eta} {state}",
            self.name(),
            self.rows,
            self.estimate,
            self.chunks,
            self.rate()
        );
        if let Some(e) = &self.error {
            line.push_str(": ");
            line.push_str(e);
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line() {
        let mut j = Job::new("r", "d", "t", None);
        j.rows = 50;
        j.state = JobState::Running;
        j.estimate = 100;
        j.started_ms = 0;
        j.updated_ms = 10_000;
        let line = j.line();
        assert!(line.contains("[##########..........]"), "{line}");
        assert!(
            line.contains(" 50.0%") && line.contains("5 rows/s") && line.contains("ETA 10s"),
            "{line}"
        );
    }
}
