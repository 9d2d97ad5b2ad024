//! End-to-end tests: capture. The capture runs in-process through its library API
//! (`sluice_capture::run`), against the local MariaDB and Kafka; a crash is an aborted task.
//!
//! This file holds the config and small helpers; the tests are in `decoding` (every column type,
//! DDL mid-stream), `startup` (the checks and a missing topic), `recovery` (crashes, restarts and
//! killed connections lose nothing), `dump_threads` (a stopped stream leaves none behind) and
//! `migrate` (moving an instance to a promoted replica or another server, as the binaries).

mod decoding;
mod dump_threads;
mod migrate;
mod recovery;
mod startup;

use sluice_capture::config::{CaptureConfig, StartAt};
use sluice_capture::decoder::Output;
use sluice_event::ChangeEvent;
use sluice_integration::capture::CaptureToml;
use sluice_integration::mysql::{self};
use std::path::{Path, PathBuf};

/// A capture of the tables of database `instance` only (other tests write to the same server).
fn config(instance: &str, state: &Path) -> CaptureConfig {
    CaptureToml {
        checkpoint_interval_ms: Some(100),
        ..CaptureToml::new(instance, state)
    }
    .parse()
}

fn state_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sluice-capture-test-{name}"))
}

async fn end_position(c: &mut mysql_async::Conn) -> StartAt {
    let (file, pos) = mysql::binlog_end(c).await;
    StartAt::File { file, pos }
}

fn events_of(outputs: Vec<Output>, db: &str) -> Vec<ChangeEvent> {
    outputs
        .into_iter()
        .filter_map(|o| match o {
            Output::Event(e) if e.database == db => Some(*e),
            _ => None,
        })
        .collect()
}
