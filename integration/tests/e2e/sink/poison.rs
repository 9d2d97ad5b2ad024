//! Poison input: messages the sink can never write as they are, interleaved with good ones in
//! one partition, and a search server that answers garbage. Every poison message goes to the
//! dead-letter topic with its reason, class and original position (or is skipped, a tombstone);
//! every garbage answer is retried until the server behaves; every good event reaches
//! OpenSearch and the group's committed offset passes them all. docs/sink.md, *Poison input*,
//! has the table these tests hold the sink to.

use super::now_ms;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use sluice_event::{ChangeEvent, EventType};
use sluice_integration::http_proxy::{self, HttpProxy, Request, Response, Upstream};
use sluice_integration::sink::{positions, RunningSink, SinkToml};
use sluice_integration::{es, es_url, kafka, kafka_brokers, unique_name, wait};
use sluice_sinks::{Sink, SinkConfig};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A value past 10 MiB: over every default size limit of Kafka (1 MB) and librdkafka's
/// `fetch.message.max.bytes` (1 MiB), under the topics' `max.message.bytes` below.
const BIG: usize = 10 * 1024 * 1024 + 512 * 1024;
/// `max.message.bytes` of the tests' topics and dead-letter topics, and the producer's
/// `message.max.bytes`.
const TOPIC_MAX_BYTES: usize = 32 * 1024 * 1024;

/// What the sink must do with one message.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// Written as the document with this id.
    Written(&'static str),
    /// Dead-lettered with this class, and a reason that starts with (then contains) these.
    Dead(&'static str, &'static str, &'static str),
    /// Nothing to write: neither a document nor a dead letter.
    Skipped,
}

/// One message of the poison partition.
struct Case {
    what: &'static str,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    expect: Expect,
}

/// A `shop.users` change of user `id`; `extra` columns go into its row.
fn user(id: i64, extra: Value) -> ChangeEvent {
    let mut data = json!({"id": id, "email": format!("u{id}@x")});
    if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    let seq = (now_ms() << 20) + id;
    sluice_integration::events::row_event("shop", "users", EventType::Insert, seq, data, None)
}

fn good(what: &'static str, id: i64, doc: &'static str) -> Case {
    let e = user(id, json!({}));
    Case {
        what,
        key: Some(e.key()),
        value: Some(e.encode()),
        expect: Expect::Written(doc),
    }
}

/// `[[[...1...]]]` nested `depth` arrays deep.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!([inner]))
}

