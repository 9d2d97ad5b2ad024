//! Operations end to end: a lagging rule and a silent one seen on `/metrics`, told to a webhook,
//! listed on `/alerts`, and shown by the status page in headless Chromium (docs/operations.md).

use mysql_async::prelude::Queryable;
use serde_json::{json, Value};
use sluice_event::EventType;
use sluice_integration::mysql::{conn, create_database};
use sluice_integration::process::{sink_binary, spawn_run, tail};
use sluice_integration::sink::SinkToml;
use sluice_integration::wait::until_ok;
use sluice_integration::{
    create_topic, free_port, kafka_brokers, mysql_url, state_dir, unique_name,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A webhook receiver on a free loopback port that keeps every body it is sent.
struct Webhook {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    async fn start() -> Webhook {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| async move {
                let v: Value = serde_json::from_str(&body).expect("a JSON notice");
                kept.lock().expect("lock").push(v);
                "ok"
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook receiver");
        let url = format!("http://{}/hook", l.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(l, app).await });
        Webhook { url, bodies }
    }

    /// Waits for a notice of `alert` with `status`; returns it.
    async fn notice(&self, secs: u64, alert: &str, status: &str) -> Value {
        until_ok(secs, &format!("a {status} notice of {alert}"), async || {
            let bodies = self.bodies.lock().expect("lock").clone();
            bodies
                .iter()
                .find(|b| b["alert"] == alert && b["status"] == status)
                .cloned()
                .ok_or_else(|| format!("{bodies:?}"))
        })
        .await
    }
}

/// `GET http://127.0.0.1:{port}{path}` as text.
pub(crate) async fn get(port: u16, path: &str) -> Result<String, String> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .map_err(|e| e.to_string())?;
    r.text().await.map_err(|e| e.to_string())
}

