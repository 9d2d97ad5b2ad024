//! The broker's ceiling for bench/capture.sh: a plain rdkafka producer with the capture's
//! producer settings sends `count` keyed messages of `size` bytes and waits for every ack.
//!
//! `producer_ceiling <brokers> <topic> <count> <size> <partitions>`; prints `<count> <seconds>`.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use sluice_capture::config::CaptureConfig;
use sluice_capture::publish::Topics;
use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, topic, count, size, partitions] = &args[..] else {
        anyhow::bail!("usage: producer_ceiling <brokers> <topic> <count> <size> <partitions>");
    };
    let count: usize = count.parse()?;
    let size: usize = size.parse()?;
    let partitions: u32 = partitions.parse()?;
    let text = format!(
        "instance = \"bench\"\n[source]\nurl = \"mysql://x@127.0.0.1:1\"\n[kafka]\nbrokers = [\"{brokers}\"]\n[publish]\ncreate_topics = true\npartitions = {partitions}\n"
    );
    let cfg: CaptureConfig = sluice_config::parse(&text, Path::new("bench.toml"), |_| None)?;
    let producer = sluice_capture::publish::producer(&cfg)?;
    // Created like the capture creates its topics, so both runs write to the same layout.
    let partitions = Topics::new(&cfg).partitions(&producer, topic).await?;
    let window = cfg.publish.in_flight;
    let payload = vec![b'x'; size];
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::with_capacity(window);
    let started = Instant::now();
    for i in 0..count {
        let key = format!("[\"bench\",\"t\",{i}]");
        let partition = sluice_event::partition_for_key(key.as_bytes(), partitions) as i32;
        let mut record = FutureRecord::to(topic)
            .key(&key)
            .payload(&payload)
            .partition(partition);
        loop {
            if pending.len() >= window {
                if let Some(f) = pending.pop_front() {
                    f.await?.map_err(|(e, _)| e)?;
                }
            }
            match producer.send_result(record) {
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
