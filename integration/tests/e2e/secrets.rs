//! End-to-end: no secret reaches any output. Every secret a deployment gives Sluice is set to a
//! marker value through `${ENV}` interpolation: the source user's password in `source.url`, the
//! replica user's password, the Kafka SASL password (the SASL_SSL listener), a Redis ACL user's
//! password, OpenSearch basic-auth credentials, the capture's masking `hash` key, webhook URLs
//! whose path is a token, and the `--source-url` of `verify`. Every command of both binaries runs
//! with our crates logging at trace and everything else at debug (librdkafka's `security,conf`
//! too); the test then looks for the markers in stdout, stderr, `/metrics`, `/status.json`,
//! `/alerts` and every file the binaries wrote. The error paths run too: wrong passwords for the
//! source, the replica and Redis, and a webhook that cannot be reached.

use mysql_async::prelude::Queryable;
use sluice_integration::process::{capture_binary, run_to_end, sink_binary, terminate, Finished};
use sluice_integration::{
    create_topic, es_url, free_port, kafka_ca, kafka_sasl_brokers, kafka_sasl_password,
    kafka_sasl_user, mysql, mysql_url, redis_url, unique_name, wait,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::{Child, Command};

/// Our crates at trace, every library at debug.
const RUST_LOG: &str = "debug,sluice_capture=trace,sluice_sinks=trace,sluice_config=trace,sluice_ops=trace,sluice_rules=trace,sluice_event=trace";

/// The secrets of one test: environment variable -> marker value.
struct Secrets {
    env: BTreeMap<&'static str, String>,
}

impl Secrets {
    fn markers(&self) -> Vec<(&'static str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    fn env(&self) -> Vec<(&str, &str)> {
        let mut env: Vec<(&str, &str)> = self.markers();
        env.push(("RUST_LOG", RUST_LOG));
        env
    }

    /// Panics naming the secret and the place when any marker is in `text`.
    fn assert_absent(&self, place: &str, text: &str) {
        for (var, marker) in self.markers() {
            if let Some(line) = text.lines().find(|l| l.contains(marker)) {
                panic!("the secret of ${{{var}}} is in {place}:\n{line}");
            }
        }
    }
}

fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

/// `binary args... --config config` to its end, with the secrets' environment.
async fn command(binary: &Path, args: &[&str], config: &Path, env: &[(&str, &str)]) -> Finished {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    all.extend(["--config".as_ref(), config.as_os_str()]);
    run_to_end(binary, all, env, 120).await
}

/// `binary run --config config`, stdout and stderr into files of `dir`.
fn spawn(binary: &Path, config: &Path, env: &[(&str, &str)], dir: &Path, name: &str) -> Child {
    let out = std::fs::File::create(dir.join(format!("{name}.stdout"))).unwrap();
    let err = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    Command::new(binary)
        .args(["run", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .stdout(out)
        .stderr(err)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The bodies of the status endpoints on `port`.
async fn endpoints(port: u16) -> Vec<(String, String)> {
    let mut bodies = Vec::new();
    for path in ["/metrics", "/status.json", "/alerts", "/"] {
        let url = format!("http://127.0.0.1:{port}{path}");
        let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
        bodies.push((url, body));
    }
    bodies
}

/// Every file under `dir` but the configs (which hold `${VAR}` references, checked apart).
fn written_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            written_files(&path, out);
        } else if path.extension().is_none_or(|e| e != "toml") {
            out.push(path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_any_output_of_any_command() {
    let db = unique_name("sec_all");
    let replica = format!("{db}_r");
    let n = db.rsplit('_').take(2).collect::<Vec<_>>().join("");
    let (src_user, rep_user, redis_user) =
        (format!("srcu{n}"), format!("repu{n}"), format!("redu{n}"));
    let hook_port = free_port().unwrap();
    let secrets = Secrets {
        env: BTreeMap::from([
            ("SEC_SOURCE_PASSWORD", format!("mk-src-{db}")),
            ("SEC_REPLICA_PASSWORD", format!("mk-rep-{db}")),
            ("SEC_KAFKA_PASSWORD", kafka_sasl_password()),
            ("SEC_REDIS_PASSWORD", format!("mk-redis-{db}")),
            ("SEC_ES_PASSWORD", format!("mk-es-{db}")),
            ("SEC_HASH_KEY", format!("mk-hash-{db}")),
            // Nothing listens there: deliveries fail and are logged.
            (
                "SEC_HOOK_URL",
                format!("http://127.0.0.1:{hook_port}/hook/mk-hook-{db}"),
            ),
            (
                "SLUICE_SOURCE_URL",
                format!("mysql://{src_user}v:mk-verify-{db}@{}", host(&mysql_url())),
            ),
        ]),
    };
    let source_password = secrets.env["SEC_SOURCE_PASSWORD"].clone();

    let mut c = mysql::conn().await;
    let table = "t (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, email VARCHAR(80))";
    mysql::create_database(&mut c, &db, &[table]).await;
    mysql::create_database(&mut c, &replica, &[table]).await;
    // The privileges docs/security.md lists, nothing more.
    mysql::exec_all(
        &mut c,
        [
            format!("CREATE USER '{src_user}'@'%' IDENTIFIED BY '{source_password}'"),
            format!("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{src_user}'@'%'"),
            format!("GRANT SELECT ON `{db}`.* TO '{src_user}'@'%'"),
            format!(
                "CREATE USER '{rep_user}'@'%' IDENTIFIED BY '{}'",
                secrets.env["SEC_REPLICA_PASSWORD"]
            ),
            format!("GRANT SELECT, INSERT, UPDATE, DELETE ON `{replica}`.* TO '{rep_user}'@'%'"),
            // verify reads the source as a user of its own, from SLUICE_SOURCE_URL.
            format!("CREATE USER '{src_user}v'@'%' IDENTIFIED BY 'mk-verify-{db}'"),
            format!("GRANT SELECT ON `{db}`.* TO '{src_user}v'@'%'"),
        ],
    )
    .await;
    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&redis_user)
        .arg("on")
        .arg(format!(">{}", secrets.env["SEC_REDIS_PASSWORD"]))
        .arg(format!("~{db}:*"))
        .arg("+ping")
        .arg("+del")
        .arg("+set")
        .arg("+hset")
        .arg("+expire")
        .arg("+@connection")
        .query_async(&mut redis)
        .await
        .unwrap();
    create_topic(&format!("sluice.{db}"), 2).await.unwrap();
    create_topic(&format!("sluice.{db}.dlq"), 1).await.unwrap();
    let (file, pos) = mysql::binlog_end(&mut c).await;

    let dir = std::env::temp_dir().join(unique_name("secrets"));
    std::fs::create_dir_all(&dir).unwrap();
    let (capture_port, sink_port) = (free_port().unwrap(), free_port().unwrap());
    let kafka = format!(
        r#"[kafka]
brokers = ["{brokers}"]
security_protocol = "sasl_ssl"
sasl_mechanism = "SCRAM-SHA-512"
sasl_username = "{user}"
sasl_password = "${{SEC_KAFKA_PASSWORD}}"
ssl_ca_location = "{ca}"
options = {{ "debug" = "security,conf" }}
"#,
        brokers = kafka_sasl_brokers(),
        user = kafka_sasl_user(),
        ca = kafka_ca().display(),
    );
    // Alerts that fire within seconds: lag above 1 ms, and no traffic for 1 s.
    let alerting = |subject: &str| {
        format!(
            r#"[[webhooks]]
name = "hook"
url = "${{SEC_HOOK_URL}}"
attempts = 1
[[alerts]]
name = "late"
kind = "lag"
match = "{subject}"
threshold_seconds = 0.001
for_seconds = 0
[[alerts]]
name = "quiet"
kind = "no_traffic"
match = "*"
window_seconds = 1
"#
        )
    };
    let capture_text = format!(
        r#"instance = "{db}"
[source]
url = "mysql://{src_user}:${{SEC_SOURCE_PASSWORD}}@{host}"
server_id = {server_id}
start = "{file}:{pos}"
{kafka}[checkpoint]
dir = "{state}"
interval_ms = 100
[filter]
include = ['^{db}\.']
[filter.mask."{db}.t"]
email = {{ type = "hash", key = "${{SEC_HASH_KEY}}" }}
[metrics]
listen = "127.0.0.1:{capture_port}"
[log]
level = "trace"
{alerts}"#,
        host = host(&mysql_url()),
        server_id = 20_000 + rand::random::<u32>() % 1_000_000,
        state = dir.join("state").display(),
        alerts = alerting(&db),
    );
    let sink_text = |redis_password: &str, replica_password: &str| {
        format!(
            r#"{kafka}[consumer]
group_id = "{db}_sink"
topics = ["sluice.{db}"]
commit_interval_ms = 100
[metrics]
listen = "127.0.0.1:{sink_port}"
[log]
level = "trace"
[targets.replica]
type = "mysql"
url = "mysql://{rep_user}:{replica_password}@{host}/{replica}"
[targets.cache]
type = "redis"
url = "redis://{redis_user}:{redis_password}@{redis}"
[targets.search]
type = "elasticsearch"
urls = ["{es}"]
username = "elastic"
password = "${{SEC_ES_PASSWORD}}"
[[rules]]
name = "copy"
target = "replica"
match = {{ tables = ["{db}.t"] }}
[rules.mysql]
table = "t"
[[rules]]
name = "cache"
target = "cache"
match = {{ tables = ["{db}.t"] }}
[rules.redis]
keys = ["{db}:t:{{id}}"]
mode = "refresh"
[[rules]]
name = "index"
target = "search"
match = {{ tables = ["{db}.t"] }}
[rules.elasticsearch]
index = "{db}"
{alerts}"#,
            host = host(&mysql_url()),
            redis = host(&redis_url()),
            es = es_url(),
            alerts = alerting("copy"),
        )
    };
    let capture = write(&dir, "capture.toml", &capture_text);
    let sink = write(
        &dir,
        "sink.toml",
        &sink_text("${SEC_REDIS_PASSWORD}", "${SEC_REPLICA_PASSWORD}"),
    );
    for config in [&capture, &sink] {
        secrets.assert_absent("a config file", &std::fs::read_to_string(config).unwrap());
    }
    let env = secrets.env();
    let mut outputs: Vec<(String, String)> = Vec::new();

    // The error paths first: wrong passwords name the user, never a password.
    let mut wrong_env = env.clone();
    let wrong_marker = format!("mk-wrong-{db}");
    wrong_env.retain(|(k, _)| *k != "SEC_SOURCE_PASSWORD");
    wrong_env.push(("SEC_SOURCE_PASSWORD", &wrong_marker));
    let out = command(&capture_binary(), &["check"], &capture, &wrong_env).await;
    assert!(
        !out.success()
            && out
                .text()
                .contains(&format!("Access denied for user '{src_user}'")),
        "capture check with a wrong password: {}",
        out.text()
    );
    assert!(!out.text().contains(&wrong_marker), "{}", out.text());
    outputs.push(("capture check (wrong password)".to_owned(), out.text()));
    let wrong_replica = write(
        &dir,
        "sink-wrong-replica.toml",
        &sink_text("${SEC_REDIS_PASSWORD}", &wrong_marker),
    );
    let out = command(&sink_binary(), &["check"], &wrong_replica, &env).await;
    assert!(
        !out.success()
            && out
                .text()
                .contains(&format!("Access denied for user '{rep_user}'")),
        "sink check with a wrong replica password: {}",
        out.text()
    );
    assert!(!out.text().contains(&wrong_marker), "{}", out.text());
    outputs.push(("sink check (wrong replica password)".to_owned(), out.text()));
    let wrong_redis = write(
        &dir,
        "sink-wrong-redis.toml",
        &sink_text(&wrong_marker, "${SEC_REPLICA_PASSWORD}"),
    );
    let out = command(&sink_binary(), &["check"], &wrong_redis, &env).await;
    assert!(
        !out.success() && out.text().contains("target `cache`: cannot reach redis://127.0.0.1:6380: Password authentication failed"),
        "sink check with a wrong Redis password: {}",
        out.text()
    );
    assert!(!out.text().contains(&wrong_marker), "{}", out.text());
    outputs.push(("sink check (wrong Redis password)".to_owned(), out.text()));

    // Every command, the right way.
    for (binary, args, config, what) in [
        (capture_binary(), &["check"][..], &capture, "capture check"),
        (sink_binary(), &["check"][..], &sink, "sink check"),
    ] {
        let out = command(&binary, args, config, &env).await;
        assert!(out.success(), "{what}: {}", out.text());
        outputs.push((what.to_owned(), out.text()));
    }
    let mut capture_run = spawn(&capture_binary(), &capture, &env, &dir, "capture");
    let mut sink_run = spawn(&sink_binary(), &sink, &env, &dir, "sink");
    for id in 1..=5 {
        c.exec_drop(
            format!("INSERT INTO {db}.t VALUES (?, ?, ?)"),
            (id, format!("name {id}"), format!("user{id}@example.com")),
        )
        .await
        .unwrap();
    }
    c.query_drop(format!("UPDATE {db}.t SET name = 'x' WHERE id = 1"))
        .await
        .unwrap();
    wait::until_ok(
        120,
        "every row in the replica and the alerts told",
        async || {
            let n: Option<u64> = c
                .query_first(format!(
                    "SELECT COUNT(*) FROM {replica}.t WHERE name <> 'name 1'"
                ))
                .await
                .map_err(|e| e.to_string())?;
            if n != Some(5) {
                return Err(format!("{n:?} rows in the replica"));
            }
            for name in ["capture", "sink"] {
                let log =
                    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
                if !log.contains("could not deliver the notice") {
                    return Err(format!("{name} has not failed to deliver a notice yet"));
                }
            }
            Ok(())
        },
    )
    .await;
    for port in [capture_port, sink_port] {
        for (url, body) in endpoints(port).await {
            outputs.push((url, body));
        }
    }
    let out = command(&capture_binary(), &["position"], &capture, &env).await;
    assert!(out.success(), "position: {}", out.text());
    outputs.push(("capture position".to_owned(), out.text()));
    let out = command(&sink_binary(), &["offsets"], &sink, &env).await;
    assert!(out.success(), "offsets: {}", out.text());
    outputs.push(("sink offsets".to_owned(), out.text()));
    let out = command(&sink_binary(), &["verify", "--rule", "copy"], &sink, &env).await;
    // The replica holds the masked email, so the tables differ; verify must get that far.
    assert!(
        !out.text().contains("Access denied") && out.text().contains("t"),
        "verify: {}",
        out.text()
    );
    outputs.push(("sink verify".to_owned(), out.text()));
    for (child, name) in [(&mut capture_run, "capture"), (&mut sink_run, "sink")] {
        assert!(terminate(child, 30).await.is_some(), "{name} did not stop");
    }
    let from = format!("{file}:{pos}");
    let out = command(
        &capture_binary(),
        &["tail", "--from", &from, "--until-end"],
        &capture,
        &env,
    )
    .await;
    assert!(
        out.success() && out.stdout.lines().count() >= 6,
        "tail: {}",
        out.text()
    );
    outputs.push(("capture tail".to_owned(), out.text()));

    for name in ["capture", "sink"] {
        let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap();
        let debug = log.lines().filter(|l| l.contains(" DEBUG ")).count();
        assert!(
            debug > 10,
            "{name} wrote {debug} debug lines, so the test proves little"
        );
    }
    for (what, text) in &outputs {
        secrets.assert_absent(what, text);
    }
    let mut files = Vec::new();
    written_files(&dir, &mut files);
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("checkpoint")),
        "{files:?}"
    );
    for file in files {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        secrets.assert_absent(&file.display().to_string(), &text);
    }
    let _: Result<(), _> = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&redis_user)
        .query_async(&mut redis)
        .await;
}

/// `host:port` of a URL, without scheme, credentials or path.
fn host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or("").to_owned()
}