/// The partition: good events between poison ones, each kind once.
fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    v.push(good("a good event", 1, "1"));
    v.push(Case {
        what: "a value that is not JSON",
        key: Some(user(100, json!({})).key()),
        value: Some(b"<html><body>502 Bad Gateway</body></html>".to_vec()),
        expect: Expect::Dead(
            "decode",
            "message is not a Sluice change event: expected value at line 1 column 1",
            "",
        ),
    });
    v.push(good("a good event", 2, "2"));
    let e = user(101, json!({}));
    let mut v99 = serde_json::to_value(&e).unwrap();
    v99["v"] = json!(99);
    v.push(Case {
        what: "an unknown event version",
        key: Some(e.key()),
        value: Some(serde_json::to_vec(&v99).unwrap()),
        expect: Expect::Dead(
            "decode",
            "event version 99 is not supported (this build reads v1); upgrade sluice-sink or send v1 events",
            "",
        ),
    });
    let e = user(3, json!({"blob": "b".repeat(BIG)}));
    v.push(Case {
        what: "a valid event of more than 10 MiB",
        key: Some(e.key()),
        value: Some(e.encode()),
        expect: Expect::Written("3"),
    });
    v.push(Case {
        what: "a value of more than 10 MiB that is not JSON",
        key: Some(user(102, json!({})).key()),
        value: Some(vec![b'x'; BIG]),
        expect: Expect::Dead(
            "decode",
            "message is not a Sluice change event: expected value at line 1 column 1",
            "",
        ),
    });
    let e = user(103, json!({"deep": nested(130)}));
    v.push(Case {
        what: "JSON nested past serde_json's 128 levels",
        key: Some(e.key()),
        value: Some(e.encode()),
        expect: Expect::Dead(
            "decode",
            "message is not a Sluice change event: recursion limit exceeded",
            "",
        ),
    });
    let e = user(104, json!({}));
    v.push(Case {
        what: "a key that names another row",
        key: Some(user(105, json!({})).key()),
        value: Some(e.encode()),
        expect: Expect::Dead(
            "key",
            "key does not match the event's primary key: the message's key is `[\"shop\",\"users\",105]`, its event (`shop.users`) says `[\"shop\",\"users\",104]`",
            "",
        ),
    });
    let e = user(106, json!({"email": "INVALID"}));
    let mut bad = e.encode();
    // A lone continuation byte and a byte that is never UTF-8, inside a JSON string.
    let at = bad.windows(7).position(|w| w == b"INVALID").unwrap();
    bad.splice(at..at + 7, [0x80, 0xff]);
    v.push(Case {
        what: "a value with invalid UTF-8",
        key: Some(e.key()),
        value: Some(bad),
        expect: Expect::Dead(
            "decode",
            "message is not a Sluice change event: invalid unicode code point",
            "",
        ),
    });
    v.push(Case {
        what: "a tombstone (no value)",
        key: Some(user(107, json!({})).key()),
        value: None,
        expect: Expect::Skipped,
    });
    v.push(Case {
        what: "an empty value",
        key: Some(user(108, json!({})).key()),
        value: Some(Vec::new()),
        expect: Expect::Dead(
            "decode",
            "message is not a Sluice change event: EOF while parsing a value at line 1 column 0",
            "",
        ),
    });
    let e = user(4, json!({}));
    v.push(Case {
        what: "a good event without a key",
        key: None,
        value: Some(e.encode()),
        expect: Expect::Written("4"),
    });
    v.push(Case {
        what: "JSON that is not an object",
        key: Some(user(109, json!({})).key()),
        value: Some(b"[1,2,3]".to_vec()),
        expect: Expect::Dead("decode", "message is not a Sluice change event: ", ""),
    });
    v.push(good("the last good event", 5, "5"));
    v
}

/// Creates `topic` (one partition) and its dead-letter topic, both taking messages up to
/// [`TOPIC_MAX_BYTES`].
async fn create_topics(topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()
        .unwrap();
    let max = TOPIC_MAX_BYTES.to_string();
    let dlq = format!("{topic}.dlq");
    let new: Vec<NewTopic<'_>> = [topic, dlq.as_str()]
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)).set("max.message.bytes", &max))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in admin.create_topics(&new, &opts).await.unwrap() {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

/// A producer that can send [`BIG`] messages.
fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("message.max.bytes", TOPIC_MAX_BYTES.to_string())
        .set("linger.ms", "0")
        .create()
        .unwrap()
}

/// Produces one message to partition 0 and waits for it; its offset.
async fn send(p: &FutureProducer, topic: &str, key: Option<&[u8]>, value: Option<&[u8]>) -> i64 {
    let headers = OwnedHeaders::new().insert(Header {
        key: "poison-test",
        value: Some("1"),
    });
    let mut r: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).partition(0).headers(headers);
    if let Some(k) = key {
        r = r.key(k);
    }
    if let Some(v) = value {
        r = r.payload(v);
    }
    p.send(r, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)
        .unwrap()
        .offset
}

