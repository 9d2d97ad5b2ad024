//! End-to-end tests: the capture against private MariaDB servers with the settings the shared
//! one must not have (binlog off, STATEMENT format, MINIMAL images and metadata, compressed
//! binlogs). Each check gives the documented message with its fix (docs/capture.md), and without
//! `binlog_row_metadata=FULL` the capture names columns from information_schema and stops with a
//! diagnosis instead of mis-decoding when the binlog and the schema disagree.

use mysql_async::prelude::Queryable;
use serde_json::Value;
use sluice_capture::config::{CaptureConfig, StartAt};
use sluice_capture::decoder::Output;
use sluice_capture::source::{CheckResult, CheckStatus};
use sluice_integration::capture::CaptureToml;
use sluice_integration::mariadb::PrivateMariaDb;
use sluice_integration::mysql;

fn config(url: &str, db: &str) -> CaptureConfig {
    let state = std::env::temp_dir().join(format!("sluice-capture-test-{db}"));
    CaptureToml {
        url: url.to_owned(),
        ..CaptureToml::new(db, &state)
    }
    .parse()
}

fn find<'a>(checks: &'a [CheckResult], name: &str) -> &'a CheckResult {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name} in {checks:?}"))
}

fn assert_check(checks: &[CheckResult], name: &str, status: CheckStatus, fix: &str) {
    let c = find(checks, name);
    assert_eq!(c.status, status, "{c}");
    assert!(
        c.message.contains(fix),
        "{name}: {:?} lacks {fix:?}",
        c.message
    );
}

#[tokio::test]
async fn every_startup_check_fails_on_a_misconfigured_server_with_its_fix() {
    let server = PrivateMariaDb::start(
        "mdb_bad",
        &[
            "--server-id=7",
            "--log-bin=binlog",
            "--binlog-format=STATEMENT",
            "--binlog-row-image=MINIMAL",
            "--binlog-row-metadata=MINIMAL",
            "--log-bin-compress=ON",
        ],
    )
    .await
    .unwrap();
    let cfg = config(&server.url(), "chk_bad");
    let checks = sluice_capture::run::check(&cfg).await.unwrap();
    assert_check(&checks, "log_bin", CheckStatus::Ok, "ON");
    assert_check(
        &checks,
        "binlog_format",
        CheckStatus::Fail,
        "binlog_format is STATEMENT on 127.0.0.1",
    );
    assert_check(
        &checks,
        "binlog_format",
        CheckStatus::Fail,
        "SET GLOBAL binlog_format=ROW (and in my.cnf)",
    );
    assert_check(
        &checks,
        "binlog_row_image",
        CheckStatus::Fail,
        "SET GLOBAL binlog_row_image=FULL (and in my.cnf), or set source.allow_partial_row_image = true",
    );
    assert_check(
        &checks,
        "binlog_row_metadata",
        CheckStatus::Warn,
        "column names come from information_schema instead",
    );
    assert_check(
        &checks,
        "log_bin_compress",
        CheckStatus::Fail,
        "SET GLOBAL log_bin_compress=OFF (and in my.cnf), then FLUSH BINARY LOGS",
    );

    // `run` and `tail` refuse to start on a failed check, naming it.
    let err = sluice_capture::run::collect(&cfg, StartAt::End)
        .await
        .expect_err("a STATEMENT-format server must be refused");
    assert!(err.to_string().contains("binlog_format"), "{err}");

    // The opt-in turns the partial-image failure into a warning.
    let mut partial = cfg.clone();
    partial.source.allow_partial_row_image = true;
    let checks = sluice_capture::run::check(&partial).await.unwrap();
    assert_check(
        &checks,
        "binlog_row_image",
        CheckStatus::Warn,
        "events carry only the logged columns",
    );

    // Fixed at run time, as the messages say: every check passes.
    let mut root = server.root().await.unwrap();
    for sql in [
        "SET GLOBAL binlog_format=ROW",
        "SET GLOBAL binlog_row_image=FULL",
        "SET GLOBAL binlog_row_metadata=FULL",
        "SET GLOBAL log_bin_compress=OFF",
        "FLUSH BINARY LOGS",
    ] {
        root.query_drop(sql).await.unwrap();
    }
    let checks = sluice_capture::run::check(&cfg).await.unwrap();
    for name in [
        "log_bin",
        "binlog_format",
        "binlog_row_image",
        "binlog_row_metadata",
        "log_bin_compress",
        "grants",
    ] {
        assert_eq!(find(&checks, name).status, CheckStatus::Ok, "{name}");
    }
}

