//! The broker's ceiling for bench/capture.sh: a plain producer with the capture's settings.
//!
//! A plain rdkafka producer with the capture's producer settings sends `count` keyed messages of
//! `size` bytes and waits for every ack.
//!
//! `producer_ceiling <brokers> <topic> <count> <size> <partitions> [payloads.jsonl]`; prints
//! `<count> <seconds>`. With a file, its lines are the payloads (e.g. the events `tail` printed),
//! so the broker compresses and stores the same bytes as for the capture; else `size` bytes.
//! Every message carries the three headers the capture sends (`sluice-seq`, `sluice-type`,
//! `sluice-table`), so both runs hand librdkafka the same messages; `HEADERS=0` leaves them out.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use sluice_capture::config::CaptureConfig;
use sluice_capture::topics::Topics;
use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

// The allocator sluice-capture uses (and, with it, for librdkafka too), so the two runs differ
// only in what the capture adds.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (brokers, topic, count, size, partitions, file) = match &args[..] {
        [_, b, t, c, s, p] => (b, t, c, s, p, None),
        [_, b, t, c, s, p, f] => (b, t, c, s, p, Some(f)),
        _ => anyhow::bail!(
            "usage: producer_ceiling <brokers> <topic> <count> <size> <partitions> [payloads.jsonl]"
        ),
    };
    let count: usize = count.parse()?;
    let size: usize = size.parse()?;
    let partitions: u32 = partitions.parse()?;
    let text = format!(
        "instance = \"bench\"\n[source]\nurl = \"mysql://x@127.0.0.1:1\"\n[kafka]\nbrokers = [\"{brokers}\"]\n[publish]\ncreate_topics = true\npartitions = {partitions}\n"
    );
    let cfg: CaptureConfig = sluice_config::parse(&text, Path::new("bench.toml"), |_| None)?;
    let producer = sluice_capture::clients::producer(&cfg)?;
    // Created like the capture creates its topics, so both runs write to the same layout.
    let partitions = Topics::new(&cfg).partitions(&producer, topic).await?;
    let window = cfg.publish.in_flight;
    let payloads: Vec<Vec<u8>> = match file {
        Some(f) => std::fs::read(f)?
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect(),
        None => vec![vec![b'x'; size]],
    };
    anyhow::ensure!(!payloads.is_empty(), "no payloads");
    let headers = std::env::var("HEADERS").map_or(true, |v| v != "0");
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::with_capacity(window);
    let started = Instant::now();
    for i in 0..count {
        let key = format!("[\"bench\",\"t\",{i}]");
        let partition = sluice_event::partition_for_key(key.as_bytes(), partitions) as i32;
        let payload = &payloads[i % payloads.len()];
        let seq = (1_882_472_897_839_104_000i64 + i as i64).to_string();
        let mut record = FutureRecord::to(topic)
            .key(&key)
            .payload(payload)
            .partition(partition);
        if headers {
            record = record.headers(
                OwnedHeaders::new_with_capacity(3)
                    .insert(Header {
                        key: sluice_event::HEADER_SEQ,
                        value: Some(seq.as_bytes()),
                    })
                    .insert(Header {
                        key: sluice_event::HEADER_TYPE,
                        value: Some("INSERT"),
                    })
                    .insert(Header {
                        key: sluice_event::HEADER_TABLE,
                        value: Some("bench_capture.orders"),
                    }),
            );
        }
        loop {
            if pending.len() >= window {
                if let Some(f) = pending.pop_front() {
                    f.await?.map_err(|(e, _)| e)?;
                }
            }
            match producer.client.send_result(record) {
                Ok(f) => {
                    pending.push_back(f);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    match pending.pop_front() {
                        Some(f) => {
                            f.await?.map_err(|(e, _)| e)?;
                        }
                        None => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    while let Some(f) = pending.pop_front() {
        f.await?.map_err(|(e, _)| e)?;
    }
    println!("{count} {:.3}", started.elapsed().as_secs_f64());
    Ok(())
}