/// A sink config reading `topic` with one Elasticsearch target `search` at `url`, whose rule
/// writes `shop.users` into `index` (the column `blob` kept in `_source` only).
fn sink_config(topic: &str, index: &str, url: &str) -> SinkConfig {
    let group = unique_name("g");
    let mapping = sluice_integration::write_temp_file(
        "es_mapping",
        "mapping.json",
        r#"{"settings":{"number_of_replicas":0},"mappings":{"properties":{"blob":{"type":"object","enabled":false}}}}"#,
    );
    let text = format!(
        "{head}[targets.search]\ntype = \"elasticsearch\"\nurls = [\"{url}\"]\ntimeout_ms = 30000\n\
         [[rules]]\nname = \"users\"\ntarget = \"search\"\nmatch = {{ tables = [\"shop.users\"] }}\n\
         [rules.elasticsearch]\nindex = \"{index}\"\ncreate_index = \"{mapping}\"\n",
        head = SinkToml::new(topic, &group).text(),
        mapping = mapping.display(),
    );
    sluice_integration::sink::parse(&text, &[])
}

/// Waits until the group committed every message of the topic; the committed offset.
async fn until_caught_up(sink: &mut RunningSink, config: &SinkConfig, secs: u64) -> i64 {
    sink.until(secs, "the sink committed every message", async || {
        let p = positions(config).await.ok_or("the broker did not answer")?;
        match p.as_slice() {
            [(Some(c), high)] if c == high => Ok(*c),
            other => Err(format!("(committed, high) {other:?}")),
        }
    })
    .await
}

/// id → `_source` without `blob`, and the length of each document's `blob`.
async fn docs(index: &str) -> (HashMap<String, Value>, HashMap<String, usize>) {
    let http = reqwest::Client::new();
    http.post(format!("{}/{index}/_refresh", es_url()))
        .send()
        .await
        .unwrap();
    let body = json!({"size": 100, "query": {"match_all": {}}});
    let found = es::json(
        http.post(format!("{}/{index}/_search", es_url()))
            .json(&body),
    )
    .await;
    let mut docs = HashMap::new();
    let mut blobs = HashMap::new();
    for h in found["hits"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let id = h["_id"].as_str().unwrap().to_owned();
        let mut source = h["_source"].clone();
        if let Some(b) = source.as_object_mut().and_then(|o| o.remove("blob")) {
            blobs.insert(id.clone(), b.as_str().map_or(0, str::len));
        }
        docs.insert(id, source);
    }
    (docs, blobs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_dead_letters_every_poison_message_and_writes_the_good_ones_around_it() {
    es::single_node_indexes().await;
    let topic = unique_name("sink_poison");
    let index = unique_name("es_poison");
    create_topics(&topic).await;
    let p = producer();
    let cases = cases();
    let mut offsets = Vec::new();
    for c in &cases {
        offsets.push(send(&p, &topic, c.key.as_deref(), c.value.as_deref()).await);
    }
    assert_eq!(offsets, (0..cases.len() as i64).collect::<Vec<_>>());

    let config = sink_config(&topic, &index, &es_url());
    let mut sink = RunningSink::start(Sink::new(config.clone()));
    let committed = until_caught_up(&mut sink, &config, 120).await;
    sink.stop().await.unwrap();
    assert_eq!(committed, cases.len() as i64);

    // Every good event, and nothing else, is in the index.
    let (docs, blobs) = docs(&index).await;
    let mut want: Vec<&str> = cases
        .iter()
        .filter_map(|c| match c.expect {
            Expect::Written(id) => Some(id),
            _ => None,
        })
        .collect();
    want.sort();
    let mut got: Vec<&str> = docs.keys().map(String::as_str).collect();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(docs["4"]["email"], "u4@x");
    assert_eq!(blobs.get("3"), Some(&BIG), "the big event's blob, whole");

    // Every poison message is in the dead-letter topic once, in order, with why and where from.
    let dead: Vec<(usize, &Case)> = cases
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c.expect, Expect::Dead(..)))
        .collect();
    let dlq = format!("{topic}.dlq");
    let letters = kafka::read_messages(&kafka_brokers(), &dlq, 1, dead.len() + 1, 30);
    assert_eq!(letters.len(), dead.len(), "letters in {dlq}");
    for (letter, (offset, case)) in letters.iter().zip(&dead) {
        let h = kafka::headers(letter);
        let Expect::Dead(class, starts, contains) = case.expect else {
            unreachable!()
        };
        eprintln!(
            "{}: {} ({})",
            case.what, h["sluice-error"], h["sluice-error-class"]
        );
        assert_eq!(
            h["sluice-original-offset"],
            offset.to_string(),
            "{}",
            case.what
        );
        assert_eq!(h["sluice-original-topic"], topic);
        assert_eq!(h["sluice-original-partition"], "0");
        assert_eq!(h["sluice-error-class"], class, "{}", case.what);
        assert!(
            h["sluice-error"].starts_with(starts) && h["sluice-error"].contains(contains),
            "{}: {}",
            case.what,
            h["sluice-error"]
        );
        assert!(!h.contains_key("sluice-rule"), "{}: {h:?}", case.what);
        assert_eq!(h["poison-test"], "1", "the original headers travel along");
        assert_eq!(letter.key(), case.key.as_deref(), "{}", case.what);
        assert!(
            letter.payload() == case.value.as_deref(),
            "{}: the value, unchanged",
            case.what
        );
    }
    es::delete_indexes(&[&index]).await;
}