#[tokio::test]
async fn a_server_without_binlog_is_refused_with_the_fix() {
    let server = PrivateMariaDb::start("mdb_nobin", &["--server-id=8"])
        .await
        .unwrap();
    let cfg = config(&server.url(), "chk_nobin");
    let checks = sluice_capture::run::check(&cfg).await.unwrap();
    assert_check(
        &checks,
        "log_bin",
        CheckStatus::Fail,
        "add log_bin (and server_id) to my.cnf and restart the server",
    );
}

fn rows(outputs: Vec<Output>, db: &str) -> Vec<String> {
    outputs
        .into_iter()
        .filter_map(|o| match o {
            Output::Event(e) if e.database == db => {
                Some(format!("{} {}", e.kind, Value::Object(e.data)))
            }
            _ => None,
        })
        .collect()
}

async fn end(c: &mut mysql_async::Conn) -> StartAt {
    let (file, pos) = mysql::binlog_end(c).await;
    StartAt::File { file, pos }
}

#[tokio::test]
async fn minimal_metadata_names_columns_from_information_schema_and_stops_on_a_mismatch() {
    let server = PrivateMariaDb::start(
        "mdb_minmeta",
        &[
            "--server-id=9",
            "--log-bin=binlog",
            "--binlog-format=ROW",
            "--binlog-row-image=FULL",
            "--binlog-row-metadata=MINIMAL",
        ],
    )
    .await
    .unwrap();
    let db = "minmeta";
    let cfg = config(&server.url(), db);
    let mut c = mysql::conn_to(&server.url()).await;
    mysql::create_database(
        &mut c,
        db,
        &["t (id INT PRIMARY KEY, a VARCHAR(10), b INT)"],
    )
    .await;

    // Without the metadata in the binlog, names (and the key) come from information_schema.
    let before = end(&mut c).await;
    c.query_drop(format!("INSERT INTO {db}.t VALUES (1, 'x', 10)"))
        .await
        .unwrap();
    assert_eq!(
        rows(
            sluice_capture::run::collect(&cfg, before.clone())
                .await
                .unwrap(),
            db
        ),
        [r#"INSERT {"id":1,"a":"x","b":10}"#]
    );

    // After a schema change, rows written after it decode with the new columns.
    let after = end(&mut c).await;
    mysql::exec_all(
        &mut c,
        [
            format!("ALTER TABLE {db}.t ADD COLUMN c DECIMAL(6,2) AFTER a"),
            format!("INSERT INTO {db}.t VALUES (2, 'y', 1.25, 20)"),
        ],
    )
    .await;
    assert_eq!(
        rows(sluice_capture::run::collect(&cfg, after).await.unwrap(), db),
        [r#"INSERT {"id":2,"a":"y","c":"1.25","b":20}"#]
    );

    // Re-reading the row written before the change: the binlog has 3 columns, the schema 4.
    // The capture stops with the diagnosis and the fix rather than guess the names.
    let err = sluice_capture::run::collect(&cfg, before)
        .await
        .expect_err("a column-count mismatch must stop the capture");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "{db}.t: the binlog has 3 columns but information_schema has 4"
        )) && msg.contains("SET GLOBAL binlog_row_metadata=FULL"),
        "{msg}"
    );
}
