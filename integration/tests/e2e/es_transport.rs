//! End-to-end tests of the Elasticsearch target's transport (issue #5): TLS with a CA file, basic
//! auth with the password from the environment, an API key, gzip request bodies.
//!
//! The local OpenSearch node (scripts/services.sh) runs without its security plugin: plain HTTP,
//! no users. A proxy (`sluice_integration::http_proxy`) in front of it plays the secured cluster:
//! it terminates TLS with a certificate signed by a CA made for the test, answers 401 like
//! Elasticsearch and OpenSearch unless the `Authorization` header is the expected one, records how
//! each request arrived (credentials, `Content-Type`, `Content-Encoding`), decompresses gzip
//! bodies and forwards them, without the credentials, to the node.

use base64::Engine as _;
use serde_json::json;
use sluice_event::{ChangeEvent, EventType};
use sluice_integration::es::all_docs;
use sluice_integration::http_proxy::{self, HttpProxy, Request, Response, TestTls, Upstream};
use sluice_integration::process::{run_to_end, sink_binary};
use sluice_integration::sink::{parse, positions, RunningSink, SinkToml};
use sluice_integration::{create_topic, es_url, kafka_brokers, unique_name};
use sluice_sinks::{Sink, SinkConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How one request arrived at the proxy.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    gzipped: bool,
    /// The wire body starts with the gzip magic bytes.
    gzip_magic: bool,
    wire_len: usize,
    body_len: usize,
    content_type: String,
    status: u16,
}

/// A secured cluster in front of the node: only requests with `Authorization: <expected>` pass.
struct Secured {
    proxy: HttpProxy,
    seen: Arc<Mutex<Vec<Seen>>>,
    expected: Arc<Mutex<String>>,
    tls: TestTls,
}

impl Secured {
    async fn start(expected_authorization: String) -> Secured {
        let tls = TestTls::new().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let expected = Arc::new(Mutex::new(expected_authorization));
        let (log, accept) = (Arc::clone(&seen), Arc::clone(&expected));
        let handler = http_proxy::handler(move |req: Request, up: Upstream| {
            let expected = accept.lock().unwrap().clone();
            let log = Arc::clone(&log);
            async move {
                let answer = if req.header("authorization") == Some(expected.as_str()) {
                    up.forward(&req).await
                } else {
                    // What Elasticsearch answers without (valid) credentials.
                    Response::json(
                        401,
                        &json!({"error": {"type": "security_exception",
                            "reason": "unable to authenticate user for REST request [/]"},
                            "status": 401}),
                    )
                };
                log.lock().unwrap().push(Seen {
                    path: req.path.clone(),
                    gzipped: req.gzipped(),
                    gzip_magic: req.raw_body.starts_with(&[0x1f, 0x8b]),
                    wire_len: req.raw_body.len(),
                    body_len: req.body.len(),
                    content_type: req.header("content-type").unwrap_or_default().to_owned(),
                    status: answer.status,
                });
                answer
            }
        });
        let proxy = HttpProxy::start(&es_url(), Some(&tls), handler)
            .await
            .unwrap();
        Secured {
            proxy,
            seen,
            expected,
            tls,
        }
    }

    /// From now on only `authorization` passes (the cluster's credentials were changed).
    fn accept(&self, authorization: String) {
        *self.expected.lock().unwrap() = authorization;
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The CA certificate in a file, for `ca_file`.
    fn ca_file(&self) -> PathBuf {
        sluice_integration::write_temp_file("es_ca", "ca.pem", &self.tls.ca_pem)
    }

    /// The `[targets.search]` lines for this cluster: its URL, `auth` ([`BASIC`] or [`API_KEY`])
    /// and `ca` as the CA file.
    fn transport(&self, auth: &str, ca: &Path) -> String {
        format!(
            "urls = [\"{}\"]\n{auth}\nca_file = \"{}\"",
            self.proxy.url(),
            ca.display()
        )
    }
}

/// Basic auth, the password from the environment.
const BASIC: &str = "username = \"sluice_writer\"\npassword = \"${ES_TEST_PASSWORD}\"";
/// An API key from the environment.
const API_KEY: &str = "api_key = \"${ES_TEST_API_KEY}\"";

/// The `Authorization` header of HTTP basic auth.
fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64_pair(user, password))
}