/// The kinds of garbage the proxy answers bulk requests with, one per request, in this order.
const GARBAGE: [&str; 6] = [
    "an HTML 502 page",
    "a 200 with a truncated JSON body",
    "a 200 with an HTML body",
    "a 200 bulk response with fewer items than actions",
    "a 200 bulk response whose items answer other documents",
    "a 200 bulk response with no items at all",
];

/// The answer for garbage kind `n` to bulk request `req`: never forwarded, so nothing is
/// written by it.
fn garbage(n: usize, req: &Request) -> Response {
    let text = |status: u16, content_type: &str, body: &str| Response {
        status,
        content_type: content_type.into(),
        body: body.as_bytes().to_vec(),
    };
    // The documents of the request, to answer about others.
    let ids: Vec<String> = String::from_utf8_lossy(&req.body)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["index"]["_id"].as_str().map(str::to_owned))
        .collect();
    let created = |id: &str| json!({"index": {"_index": "x", "_id": id, "_version": 1, "result": "created", "status": 201}});
    match n {
        0 => text(
            502,
            "text/html",
            "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
        ),
        1 => text(200, "application/json", r#"{"took":3,"errors":false,"items":[{"index":{"_index":"x","_id":"1","sta"#),
        2 => text(200, "text/html", "<html><body>Welcome to nginx!</body></html>"),
        3 => Response::json(
            200,
            &json!({"took": 1, "errors": false, "items": ids.iter().skip(1).map(|id| created(id)).collect::<Vec<_>>()}),
        ),
        4 => Response::json(
            200,
            &json!({"took": 1, "errors": false, "items": ids.iter().map(|id| created(&format!("not-{id}"))).collect::<Vec<_>>()}),
        ),
        _ => Response::json(200, &json!({"took": 1, "errors": false})),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_retries_garbage_answers_of_the_search_server_and_converges() {
    es::single_node_indexes().await;
    let topic = unique_name("sink_garbage");
    let index = unique_name("es_garbage");
    create_topics(&topic).await;
    let p = producer();
    let n = 30;
    for id in 1..=n {
        let e = user(id, json!({}));
        send(&p, &topic, Some(&e.key()), Some(&e.encode())).await;
    }

    // Each of the first bulk requests gets one kind of garbage; then the proxy forwards.
    let bulks = Arc::new(AtomicUsize::new(0));
    let seen = bulks.clone();
    let handler = http_proxy::handler(move |req: Request, up: Upstream| {
        let seen = seen.clone();
        async move {
            if !req.path.starts_with("/_bulk") {
                return up.forward(&req).await;
            }
            let k = seen.fetch_add(1, Ordering::SeqCst);
            if k < GARBAGE.len() {
                garbage(k, &req)
            } else {
                up.forward(&req).await
            }
        }
    });
    let proxy = HttpProxy::start(&es_url(), None, handler).await.unwrap();
    let config = sink_config(&topic, &index, proxy.url());
    let mut sink = RunningSink::start(Sink::new(config.clone()));
    let committed = until_caught_up(&mut sink, &config, 120).await;
    sink.stop().await.unwrap();
    assert_eq!(committed, n);
    let requests = bulks.load(Ordering::SeqCst);
    assert!(
        requests > GARBAGE.len(),
        "{requests} bulk requests: the sink retried every garbage answer and went on"
    );

    let (docs, _) = docs(&index).await;
    let mut got: Vec<i64> = docs.keys().map(|k| k.parse().unwrap()).collect();
    got.sort();
    assert_eq!(got, (1..=n).collect::<Vec<_>>(), "every event, once");
    // Garbage is transient: nothing was dead-lettered.
    let dlq = format!("{topic}.dlq");
    let letters = kafka::read_messages(&kafka_brokers(), &dlq, 1, 1, 3);
    let shown: Vec<BTreeMap<String, String>> = letters.iter().map(kafka::headers).collect();
    assert!(letters.is_empty(), "dead letters: {shown:?}");
    es::delete_indexes(&[&index]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_names_the_setting_when_a_message_is_bigger_than_it_can_receive() {
    use sluice_integration::process::{self, sink_binary};
    let topic = unique_name("sink_unreadable");
    create_topics(&topic).await;
    let p = producer();
    for (id, blob) in [(1, 0), (2, 2 * 1024 * 1024), (3, 0)] {
        let e = user(id, json!({"blob": "b".repeat(blob)}));
        send(&p, &topic, Some(&e.key()), Some(&e.encode())).await;
    }
    let group = unique_name("g");
    let head = SinkToml::new(&topic, &group).text();
    let rules = "[targets.out]\ntype = \"noop\"\n[[rules]]\nname = \"users\"\ntarget = \"out\"\nmatch = { tables = [\"shop.users\"] }\n";
    // 1 MiB answers at most: the 2 MiB message cannot be received.
    let small = head.replace(
        "\"heartbeat.interval.ms\" = \"1000\"",
        "\"heartbeat.interval.ms\" = \"1000\", \"fetch.max.bytes\" = \"1048576\", \"receive.message.max.bytes\" = \"1049088\"",
    );
    assert_ne!(small, head);
    let config = sluice_integration::sink::parse(&format!("{small}{rules}"), &[]);
    let file = sluice_integration::write_temp_file(
        "sink_unreadable",
        "sink.toml",
        &format!("{small}{rules}"),
    );
    let log = file.with_file_name("sink.log");
    let mut child = process::spawn_run(&sink_binary(), &file, &[], &[], &log);
    wait::until(60, "the sink's error naming receive.message.max.bytes", async || {
        process::assert_running(&mut child, "sluice-sink", &log);
        std::fs::read_to_string(&log).unwrap_or_default().contains(
            "The partitions behind it do not move and nothing is skipped until it can be read: raise kafka.options receive.message.max.bytes",
        )
    })
    .await;
    // It waits before the message it cannot read, having written the one before it.
    wait::until(30, "offset 1 committed", async || {
        positions(&config).await == Some(vec![(Some(1), 3)])
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(positions(&config).await, Some(vec![(Some(1), 3)]));
    process::terminate(&mut child, 30).await;

    // With the default limit it reads the message and goes on.
    std::fs::write(&file, format!("{head}{rules}")).unwrap();
    let log = file.with_file_name("sink-2.log");
    let mut child = process::spawn_run(&sink_binary(), &file, &[], &[], &log);
    wait::until(60, "everything committed", async || {
        process::assert_running(&mut child, "sluice-sink", &log);
        positions(&config).await == Some(vec![(Some(3), 3)])
    })
    .await;
    process::terminate(&mut child, 30).await;
    let letters = kafka::read_messages(&kafka_brokers(), &format!("{topic}.dlq"), 1, 1, 3);
    assert!(letters.is_empty(), "nothing dead-lettered");
}
