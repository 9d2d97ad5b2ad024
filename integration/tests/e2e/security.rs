//! End-to-end tests of Kafka security against the real broker's secured listeners: SASL_SSL
//! (SCRAM-SHA-512, the broker's certificate signed by the test CA) and SSL with client
//! certificates required (mTLS). `sluice-capture` and `sluice-sink` run as processes, as in
//! production: data flows through SASL_SSL with the password read from the environment, no log
//! line of either contains the password, and `check` names the setting to fix when the broker
//! refuses the password, the CA or the missing client certificate.

use mysql_async::prelude::Queryable;
use sluice_integration::capture::CaptureToml;
use sluice_integration::http_proxy::TestTls;
use sluice_integration::process::{
    assert_running, capture_binary, run_to_end, sink_binary, spawn_run, tail, terminate, Finished,
};
use sluice_integration::{
    create_topic, kafka_ca, kafka_client_cert, kafka_client_key, kafka_mtls_brokers,
    kafka_sasl_brokers, kafka_sasl_password, kafka_sasl_user, mysql, redis_url, unique_name,
};
use std::path::{Path, PathBuf};

/// The environment variable the configs read the SASL password from (`${...}`), as a
/// deployment would.
const PASSWORD_VAR: &str = "SLUICE_TEST_SECRET_KAFKA_PASSWORD";

/// librdkafka's debug contexts for the SASL exchange, the TLS setup and its config dump: if
/// either client wrote the password anywhere, it would be there.
const LIBRDKAFKA_DEBUG: &str = "security,conf";

/// The `[kafka]` table for the SASL_SSL listener, trusting the CA in `ca`.
fn sasl_kafka(ca: &Path) -> String {
    format!(
        r#"[kafka]
brokers = ["{brokers}"]
security_protocol = "sasl_ssl"
sasl_mechanism = "SCRAM-SHA-512"
sasl_username = "{user}"
sasl_password = "${{{PASSWORD_VAR}}}"
ssl_ca_location = "{ca}"
options = {{ "debug" = "{LIBRDKAFKA_DEBUG}" }}
"#,
        brokers = kafka_sasl_brokers(),
        user = kafka_sasl_user(),
        ca = ca.display(),
    )
}

/// The `[kafka]` table for the mTLS listener, with the test client's certificate or without.
fn mtls_kafka(client_certificate: bool) -> String {
    let certificate = if client_certificate {
        format!(
            "ssl_certificate_location = \"{}\"\nssl_key_location = \"{}\"\n",
            kafka_client_cert().display(),
            kafka_client_key().display()
        )
    } else {
        String::new()
    };
    format!(
        "[kafka]\nbrokers = [\"{}\"]\nsecurity_protocol = \"ssl\"\nssl_ca_location = \"{}\"\n{certificate}",
        kafka_mtls_brokers(),
        kafka_ca().display(),
    )
}

/// A capture of database `db` (instance `db`, topic `sluice.<db>`) from `start`.
pub(crate) fn capture_toml(db: &str, kafka: &str, state: &Path, start: &str) -> String {
    CaptureToml {
        start: Some(start.to_owned()),
        kafka: kafka.to_owned(),
        checkpoint_interval_ms: Some(100),
        metrics: true,
        ..CaptureToml::new(db, state)
    }
    .text()
}

/// A sink of `sluice.<db>` that writes each row of `<db>.t` as JSON to the Redis key
/// `<db>:t:<id>`.
pub(crate) fn sink_toml(db: &str, kafka: &str) -> String {
    format!(
        r#"{kafka}[consumer]
group_id = "{db}_sink"
topics = ["sluice.{db}"]
commit_interval_ms = 100
[metrics]
listen = "127.0.0.1:0"
[targets.cache]
type = "redis"
url = "{redis}"
[[rules]]
name = "copy"
target = "cache"
match = {{ tables = ["{db}.t"] }}
[rules.redis]
keys = ["{db}:t:{{id}}"]
mode = "refresh"
"#,
        redis = redis_url(),
    )
}

/// A new directory for one test's configs, logs and state.
fn test_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name(prefix));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `text` to `dir/file`; returns the path.
fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