/// The `Authorization` header of an Elasticsearch API key.
fn api_key(id: &str, key: &str) -> String {
    format!("ApiKey {}", base64_pair(id, key))
}

fn base64_pair(id: &str, secret: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
}

/// A sink config reading `topic` into index `index` through the target `search` whose
/// transport settings are `transport` (lines of `[targets.search]`).
fn config_text(topic: &str, index: &str, transport: &str) -> String {
    let group = unique_name("g_estls");
    let head = SinkToml::new(topic, &group);
    format!(
        r#"{head}[targets.search]
type = "elasticsearch"
timeout_ms = 10000
{transport}
[[rules]]
name = "orders"
target = "search"
match = {{ tables = ["shop.orders"] }}
[rules.elasticsearch]
index = "{index}"
"#,
        head = head.text(),
    )
}

/// Order documents `ids`, with a long text each, so gzip has something to save.
fn orders(ids: std::ops::RangeInclusive<i64>) -> Vec<ChangeEvent> {
    ids.map(|id| {
        sluice_integration::events::row_event(
            "shop",
            "orders",
            EventType::Insert,
            1_000 + id,
            json!({"id": id, "note": format!("order {id} ").repeat(40)}),
            None,
        )
    })
    .collect()
}

/// Waits (90 s at most) until `index` holds `want` documents; returns how many it holds.
/// While it waits, the last requests at the proxy say what the sink is doing.
async fn until_indexed(sink: &mut RunningSink, index: &str, want: usize, proxy: &Secured) -> usize {
    let what = format!("{want} documents in {index}");
    sink.until(90, &what, async || {
        let n = all_docs(index).await.len();
        if n >= want {
            return Ok(n);
        }
        let seen = proxy.seen();
        Err(format!(
            "{n} documents; last requests at the proxy: {:?}",
            &seen[seen.len().saturating_sub(5)..]
        ))
    })
    .await
}

/// Runs the sink in-process until `index` holds `n` documents (90 s at most).
async fn sink_until_indexed(config: SinkConfig, index: &str, n: usize, proxy: &Secured) {
    let mut sink = RunningSink::start(Sink::new(config));
    assert_eq!(until_indexed(&mut sink, index, n, proxy).await, n);
    sink.stop().await.unwrap();
}

fn bulks(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| s.path.starts_with("/_bulk"))
        .collect()
}

/// Asserts that bulk requests reached the proxy, each gzip-compressed on the wire if `gzip`,
/// none if not, and each with a media type OpenSearch takes.
fn assert_bulk_bodies(seen: &[Seen], gzip: bool) {
    let bulks = bulks(seen);
    assert!(
        !bulks.is_empty(),
        "no bulk request reached the proxy: {seen:?}"
    );
    for b in &bulks {
        // OpenSearch answers 406 to Elasticsearch's compatibility media types
        // (`application/vnd.elasticsearch+json; compatible-with=N`); a client upgrade that
        // starts sending them must fail here, not on users' clusters.
        assert!(
            matches!(
                b.content_type.as_str(),
                "application/json" | "application/x-ndjson"
            ),
            "a bulk request with a Content-Type OpenSearch refuses: {b:?}"
        );
        if gzip {
            assert!(
                b.gzipped && b.gzip_magic && b.wire_len < b.body_len,
                "a bulk request was not gzip-compressed on the wire: {b:?}"
            );
        } else {
            assert!(
                !b.gzipped && !b.gzip_magic && b.wire_len == b.body_len,
                "gzip is off, yet a bulk body was compressed: {b:?}"
            );
        }
    }
}