/// The value of the sample of `name` whose labels include every pair of `labels`.
pub(crate) fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (set, value) = rest.split_once("} ")?;
        labels
            .iter()
            .all(|(k, v)| set.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

/// Loads `url` in headless Chromium, lets its script run, and returns the DOM; also saves a
/// screenshot to `screenshot`.
async fn chromium(url: &str, screenshot: &Path) -> String {
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--virtual-time-budget=6000",
        "--window-size=1280,1500",
    ];
    let mut outputs = Vec::new();
    for last in [
        "--dump-dom".to_owned(),
        format!("--screenshot={}", screenshot.display()),
    ] {
        let out = tokio::process::Command::new("chromium")
            .args(common)
            .arg(&last)
            .arg(url)
            .output()
            .await
            .expect("run chromium (scripts/services.sh installs Debian's chromium)");
        assert!(
            out.status.success(),
            "chromium {last}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(out);
    }
    let dom = &outputs[0];
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

/// The `data-value` of the cell `field` in the row of `subject` on the page's DOM.
fn cell(dom: &str, subject: &str, field: &str) -> Option<String> {
    let row = dom.find(&format!("<tr data-subject=\"{subject}\">"))?;
    let row = &dom[row..dom[row..].find("</tr>")? + row];
    let at = row.find(&format!("data-field=\"{field}\" data-value=\""))?;
    let rest = &row[at + field.len() + 26..];
    Some(rest[..rest.find('"')?].to_owned())
}

#[tokio::test]
async fn sink_lag_and_silence_reach_metrics_webhook_alerts_and_the_page() {
    let src = unique_name("ops");
    let rep = format!("{src}_rep");
    let mut c = conn().await;
    let table = "(id INT PRIMARY KEY, name VARCHAR(64))";
    create_database(
        &mut c,
        &rep,
        &[&format!("users {table}"), &format!("quiet {table}")],
    )
    .await;
    let topic = unique_name("ops_topic");
    create_topic(&topic, 1).await.expect("topic");
    let hook = Webhook::start().await;
    let port = free_port().expect("port");
    let head = SinkToml::new(&topic, &topic).text().replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let config = format!(
        r#"{head}
[targets.replica]
type = "mysql"
url = "{url}/{rep}"
[[rules]]
name = "users"
target = "replica"
match = {{ tables = ["{src}.users"] }}
[[rules]]
name = "quiet"
target = "replica"
match = {{ tables = ["{src}.quiet"] }}
[[webhooks]]
name = "test"
url = "{hook}"
backoff_ms = 50
[[alerts]]
name = "users-late"
kind = "lag"
match = "users"
threshold_seconds = 2
for_seconds = 1
[[alerts]]
name = "quiet-silent"
kind = "no_traffic"
match = "quiet"
window_seconds = 3
"#,
        url = mysql_url(),
        hook = hook.url,
    );
    let dir = state_dir().join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    let config_path = dir.join(format!("{topic}.toml"));
    std::fs::write(&config_path, config).expect("write config");
    let log = dir.join(format!("{topic}.log"));
    let mut sink = spawn_run(&sink_binary(), &config_path, &[], &[], &log);

    let event = |id: i64| {
        sluice_integration::events::row_event(
            &src,
            "users",
            EventType::Insert,
            id,
            json!({"id": id, "name": format!("u{id}")}),
            None,
        )
    };
    let brokers = kafka_brokers();
    sluice_integration::events::produce(&brokers, &topic, &(1..=10).map(event).collect::<Vec<_>>())
        .await
        .expect("produce");
    let rows = async |c: &mut mysql_async::Conn| -> i64 {
        c.query_first(format!("SELECT COUNT(*) FROM `{rep}`.users"))
            .await
            .expect("count")
            .unwrap_or(0)
    };
    until_ok(60, "ten rows in the replica", async || {
        let n = rows(&mut c).await;
        if n == 10 {
            Ok(())
        } else {
            Err(format!("{n} rows; log:\n{}", tail(&log, 20)))
        }
    })
    .await;

    // The silent rule: told once its window passes.
    let silent = hook.notice(30, "quiet-silent", "firing").await;
    assert_eq!(silent["subject"], "quiet");
    assert_eq!(silent["source"]["binary"], "sluice-sink");

    // The replica table locked: the sink's writes wait and the rule falls behind.
    let mut locker = conn().await;
    locker
        .query_drop(format!("LOCK TABLES `{rep}`.users WRITE"))
        .await
        .expect("lock");
    sluice_integration::events::produce(
        &brokers,
        &topic,
        &(11..=15).map(event).collect::<Vec<_>>(),
    )
    .await
    .expect("produce");
    let late = hook.notice(60, "users-late", "firing").await;
    assert_eq!(late["subject"], "users");
    assert!(late["value"].as_f64().unwrap_or(0.0) > 2.0, "{late}");
    let alerts: Value =
        serde_json::from_str(&get(port, "/alerts").await.expect("/alerts")).expect("json");
    assert!(
        alerts["firing"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["alert"] == "users-late")),
        "{alerts}"
    );
    let metrics = get(port, "/metrics").await.expect("/metrics");
    let lag = sample(
        &metrics,
        "sluice_sink_lag_seconds",
        &[("rule", "users"), ("target", "replica")],
    );
    assert!(lag.is_some_and(|l| l > 2.0), "lag {lag:?} in:\n{metrics}");
    assert!(
        sample(&metrics, "sluice_sink_lag_messages", &[("topic", &topic)])
            .is_some_and(|n| n >= 1.0)
    );

    locker.query_drop("UNLOCK TABLES").await.expect("unlock");
    let resolved = hook.notice(60, "users-late", "resolved").await;
    assert_eq!(resolved["subject"], "users");
    until_ok(30, "fifteen rows in the replica", async || {
        let n = rows(&mut c).await;
        if n == 15 {
            Ok(())
        } else {
            Err(format!("{n} rows"))
        }
    })
    .await;

    // Quiet now: the page shows what /metrics says.
    let metrics = until_ok(30, "lag back to 0 on /metrics", async || {
        let m = get(port, "/metrics").await?;
        let lag = sample(&m, "sluice_sink_lag_seconds", &[("rule", "users")]);
        if lag == Some(0.0) {
            Ok(m)
        } else {
            Err(format!("lag {lag:?}"))
        }
    })
    .await;
    let written = sample(
        &metrics,
        "sluice_sink_items_total",
        &[("rule", "users"), ("outcome", "done")],
    );
    assert_eq!(written, Some(15.0), "{metrics}");
    let screenshot: PathBuf = dir.join("sink-status.png");
    let dom = chromium(&format!("http://127.0.0.1:{port}/"), &screenshot).await;
    assert!(
        dom.contains("data-loaded=\"") && !dom.contains("data-loaded=\"0\""),
        "the page never rendered:\n{dom}"
    );
    assert!(
        !dom.contains("data-errors="),
        "the page reported script errors:\n{dom}"
    );
    assert_eq!(
        cell(&dom, "users", "events_total").as_deref(),
        Some("15"),
        "{dom}"
    );
    assert_eq!(cell(&dom, "users", "lag_seconds").as_deref(), Some("0"));
    assert!(
        dom.contains("data-series=\"users\""),
        "the charts drew no users series:\n{dom}"
    );
    assert!(
        dom.contains("data-alert=\"quiet-silent\""),
        "the firing alert is not listed:\n{dom}"
    );
    assert!(
        std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 10_000),
        "no screenshot"
    );

    sluice_integration::process::terminate(&mut sink, 20).await;
}