/// `<binary> check --config <config>` with `env`, to its end.
async fn check(binary: &Path, config: &Path, env: &[(&str, &str)]) -> Finished {
    run_to_end(
        binary,
        ["check".as_ref(), "--config".as_ref(), config.as_os_str()],
        env,
        120,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_and_sink_through_sasl_ssl_never_log_the_password() {
    let password = kafka_sasl_password();
    let db = unique_name("sec_flow");
    let mut c = mysql::conn().await;
    mysql::create_database(
        &mut c,
        &db,
        &["t (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL)"],
    )
    .await;
    // The cluster is one: a topic made through the plaintext listener is the one the secured
    // listeners serve.
    create_topic(&format!("sluice.{db}"), 3).await.unwrap();
    let (file, pos) = mysql::binlog_end(&mut c).await;

    let dir = test_dir("security_flow");
    let kafka = sasl_kafka(&kafka_ca());
    let capture_config = write(
        &dir,
        "capture.toml",
        &capture_toml(&db, &kafka, &dir, &format!("{file}:{pos}")),
    );
    let sink_config = write(&dir, "sink.toml", &sink_toml(&db, &kafka));
    assert!(
        !std::fs::read_to_string(&capture_config)
            .unwrap()
            .contains(&password),
        "the config must read the password from the environment"
    );
    // Everything at debug, so a password in any log line would show.
    let env = [(PASSWORD_VAR, password.as_str()), ("RUST_LOG", "debug")];
    let capture_log = dir.join("capture.log");
    let sink_log = dir.join("sink.log");
    let mut capture = spawn_run(&capture_binary(), &capture_config, &[], &env, &capture_log);
    let mut sink = spawn_run(&sink_binary(), &sink_config, &[], &env, &sink_log);

    three_rows_reach_redis(
        &mut c,
        &db,
        (&mut capture, &capture_log),
        (&mut sink, &sink_log),
        "the SASL_SSL listener",
        120,
    )
    .await;

    for (log, name) in [(&capture_log, "sluice-capture"), (&sink_log, "sluice-sink")] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(
            text.lines().filter(|l| l.contains(" DEBUG ")).count() > 10,
            "{name} did not log at debug level, so the test proves nothing; its log:\n{}",
            tail(log, 20)
        );
        let leaks: Vec<&str> = text.lines().filter(|l| l.contains(&password)).collect();
        assert!(
            leaks.is_empty(),
            "{name} logged the Kafka password ({} lines), e.g.:\n{}",
            leaks.len(),
            leaks[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_a_wrong_password_names_sasl_password() {
    let db = unique_name("sec_pw");
    let dir = test_dir("security_password");
    let kafka = sasl_kafka(&kafka_ca());
    let wrong = format!("not-the-password-{db}");
    let env = [(PASSWORD_VAR, wrong.as_str())];
    let want = format!(
        "Kafka at {} rejected the SASL login of user {} (SCRAM-SHA-512): check kafka.sasl_username and kafka.sasl_password",
        kafka_sasl_brokers(),
        kafka_sasl_user()
    );
    checks_fail(&db, &dir, "", &kafka, &env, &[&want], Some(&wrong)).await;
}

/// `check` of both binaries, with configs for `kafka` (named `capture<suffix>.toml` and
/// `sink<suffix>.toml` in `dir`), exits non-zero and says every text of `want`, and never
/// `secret`.
async fn checks_fail(
    db: &str,
    dir: &Path,
    suffix: &str,
    kafka: &str,
    env: &[(&str, &str)],
    want: &[&str],
    secret: Option<&str>,
) {
    let capture = write(
        dir,
        &format!("capture{suffix}.toml"),
        &capture_toml(db, kafka, dir, "end"),
    );
    let sink = write(dir, &format!("sink{suffix}.toml"), &sink_toml(db, kafka));
    for (binary, config) in [(capture_binary(), &capture), (sink_binary(), &sink)] {
        let out = check(&binary, config, env).await;
        let text = out.text();
        assert!(
            !out.success() && want.iter().all(|w| text.contains(w)),
            "{} check: {text}",
            binary.display()
        );
        if let Some(secret) = secret {
            assert!(!text.contains(secret), "the password is in: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_an_untrusted_ca_names_ssl_ca_location() {
    let db = unique_name("sec_ca");
    let dir = test_dir("security_ca");
    // A CA of its own, which signed nothing the broker has.
    let other_ca = write(&dir, "other-ca.pem", &TestTls::new().unwrap().ca_pem);
    let kafka = sasl_kafka(&other_ca);
    let password = kafka_sasl_password();
    let env = [(PASSWORD_VAR, password.as_str())];
    let want = format!(
        "the TLS certificate of {} is not signed by a CA in kafka.ssl_ca_location ({}): ",
        kafka_sasl_brokers(),
        other_ca.display()
    );
    let fix = "point ssl_ca_location at the CA that signed the brokers' certificates";
    checks_fail(&db, &dir, "", &kafka, &env, &[&want, fix], Some(&password)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_on_the_mtls_listener_needs_the_client_certificate() {
    let db = unique_name("sec_mtls");
    create_topic(&format!("sluice.{db}"), 2).await.unwrap();
    let dir = test_dir("security_mtls");

    let want = format!(
        "Kafka at {} requires a client certificate (TLS alert: ",
        kafka_mtls_brokers()
    );
    let fix = "set kafka.ssl_certificate_location and kafka.ssl_key_location";
    checks_fail(
        &db,
        &dir,
        "-without",
        &mtls_kafka(false),
        &[],
        &[&want, fix],
        None,
    )
    .await;

    let with = mtls_kafka(true);
    let capture = write(
        &dir,
        "capture-with.toml",
        &capture_toml(&db, &with, &dir, "end"),
    );
    let sink = write(&dir, "sink-with.toml", &sink_toml(&db, &with));
    let out = check(&capture_binary(), &capture, &[]).await;
    assert!(
        out.success()
            && out
                .stdout
                .contains(&format!("kafka: topic sluice.{db} has 2 partitions")),
        "sluice-capture check with the client certificate: {}",
        out.text()
    );
    let out = check(&sink_binary(), &sink, &[]).await;
    assert!(
        out.success() && out.stdout.contains("kafka: ok (1 topics, 2 partitions)"),
        "sluice-sink check with the client certificate: {}",
        out.text()
    );
}

/// Inserts three rows into `db.t (id, name)` and waits (up to `secs`) until each is in Redis as
/// `<db>:t:<id>` through the running capture and sink (which must keep running), then stops both
/// with SIGTERM. `listener` names how they reach Kafka, for the message.
pub(crate) async fn three_rows_reach_redis(
    c: &mut mysql_async::Conn,
    db: &str,
    (capture, capture_log): (&mut tokio::process::Child, &std::path::Path),
    (sink, sink_log): (&mut tokio::process::Child, &std::path::Path),
    listener: &str,
    secs: u64,
) {
    let rows = [(1, "ada"), (2, "grace"), (3, "barbara")];
    for (id, name) in rows {
        c.exec_drop(
            format!("INSERT INTO {db}.t VALUES (?, ?)"),
            (id, name.to_owned()),
        )
        .await
        .unwrap();
    }
    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    sluice_integration::wait::until_ok(
        secs,
        &format!("every row in Redis, through capture and sink on {listener}"),
        async || {
            assert_running(capture, "sluice-capture", capture_log);
            assert_running(sink, "sluice-sink", sink_log);
            for (id, name) in rows {
                let key = format!("{db}:t:{id}");
                let value: Option<String> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut redis)
                    .await
                    .map_err(|e| format!("GET {key}: {e}"))?;
                let row: serde_json::Value = match value {
                    Some(v) => serde_json::from_str(&v).map_err(|e| format!("{key}: {e}: {v}"))?,
                    None => return Err(format!("{key} is not there yet")),
                };
                if row["name"] != name {
                    return Err(format!("{key} = {row}"));
                }
            }
            Ok(())
        },
    )
    .await;
    for (child, name) in [(capture, "sluice-capture"), (sink, "sluice-sink")] {
        assert!(
            terminate(child, 30).await.is_some(),
            "{name} did not stop within 30 s of SIGTERM"
        );
    }
}
