//! End-to-end tests of TLS to MySQL/MariaDB: a private MariaDB serves a certificate made by
//! `openssl` in the test and refuses plaintext (`--require-secure-transport=ON`). The capture
//! reads its binlog and the sink writes its replica tables with `tls = "verify_identity"` and the
//! test CA in `ca_file`, both as processes; `check` of either names the setting to fix when the CA
//! is not the one that signed the server's certificate, when TLS is off, or when the server
//! offers none.

use mysql_async::prelude::Queryable;
use sluice_integration::capture::CaptureToml;
use sluice_integration::mariadb::PrivateMariaDb;
use sluice_integration::process::{
    assert_running, capture_binary, run_to_end, sink_binary, spawn_run, terminate, Finished,
};
use sluice_integration::server_tls::ServerCerts;
use sluice_integration::{create_topic, kafka_brokers, unique_name};
use std::path::{Path, PathBuf};

/// A private MariaDB with its binlog on, serving `certs` and refusing plaintext over TCP (the
/// root connection of the test goes over the socket, which counts as secure).
async fn tls_server(name: &str, certs: &ServerCerts) -> PrivateMariaDb {
    let mut args = vec![
        "--server-id=31".to_owned(),
        "--log-bin=binlog".to_owned(),
        "--binlog-format=ROW".to_owned(),
        "--binlog-row-image=FULL".to_owned(),
        "--binlog-row-metadata=FULL".to_owned(),
        "--require-secure-transport=ON".to_owned(),
    ];
    args.extend(certs.mariadb_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    PrivateMariaDb::start(name, &args).await.unwrap()
}

/// The `tls` and `ca_file` lines of a `[source]` or `[targets.*]` table.
fn tls_lines(mode: &str, ca: Option<&Path>) -> String {
    let ca = ca.map_or(String::new(), |p| {
        format!("ca_file = \"{}\"\n", p.display())
    });
    format!("tls = \"{mode}\"\n{ca}")
}

/// A capture of database `db` on `url`, with `tls` lines in its `[source]`.
fn capture_toml(db: &str, url: &str, state: &Path, tls: &str) -> String {
    let text = CaptureToml {
        url: url.to_owned(),
        start: Some("oldest".to_owned()),
        checkpoint_interval_ms: Some(100),
        metrics: true,
        ..CaptureToml::new(db, state)
    }
    .text();
    text.replacen("[source]\n", &format!("[source]\n{tls}"), 1)
}

/// A sink of `sluice.<db>` that copies `<db>.t` into `<replica>.t` on `url`, with `tls` lines
/// in the target.
fn sink_toml(db: &str, url: &str, replica: &str, tls: &str) -> String {
    format!(
        r#"[kafka]
brokers = ["{brokers}"]
[consumer]
group_id = "{db}_sink"
topics = ["sluice.{db}"]
commit_interval_ms = 100
[metrics]
listen = "127.0.0.1:0"
[targets.replica]
type = "mysql"
url = "{url}/{replica}"
{tls}[[rules]]
name = "copy"
target = "replica"
match = {{ tables = ["{db}.t"] }}
[rules.mysql]
table = "t"
"#,
        brokers = kafka_brokers(),
    )
}

fn test_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name(prefix));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

