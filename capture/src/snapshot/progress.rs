//! Snapshot progress on disk: job lists saved next to the checkpoint, gated by its `seq`.

use super::job::Job;
use crate::checkpoint::FileStore;
use crate::error::CaptureError;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The jobs as of one point of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    /// The stream's `seq` when these jobs became true: once a checkpoint covers it, the
    /// chunks it counts are acknowledged by Kafka.
    seq: i64,
    jobs: Vec<Job>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ProgressFile {
    entries: Vec<Entry>,
}

/// `<checkpoint dir>/<instance>.snapshot.json`: recent job lists, each with the `seq` from which
/// it holds. On start the newest one the checkpoint covers wins, so progress never runs
/// ahead of what Kafka acknowledged.
#[derive(Debug, Clone)]
pub struct ProgressStore {
    path: PathBuf,
    checkpoints: FileStore,
}

impl ProgressStore {
    pub fn new(dir: &Path, instance: &str) -> ProgressStore {
        ProgressStore {
            path: dir.join(format!("{instance}.snapshot.json")),
            checkpoints: FileStore::new(dir, instance),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<Option<ProgressFile>, CaptureError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                CaptureError::CheckpointFormat {
                    path: self.path.display().to_string(),
                    detail: e.to_string(),
                }
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(self.io(source)),
        }
    }

    /// Whether any snapshot was ever planned by this instance.
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// The jobs the checkpoint with `seq` covers (none yet: only the entries at seq 0).
    pub fn confirmed(&self, seq: i64) -> Result<Vec<Job>, CaptureError> {
        let file = self.read()?.unwrap_or_default();
        Ok(pick(&file.entries, seq)
            .map(|e| e.jobs.clone())
            .unwrap_or_default())
    }

    /// Forgets entries a checkpoint at `seq` does not cover: they belong to a run that stopped
    /// before Kafka acknowledged them, and the `seq`s of this run may be lower.
    pub fn reset_to(&self, seq: i64) -> Result<Vec<Job>, CaptureError> {
        let jobs = self.confirmed(seq)?;
        if self.exists() {
            let file = ProgressFile {
                entries: vec![Entry {
                    seq: 0,
                    jobs: jobs.clone(),
                }],
            };
            self.write(&file)?;
        }
        Ok(jobs)
    }

    /// The newest jobs written, acknowledged or not (for `snapshot --status`).
    pub fn latest(&self) -> Result<Vec<Job>, CaptureError> {
        let file = self.read()?.unwrap_or_default();
        Ok(file
            .entries
            .last()
            .map(|e| e.jobs.clone())
            .unwrap_or_default())
    }

    /// Records `jobs` as of stream `seq`, forgetting entries the checkpoint made obsolete.
    pub fn save(&self, seq: i64, jobs: &[Job]) -> Result<(), CaptureError> {
        let acked = self.checkpoints.load()?.map(|c| c.seq).unwrap_or(0);
        let mut file = self.read().unwrap_or_default().unwrap_or_default();
        file.entries = prune(std::mem::take(&mut file.entries), acked);
        file.entries.push(Entry {
            seq,
            jobs: jobs.to_vec(),
        });
        self.write(&file)
    }

    fn write(&self, file: &ProgressFile) -> Result<(), CaptureError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        let tmp = self.path.with_extension("json.tmp");
        let bytes =
            serde_json::to_vec_pretty(file).map_err(|e| self.io(std::io::Error::other(e)))?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| self.io(e))?;
        f.write_all(&bytes).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))
    }

    fn io(&self, source: std::io::Error) -> CaptureError {
        CaptureError::CheckpointIo {
            path: self.path.display().to_string(),
            source,
        }
    }
}

/// The newest entry at or before `seq`.
fn pick(entries: &[Entry], seq: i64) -> Option<&Entry> {
    entries.iter().rev().find(|e| e.seq <= seq)
}

/// Keeps the newest entry the checkpoint covers and everything after it.
fn prune(entries: Vec<Entry>, acked: i64) -> Vec<Entry> {
    let keep_from = entries.iter().rposition(|e| e.seq <= acked).unwrap_or(0);
    entries.into_iter().skip(keep_from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(rows: u64) -> Job {
        let mut j = Job::new("r", "d", "t", None);
        j.rows = rows;
        j
    }

    #[test]
    fn progress_never_runs_ahead_of_the_checkpoint() {
        let entries = vec![
            Entry {
                seq: 0,
                jobs: vec![job(0)],
            },
            Entry {
                seq: 100,
                jobs: vec![job(10)],
            },
            Entry {
                seq: 200,
                jobs: vec![job(20)],
            },
        ];
        // (checkpoint seq, rows of the picked entry)
        for (seq, want) in [
            (0, Some(0)),
            (99, Some(0)),
            (100, Some(10)),
            (250, Some(20)),
            (-1, None),
        ] {
            assert_eq!(
                pick(&entries, seq).map(|e| e.jobs[0].rows),
                want,
                "seq {seq}"
            );
        }
        let kept: Vec<i64> = prune(entries.clone(), 150).iter().map(|e| e.seq).collect();
        assert_eq!(kept, vec![100, 200]);
        let kept: Vec<i64> = prune(entries, -5).iter().map(|e| e.seq).collect();
        assert_eq!(kept, vec![0, 100, 200]);
    }

    #[test]
    fn progress_file_round_trip_gated_by_checkpoint() {
        let dir = std::env::temp_dir().join(format!("sluice-snap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = ProgressStore::new(&dir, "inst");
        assert!(store.confirmed(0).unwrap().is_empty());
        store.save(0, &[job(0)]).unwrap();
        store.save(500, &[job(5)]).unwrap();
        assert_eq!(store.confirmed(0).unwrap()[0].rows, 0);
        assert_eq!(store.confirmed(499).unwrap()[0].rows, 0);
        assert_eq!(store.confirmed(500).unwrap()[0].rows, 5);
        assert_eq!(store.latest().unwrap()[0].rows, 5);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