/// The Prometheus rules in deploy/ load in Prometheus' own checker (Debian's `prometheus`
/// package, installed by scripts/services.sh).
#[tokio::test]
async fn prometheus_rules_pass_promtool() {
    let rules =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/sluice-alerts.yml");
    let out = tokio::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .await
        .expect("run promtool (scripts/services.sh installs Debian's prometheus package)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SUCCESS: 12 rules found"), "{text}");
}

/// Every `sluice_*` metric name a file of deploy/ queries (a histogram's `_bucket` counts as its
/// name).
fn queried_metrics(file: &str) -> std::collections::BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
    let text = std::fs::read_to_string(&path).expect("read a deploy file");
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("sluice_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        // Rule and dashboard identifiers (`sluice-capture` jobs, uids) are not metrics.
        if name.len() > "sluice_".len()
            && (name.starts_with("sluice_capture_") || name.starts_with("sluice_sink_"))
        {
            names.insert(name);
        }
    }
    names
}

/// Whether `/metrics` text has a sample of `name`.
fn has_metric(metrics: &str, name: &str) -> bool {
    metrics.lines().any(|l| {
        l.strip_prefix(name)
            .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
    })
}

/// The capture process, with a sink behind it, on a broker of its own: a frozen broker makes a
/// table late (told, then resolved when it thaws), a table without writes is silent, and the
/// page and the deploy/ files agree with the live `/metrics` of both binaries.
#[tokio::test]
async fn capture_lag_and_silence_reach_the_webhook_and_the_dashboard_queries_exist() {
    use sluice_integration::broker::PrivateBroker;
    use sluice_integration::capture::{kafka_table, CaptureToml};
    use sluice_integration::process::capture_binary;

    let broker = PrivateBroker::start("ops_broker")
        .await
        .expect("a private broker");
    let brokers = broker.brokers();
    let db = unique_name("opsc");
    let mut c = conn().await;
    let table = "(id INT PRIMARY KEY, note VARCHAR(64))";
    create_database(
        &mut c,
        &db,
        &[&format!("orders {table}"), &format!("users {table}")],
    )
    .await;
    let (file, pos) = sluice_integration::mysql::binlog_end(&mut c).await;
    let topic = format!("sluice.{db}");
    sluice_integration::create_topic_on(&brokers, &topic, 2)
        .await
        .expect("topic");
    let hook = Webhook::start().await;
    let dir = state_dir().join("test-artifacts").join(&db);
    std::fs::create_dir_all(&dir).expect("dir");
    let (capture_port, sink_port) = (free_port().expect("port"), free_port().expect("port"));
    let capture_toml = CaptureToml {
        start: Some(format!("{file}:{pos}")),
        heartbeat_secs: Some(1),
        checkpoint_interval_ms: Some(200),
        kafka: kafka_table(&brokers),
        extra: format!(
            r#"[metrics]
listen = "127.0.0.1:{capture_port}"
[[webhooks]]
name = "test"
url = "{hook}"
backoff_ms = 50
[[alerts]]
name = "orders-late"
kind = "lag"
match = "{db}.orders"
threshold_seconds = 2
for_seconds = 1
[[alerts]]
name = "users-silent"
kind = "no_traffic"
match = "{db}.users"
window_seconds = 3
"#,
            hook = hook.url
        ),
        ..CaptureToml::new(&db, &dir)
    }
    .text();
    let capture_cfg = dir.join("capture.toml");
    std::fs::write(&capture_cfg, capture_toml).expect("write");
    let capture_log = dir.join("capture.log");
    let mut capture = spawn_run(&capture_binary(), &capture_cfg, &[], &[], &capture_log);
    let head = SinkToml {
        brokers: brokers.clone(),
        ..SinkToml::new(&topic, &db)
    }
    .text()
    .replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{sink_port}\""),
    );
    let sink_cfg = dir.join("sink.toml");
    std::fs::write(
        &sink_cfg,
        format!(
            "{head}[targets.none]\ntype = \"noop\"\n[[rules]]\nname = \"orders\"\ntarget = \"none\"\nmatch = {{ tables = [\"{db}.orders\"] }}\n"
        ),
    )
    .expect("write");
    let mut sink = spawn_run(&sink_binary(), &sink_cfg, &[], &[], &dir.join("sink.log"));

    let insert = |from: i64, to: i64| {
        (from..=to)
            .map(|i| format!("INSERT INTO `{db}`.orders VALUES ({i}, 'n{i}')"))
            .collect::<Vec<_>>()
    };
    sluice_integration::mysql::exec_all(&mut c, insert(1, 20)).await;
    let events = |m: &str| {
        ["INSERT", "UPDATE", "DELETE"]
            .iter()
            .filter_map(|t| {
                sample(
                    m,
                    "sluice_capture_events_total",
                    &[("database", &db), ("table", "orders"), ("type", t)],
                )
            })
            .sum::<f64>()
    };
    until_ok(
        60,
        "20 events of orders on the capture's /metrics",
        async || {
            let m = get(capture_port, "/metrics").await?;
            if events(&m) == 20.0 {
                Ok(())
            } else {
                Err(format!("{}; log:\n{}", events(&m), tail(&capture_log, 20)))
            }
        },
    )
    .await;
    let silent = hook.notice(30, "users-silent", "firing").await;
    assert_eq!(silent["subject"], format!("{db}.users"));
    assert_eq!(silent["source"]["binary"], "sluice-capture");
    assert_eq!(silent["source"]["name"], db.as_str());

    // The broker frozen: what the capture reads is not acknowledged, and orders falls behind.
    broker.freeze().expect("freeze");
    sluice_integration::mysql::exec_all(&mut c, insert(21, 25)).await;
    let late = hook.notice(60, "orders-late", "firing").await;
    assert_eq!(late["subject"], format!("{db}.orders"));
    let m = get(capture_port, "/metrics").await.expect("/metrics");
    let table_lag = sample(
        &m,
        "sluice_capture_table_lag_seconds",
        &[("database", &db), ("table", "orders")],
    );
    assert!(table_lag.is_some_and(|l| l > 2.0), "{table_lag:?}\n{m}");
    assert!(
        sample(&m, "sluice_capture_lag_seconds", &[("stage", "acked")]).is_some_and(|l| l > 2.0)
    );
    assert_eq!(
        sample(
            &m,
            "sluice_capture_table_lag_seconds",
            &[("database", &db), ("table", "users")]
        ),
        None,
        "users had no event"
    );
    broker.thaw().expect("thaw");
    let resolved = hook.notice(90, "orders-late", "resolved").await;
    assert_eq!(resolved["subject"], format!("{db}.orders"));

    // A message the sink cannot decode, so its dead-letter series exists too.
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");
    producer
        .send(
            rdkafka::producer::FutureRecord::<[u8], [u8]>::to(&topic)
                .payload(b"not json")
                .partition(0),
            std::time::Duration::from_secs(10),
        )
        .await
        .expect("send");
    let (capture_metrics, sink_metrics) = until_ok(60, "both binaries quiet and every series present", async || {
        let cm = get(capture_port, "/metrics").await?;
        let sm = get(sink_port, "/metrics").await?;
        let done = sample(&sm, "sluice_sink_items_total", &[("rule", "orders"), ("outcome", "done")]);
        let dead = sample(&sm, "sluice_sink_dead_letters_total", &[("reason", "decode")]);
        let lag = sample(&cm, "sluice_capture_lag_seconds", &[("stage", "acked")]);
        if events(&cm) == 25.0 && done == Some(25.0) && dead == Some(1.0) && lag == Some(0.0) {
            Ok((cm, sm))
        } else {
            Err(format!("capture events {}, acked lag {lag:?}, sink done {done:?}, dead letters {dead:?}", events(&cm)))
        }
    })
    .await;
    for file in [
        "deploy/grafana/sluice-dashboard.json",
        "deploy/prometheus/sluice-alerts.yml",
    ] {
        let names = queried_metrics(file);
        assert!(names.len() >= 8, "{file}: {names:?}");
        for name in names {
            let base = name.strip_suffix("_bucket").unwrap_or(&name);
            let found = has_metric(&capture_metrics, &name)
                || has_metric(&sink_metrics, &name)
                || has_metric(&sink_metrics, &format!("{base}_bucket"));
            assert!(found, "{file} queries {name}, which neither binary serves:\n{capture_metrics}\n{sink_metrics}");
        }
    }

    let screenshot = dir.join("capture-status.png");
    let dom = chromium(&format!("http://127.0.0.1:{capture_port}/"), &screenshot).await;
    assert!(
        !dom.contains("data-errors="),
        "the page reported script errors:\n{dom}"
    );
    assert_eq!(
        cell(&dom, &format!("{db}.orders"), "events_total").as_deref(),
        Some("25"),
        "{dom}"
    );
    assert_eq!(
        cell(&dom, &format!("{db}.orders"), "lag_seconds").as_deref(),
        Some("0")
    );
    assert!(dom.contains("data-alert=\"users-silent\""), "{dom}");
    assert!(
        dom.contains(&format!("data-series=\"{db}.orders\"")),
        "{dom}"
    );
    std::fs::copy(
        &screenshot,
        state_dir()
            .join("test-artifacts")
            .join("capture-status.png"),
    )
    .expect("copy");

    sluice_integration::process::terminate(&mut sink, 20).await;
    sluice_integration::process::terminate(&mut capture, 20).await;
}