async fn run(binary: &Path, args: &[&str], config: &Path) -> Finished {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    all.extend(["--config".as_ref(), config.as_os_str()]);
    run_to_end(binary, all, &[], 120).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_and_replica_over_verified_tls() {
    let dir = test_dir("mysql_tls_flow");
    let certs = ServerCerts::make(&dir, "mariadb").unwrap();
    let server = tls_server("mdb_tls", &certs).await;
    let db = unique_name("tls_src");
    let replica = unique_name("tls_dst");
    let mut root = server.root().await.unwrap();
    let table = "t (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL)";
    sluice_integration::mysql::create_database(&mut root, &db, &[table]).await;
    sluice_integration::mysql::create_database(&mut root, &replica, &[table]).await;
    create_topic(&format!("sluice.{db}"), 2).await.unwrap();

    let tls = tls_lines("verify_identity", Some(&certs.ca));
    let capture = write(
        &dir,
        "capture.toml",
        &capture_toml(&db, &server.url(), &dir, &tls),
    );
    let sink = write(
        &dir,
        "sink.toml",
        &sink_toml(&db, &server.url(), &replica, &tls),
    );
    // The server refuses plaintext, so every check that passes went over verified TLS.
    for (binary, config) in [(capture_binary(), &capture), (sink_binary(), &sink)] {
        let out = run(&binary, &["check"], config).await;
        assert!(
            out.success(),
            "{} check over TLS: {}",
            binary.display(),
            out.text()
        );
    }

    let (capture_log, sink_log) = (dir.join("capture.log"), dir.join("sink.log"));
    let mut capture_run = spawn_run(&capture_binary(), &capture, &[], &[], &capture_log);
    let mut sink_run = spawn_run(&sink_binary(), &sink, &[], &[], &sink_log);
    for id in 1..=20 {
        root.exec_drop(
            format!("INSERT INTO {db}.t VALUES (?, ?)"),
            (id, format!("row {id}")),
        )
        .await
        .unwrap();
    }
    root.query_drop(format!("UPDATE {db}.t SET name = 'changed' WHERE id <= 5"))
        .await
        .unwrap();
    root.query_drop(format!("DELETE FROM {db}.t WHERE id > 15"))
        .await
        .unwrap();
    sluice_integration::wait::until_ok(
        120,
        "the replica table equal to the source, over TLS both ways",
        async || {
            assert_running(&mut capture_run, "sluice-capture", &capture_log);
            assert_running(&mut sink_run, "sluice-sink", &sink_log);
            let rows = |d: &str| format!("SELECT id, name FROM {d}.t ORDER BY id");
            let want: Vec<(i32, String)> =
                root.query(rows(&db)).await.map_err(|e| e.to_string())?;
            let got: Vec<(i32, String)> = root
                .query(rows(&replica))
                .await
                .map_err(|e| e.to_string())?;
            if got == want {
                Ok(())
            } else {
                Err(format!(
                    "{} rows in the replica, {} in the source",
                    got.len(),
                    want.len()
                ))
            }
        },
    )
    .await;
    let out = run(&sink_binary(), &["verify", "--rule", "copy"], &sink).await;
    assert!(out.success(), "sluice-sink verify over TLS: {}", out.text());
    for (child, name) in [
        (&mut capture_run, "sluice-capture"),
        (&mut sink_run, "sluice-sink"),
    ] {
        assert!(
            terminate(child, 30).await.is_some(),
            "{name} did not stop within 30 s of SIGTERM"
        );
    }
    // The capture's binlog connection was one of the server's TLS sessions.
    let sessions: Option<(String, String)> = root
        .query_first("SHOW GLOBAL STATUS LIKE 'Ssl_accepts'")
        .await
        .unwrap();
    let accepts: u64 = sessions.map_or(0, |(_, v)| v.parse().unwrap_or(0));
    assert!(accepts >= 4, "the server accepted {accepts} TLS sessions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_tls_setting_to_fix() {
    let dir = test_dir("mysql_tls_fail");
    let certs = ServerCerts::make(&dir, "mariadb").unwrap();
    let other = ServerCerts::make(&dir, "other").unwrap();
    let server = tls_server("mdb_tls_fail", &certs).await;
    let db = unique_name("tls_fail");
    let addr = server.url().rsplit_once('@').unwrap().1.to_owned();
    // The sink checks its topic before its targets.
    create_topic(&format!("sluice.{db}"), 1).await.unwrap();

    // A CA that did not sign the server's certificate.
    let wrong_ca = tls_lines("verify_identity", Some(&other.ca));
    let capture = write(
        &dir,
        "capture-ca.toml",
        &capture_toml(&db, &server.url(), &dir, &wrong_ca),
    );
    let out = run(&capture_binary(), &["check"], &capture).await;
    let want = format!(
        "the TLS certificate of MySQL/MariaDB at {addr} is not signed by the CA in source.ca_file ({}): point source.ca_file at the CA that signed the server's certificate",
        other.ca.display()
    );
    assert!(
        !out.success() && out.text().contains(&want),
        "{}",
        out.text()
    );
    let sink = write(
        &dir,
        "sink-ca.toml",
        &sink_toml(&db, &server.url(), "mysql", &wrong_ca),
    );
    let out = run(&sink_binary(), &["check"], &sink).await;
    let want = format!(
        "the TLS certificate of mysql://{addr}/mysql is not signed by the CA in targets.replica.ca_file ({})",
        other.ca.display()
    );
    assert!(
        !out.success() && out.text().contains(&want),
        "{}",
        out.text()
    );

    // Plaintext to a server that requires TLS.
    let plain = tls_lines("disabled", None);
    let capture = write(
        &dir,
        "capture-plain.toml",
        &capture_toml(&db, &server.url(), &dir, &plain),
    );
    let out = run(&capture_binary(), &["check"], &capture).await;
    // MariaDB answers a plaintext login under require_secure_transport with "access denied".
    let want = [
        format!("MySQL/MariaDB at {addr}: Access denied for user 'sluice'@'127.0.0.1' (using password: YES): check the user and password in source.url; a server that requires TLS (require_secure_transport) refuses plaintext logins with this error too"),
        "(source.tls is \"disabled\"): then set source.tls = \"verify_identity\"".to_owned(),
    ];
    assert!(
        !out.success() && want.iter().all(|w| out.text().contains(w)),
        "{}",
        out.text()
    );
    let sink = write(
        &dir,
        "sink-plain.toml",
        &sink_toml(&db, &server.url(), "mysql", &plain),
    );
    let out = run(&sink_binary(), &["check"], &sink).await;
    let want = [
        format!("mysql://{addr}/mysql: "),
        "Access denied for user 'sluice'@'127.0.0.1' (using password: YES): check the user and password in targets.replica.url; a server that requires TLS (require_secure_transport) refuses plaintext logins with this error too, and targets.replica.tls is \"disabled\": then set targets.replica.tls = \"verify_identity\"".to_owned(),
    ];
    assert!(
        !out.success() && want.iter().all(|w| out.text().contains(w)),
        "{}",
        out.text()
    );

    // TLS required of the shared server, which offers none.
    let shared = sluice_integration::mysql_url();
    let capture = write(
        &dir,
        "capture-required.toml",
        &capture_toml(&db, &shared, &dir, &tls_lines("required", None)),
    );
    let out = run(&capture_binary(), &["check"], &capture).await;
    assert!(
        !out.success()
            && out
                .text()
                .contains("the server does not offer TLS, but source.tls is \"required\""),
        "{}",
        out.text()
    );
}
