//! Checkpoints: the binlog position (and `seq`) up to which Kafka acknowledged every message.

use crate::error::CaptureError;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A position at a transaction boundary, with the `seq` of the last event before it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Binlog file to continue from.
    pub file: String,
    /// Offset in `file` of the first event not yet covered.
    pub pos: u64,
    /// MariaDB GTID state (`domain-server-seq,...`) or MySQL executed GTID of the last
    /// transaction, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
    /// `seq` of the last event covered; the next event gets a larger one.
    pub seq: i64,
    /// When the checkpoint was taken, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub saved_ms: i64,
    /// The server `file`/`pos` refer to (`SourceClient::identity`: MariaDB
    /// `mariadb:<server_id>@<hostname>:<port>`, MySQL `mysql:<server_uuid>`); none in checkpoints
    /// written before it was recorded. On another server the position means nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Commit time of the last transaction covered (its binlog event's timestamp), in
    /// milliseconds since the Unix epoch: where `migrate --by time` looks on another server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_ms: Option<i64>,
    /// Who wrote it (`checkpoint.owner`, or `<fleet>/<worker>` in a fleet); checkpoints of
    /// transactional captures carry it, so a second capture of the instance is noticed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// The embedded file store: `<dir>/<instance>.checkpoint.json`.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(dir: &Path, instance: &str) -> FileStore {
        FileStore {
            path: dir.join(format!("{instance}.checkpoint.json")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored checkpoint, `None` when there is none yet.
    pub fn load(&self) -> Result<Option<Checkpoint>, CaptureError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.io(source)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CaptureError::CheckpointFormat {
                path: self.path.display().to_string(),
                detail: e.to_string(),
            })
    }

    /// Replaces the checkpoint atomically: write a temporary file, fsync it, rename it over
    /// the old one, fsync the directory. A crash leaves the old or the new checkpoint, whole.
    pub fn save(&self, cp: &Checkpoint) -> Result<(), CaptureError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(|e| self.io(e))?;
        let bytes = serde_json::to_vec_pretty(cp).map_err(|e| self.io(std::io::Error::other(e)))?;
        f.write_all(&bytes).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            // Makes the rename durable; some filesystems refuse fsync on directories.
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn io(&self, source: std::io::Error) -> CaptureError {
        CaptureError::CheckpointIo {
            path: self.path.display().to_string(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_replaces_whole() {
        let dir = std::env::temp_dir().join(format!("sluice-cp-{}", std::process::id()));
        let store = FileStore::new(&dir, "inst");
        assert_eq!(store.load().unwrap(), None);
        let mut cp = Checkpoint {
            file: "binlog.000001".into(),
            pos: 4,
            gtid: Some("0-1-5".into()),
            seq: 77,
            saved_ms: 1,
            server: Some("mariadb:1@db1:3306".into()),
            commit_ms: Some(1_700_000_000_000),
            ..Checkpoint::default()
        };
        store.save(&cp).unwrap();
        cp.pos = 1000;
        cp.seq = 78;
        store.save(&cp).unwrap();
        assert_eq!(store.load().unwrap(), Some(cp));
        // Written before `server` and `commit_ms` were recorded.
        std::fs::write(
            store.path(),
            br#"{"file":"binlog.000002","pos":4,"gtid":"0-1-5","seq":9,"saved_ms":3}"#,
        )
        .unwrap();
        let old = store.load().unwrap().unwrap();
        assert_eq!((old.server, old.commit_ms, old.seq), (None, None, 9));
        std::fs::write(store.path(), b"{not json").unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("not a Sluice checkpoint"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