/// A topic named after `prefix` with `partitions` partitions and the orders `ids` in it, and an
/// index name for them.
async fn orders_topic(
    prefix: &str,
    partitions: i32,
    ids: std::ops::RangeInclusive<i64>,
) -> (String, String) {
    sluice_integration::es::single_node_indexes().await;
    let (topic, index) = (unique_name(prefix), unique_name(prefix));
    create_topic(&topic, partitions).await.unwrap();
    sluice_integration::events::produce(&kafka_brokers(), &topic, &orders(ids))
        .await
        .unwrap();
    (topic, index)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es_over_tls_with_basic_auth_from_the_environment_and_gzip_bodies() {
    let password = format!("pw-{}", unique_name("s"));
    let proxy = Secured::start(basic("sluice_writer", &password)).await;
    let (topic, index) = orders_topic("es_tls", 2, 1..=30).await;
    let transport = format!("{}\ngzip = true", proxy.transport(BASIC, &proxy.ca_file()));
    assert!(proxy.proxy.url().starts_with("https://"));
    let config = parse(
        &config_text(&topic, &index, &transport),
        &[("ES_TEST_PASSWORD", &password)],
    );
    sink_until_indexed(config, &index, 30, &proxy).await;

    let seen = proxy.seen();
    let refused: Vec<&Seen> = seen.iter().filter(|s| s.status == 401).collect();
    assert!(
        refused.is_empty(),
        "requests without the right credentials: {refused:?}"
    );
    assert_bulk_bodies(&seen, true);
    let d = all_docs(&index).await;
    assert_eq!(d["7"]["note"], json!("order 7 ".repeat(40)));
    sluice_integration::es::delete_indexes(&[&index]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es_with_an_api_key_and_gzip_off_sends_plain_bodies() {
    let key = unique_name("k");
    let proxy = Secured::start(api_key("sluice-id", &key)).await;
    let (topic, index) = orders_topic("es_key", 1, 1..=10).await;
    // The `id:key` form; gzip is off by default.
    let transport = proxy.transport(API_KEY, &proxy.ca_file());
    let config = parse(
        &config_text(&topic, &index, &transport),
        &[("ES_TEST_API_KEY", &format!("sluice-id:{key}"))],
    );
    sink_until_indexed(config, &index, 10, &proxy).await;
    let seen = proxy.seen();
    assert!(
        seen.iter().all(|s| s.status != 401),
        "requests without the right API key: {seen:?}"
    );
    assert_bulk_bodies(&seen, false);
    sluice_integration::es::delete_indexes(&[&index]).await;
}

/// `sluice-sink check` as a process with `env`; (success, stdout + stderr).
async fn check(config: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let out = run_to_end(
        &sink_binary(),
        ["check".as_ref(), "--config".as_ref(), config.as_os_str()],
        env,
        60,
    )
    .await;
    (out.success(), out.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es_check_names_wrong_credentials_and_an_untrusted_certificate() {
    let password = format!("pw-{}", unique_name("s"));
    let key = unique_name("k");
    let basic_proxy = Secured::start(basic("sluice_writer", &password)).await;
    let key_proxy = Secured::start(api_key("sluice-id", &key)).await;
    let topic = unique_name("es_chk");
    create_topic(&topic, 1).await.unwrap();
    let index = unique_name("es_chk");
    let basic_cfg = |ca: &Path| {
        sluice_integration::write_temp_file(
            "es_chk",
            "sink.toml",
            &config_text(&topic, &index, &basic_proxy.transport(BASIC, ca)),
        )
    };
    let good_ca = basic_proxy.ca_file();
    let config = basic_cfg(&good_ca);

    let (ok, out) = check(&config, &[("ES_TEST_PASSWORD", &password)]).await;
    assert!(ok, "check with the right password failed:\n{out}");
    assert!(out.contains("target search (elasticsearch): ok"), "{out}");
    assert!(
        !out.contains(&password),
        "the password appears in the output:\n{out}"
    );

    let (ok, out) = check(&config, &[("ES_TEST_PASSWORD", "wrong")]).await;
    assert!(!ok, "check with a wrong password succeeded:\n{out}");
    for part in ["target `search`", "401", "credentials", "targets.search"] {
        assert!(out.contains(part), "no `{part}` in:\n{out}");
    }

    // Another CA than the one that signed the server's certificate: TLS is really verified.
    let other = TestTls::new().unwrap();
    let other_ca = sluice_integration::write_temp_file("es_ca", "ca.pem", &other.ca_pem);
    let (ok, out) = check(&basic_cfg(&other_ca), &[("ES_TEST_PASSWORD", &password)]).await;
    assert!(!ok, "check trusted a certificate of another CA:\n{out}");
    assert!(
        out.contains("certificate") && out.contains("targets.search.ca_file"),
        "the error does not say it is the certificate:\n{out}"
    );

    // The API key in its encoded form (base64 of id:key), right and wrong.
    let key_cfg = sluice_integration::write_temp_file(
        "es_chk",
        "sink.toml",
        &config_text(
            &topic,
            &index,
            &key_proxy.transport(API_KEY, &key_proxy.ca_file()),
        ),
    );
    let encoded = base64_pair("sluice-id", &key);
    let (ok, out) = check(&key_cfg, &[("ES_TEST_API_KEY", &encoded)]).await;
    assert!(ok, "check with the right API key failed:\n{out}");
    let (ok, out) = check(&key_cfg, &[("ES_TEST_API_KEY", "sluice-id:wrong")]).await;
    assert!(!ok, "check with a wrong API key succeeded:\n{out}");
    assert!(out.contains("401") && out.contains("api_key"), "{out}");
}

/// The group's committed offset of partition 0 (`None`: nothing committed yet).
async fn committed(config: &SinkConfig) -> Option<i64> {
    positions(config)
        .await
        .and_then(|p| p.first().and_then(|p| p.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es_refused_credentials_stop_the_start_and_are_retried_while_running() {
    let right = basic("sluice_writer", "pw-1");
    let proxy = Secured::start(basic("sluice_writer", "pw-0")).await;
    sluice_integration::es::single_node_indexes().await;
    let topic = unique_name("es_401");
    let index = unique_name("es_401");
    create_topic(&topic, 1).await.unwrap();
    let transport = proxy.transport(BASIC, &proxy.ca_file());
    let config = parse(
        &config_text(&topic, &index, &transport),
        &[("ES_TEST_PASSWORD", "pw-1")],
    );

    // Credentials the cluster refuses stop the sink at start-up, with the fix.
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        Sink::new(config.clone()).run(CancellationToken::new()),
    )
    .await
    .expect("the sink neither started nor stopped within 60 s")
    .expect_err("the sink started with credentials the cluster refuses")
    .to_string();
    assert!(
        err.contains("refused the credentials") && err.contains("targets.search.username"),
        "{err}"
    );

    // Accepted: the first documents arrive.
    proxy.accept(right.clone());
    sluice_integration::events::produce(&kafka_brokers(), &topic, &orders(1..=5))
        .await
        .unwrap();
    let mut sink = RunningSink::start(Sink::new(config.clone()));
    until_indexed(&mut sink, &index, 5, &proxy).await;

    // The password is rotated on the cluster while the sink runs: its writes are refused and
    // retried, nothing is written or committed past them.
    proxy.accept(basic("sluice_writer", "pw-2"));
    sluice_integration::events::produce(&kafka_brokers(), &topic, &orders(6..=10))
        .await
        .unwrap();
    sink.until(60, "3 refused bulk requests", async || {
        let seen = proxy.seen();
        let refused = bulks(&seen).iter().filter(|b| b.status == 401).count();
        if refused >= 3 {
            Ok(())
        } else {
            Err(format!(
                "{refused} refused; requests at the proxy: {seen:?}"
            ))
        }
    })
    .await;
    assert_eq!(all_docs(&index).await.len(), 5);
    let c = committed(&config).await;
    assert!(
        c.is_none_or(|o| o <= 5),
        "offset {c:?} committed past refused writes"
    );

    // The sink's password works again: the refused writes go through, none was skipped.
    proxy.accept(right);
    assert_eq!(until_indexed(&mut sink, &index, 10, &proxy).await, 10);
    sink.until(60, "offset 10 committed", async || {
        match committed(&config).await {
            Some(10) => Ok(()),
            other => Err(format!("committed {other:?}")),
        }
    })
    .await;
    sink.stop().await.unwrap();
    sluice_integration::es::delete_indexes(&[&index]).await;
}
