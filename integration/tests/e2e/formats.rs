//! Other captures' messages through the sink: for each format, its fixture messages (from
//! formats/tests/fixtures) on one topic and the Sluice events they stand for on another, read by
//! two sinks with the same rules, must give the same writes (one test body, run per format).

use sluice_event::ChangeEvent;
use sluice_integration::sink::{RunningSink, SinkToml};
use sluice_integration::{create_topic, kafka_brokers, unique_name};
use sluice_sinks::targets::memory::MemoryTarget;
use sluice_sinks::targets::Target;
use sluice_sinks::Sink;
use std::path::Path;

/// The fixtures `<name>.json` of `dir` and the Sluice events of their `<name>.sluice.json`.
fn fixtures(dir: &str, names: &[&str]) -> (Vec<Vec<u8>>, Vec<ChangeEvent>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../formats/tests/fixtures")
        .join(dir);
    let read = |file: String| {
        std::fs::read(root.join(&file)).unwrap_or_else(|e| panic!("read {file}: {e}"))
    };
    let mut messages = Vec::new();
    let mut events = Vec::new();
    for name in names {
        messages.push(read(format!("{name}.json")));
        let evs: Vec<ChangeEvent> =
            serde_json::from_slice(&read(format!("{name}.sluice.json"))).expect("Sluice events");
        events.extend(evs);
    }
    (messages, events)
}

fn sink(topic: &str, format: &str, memory: &MemoryTarget) -> RunningSink {
    let head = SinkToml {
        linger_ms: 5,
        ..SinkToml::new(topic, topic)
    }
    .text()
    .replace(
        "[consumer]\n",
        &format!("[consumer]\nformat = \"{format}\"\n"),
    );
    let text = format!(
        "{head}[targets.out]\ntype = \"noop\"\n[[rules]]\nname = \"all\"\ntarget = \"out\"\nmatch = {{ tables = [\"/.*/\"] }}\n"
    );
    let config = sluice_integration::sink::parse(&text, &[]);
    RunningSink::start(Sink::new(config).with_target("out", Target::Memory(memory.clone())))
}

async fn same_writes_as_sluice(format: &str, dir: &str, names: &[&str]) {
    let (messages, events) = fixtures(dir, names);
    let brokers = kafka_brokers();
    let (other, sluice) = (
        unique_name(&format!("fmt_{format}")),
        unique_name("fmt_sluice"),
    );
    for t in [&other, &sluice] {
        create_topic(t, 1).await.expect("topic");
    }
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");
    for m in &messages {
        producer
            .send(
                rdkafka::producer::FutureRecord::<[u8], [u8]>::to(&other)
                    .payload(m)
                    .partition(0),
                std::time::Duration::from_secs(10),
            )
            .await
            .expect("send");
    }
    sluice_integration::events::produce(&brokers, &sluice, &events)
        .await
        .expect("produce");
    let want = events
        .iter()
        .filter(|e| e.kind != sluice_event::EventType::Ddl)
        .count();
    let (mem_other, mem_sluice) = (MemoryTarget::default(), MemoryTarget::default());
    let mut a = sink(&other, format, &mem_other);
    let mut b = sink(&sluice, "sluice", &mem_sluice);
    for (s, mem, what) in [
        (&mut a, &mem_other, format),
        (&mut b, &mem_sluice, "sluice"),
    ] {
        s.until(
            60,
            &format!("{want} writes from the {what} topic"),
            async || {
                let n = mem.written().len();
                if n == want {
                    Ok(())
                } else {
                    Err(format!("{n} writes"))
                }
            },
        )
        .await;
    }
    let items = |m: &MemoryTarget| {
        m.written()
            .into_iter()
            .map(|i| (i.rule, format!("{:?}", i.mapped)))
            .collect::<Vec<_>>()
    };
    assert_eq!(items(&mem_other), items(&mem_sluice), "{format}");
    a.stop().await.expect("stop");
    b.stop().await.expect("stop");
}

#[tokio::test]
async fn canal_messages_write_what_the_equivalent_sluice_events_write() {
    same_writes_as_sluice(
        "canal",
        "canal",
        &[
            "insert_all_types",
            "insert_multi_row",
            "update",
            "update_key_change",
            "delete",
            "ddl",
        ],
    )
    .await;
}

/// Maxwell's all-types row is left out: without the table's schema some values keep Maxwell's
/// form (DECIMAL as a number, DATETIME with a space, GEOMETRY as text; docs/formats.md), which
/// formats/tests/maxwell.rs spells out column by column.
#[tokio::test]
async fn maxwell_messages_write_what_the_equivalent_sluice_events_write() {
    same_writes_as_sluice(
        "maxwell",
        "maxwell",
        &[
            "bootstrap_insert",
            "update",
            "update_key_change",
            "delete",
            "ddl",
        ],
    )
    .await;
}
