//! `--start-at` a time: the group moves to the first offset after it on every partition.

use super::{
    committed, config_text, now_ms, parse_config, producer, send_event, start, user_event,
};
use sluice_event::EventType;
use sluice_integration::{create_topic, unique_name, wait};
use sluice_sinks::offsets::{self, StartAt};
use sluice_sinks::targets::fault::Faults;
use sluice_sinks::targets::memory::MemoryTarget;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_start_at_a_time_between_two_batches() {
    let topic = unique_name("sink_start");
    create_topic(&topic, 3).await.unwrap();
    let p = producer();
    let t0 = now_ms() - 600_000;
    let between = t0 + 60_000;
    let t1 = t0 + 120_000;
    // Batch A before `between`, batch B after, spread over all partitions.
    let mut first_b = [None::<i64>; 3];
    let mut counts = [0i64; 3];
    for id in 0..30 {
        let part = (id % 3) as i32;
        let (ts, seq) = if id < 15 {
            (t0 + id, id)
        } else {
            (t1 + id, id)
        };
        if id >= 15 && first_b[part as usize].is_none() {
            first_b[part as usize] = Some(counts[part as usize]);
        }
        counts[part as usize] += 1;
        send_event(
            &p,
            &topic,
            &user_event(EventType::Insert, id, "e", seq),
            Some(part),
            Some(ts),
        )
        .await;
    }
    let config = parse_config(&config_text(
        &topic,
        &unique_name("g"),
        "type = \"noop\"",
        "",
    ));
    let c = config.clone();
    let set =
        tokio::task::spawn_blocking(move || offsets::apply_start_at(&c, StartAt::Time(between)))
            .await
            .unwrap()
            .unwrap();
    let mut got: Vec<(i32, i64)> = set.iter().map(|(_, p, o)| (*p, *o)).collect();
    got.sort();
    assert_eq!(got, vec![(0, 5), (1, 5), (2, 5)]);
    assert_eq!(first_b, [Some(5), Some(5), Some(5)]);
    assert_eq!(committed(&config).await, vec![Some(5), Some(5), Some(5)]);

    // The group resumes there: exactly batch B is written.
    let memory = MemoryTarget::default();
    let sink = start(config.clone(), &memory, &Faults::default());
    wait::until(90, "all partitions committed at 10", async || {
        committed(&config).await == vec![Some(10), Some(10), Some(10)]
    })
    .await;
    sink.stop().await.unwrap();
    // `sluice-sink offsets` reads the same: committed at the end, no lag.
    let c = config.clone();
    let rows = tokio::task::spawn_blocking(move || offsets::list(&c, &c.consumer.group_id))
        .await
        .unwrap()
        .unwrap();
    let seen: Vec<(i32, Option<i64>, i64, i64)> = rows
        .iter()
        .map(|r| (r.partition, r.committed, r.high, r.lag()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (0, Some(10), 10, 0),
            (1, Some(10), 10, 0),
            (2, Some(10), 10, 0)
        ]
    );
    let mut seqs: Vec<i64> = memory.written().iter().map(|i| i.mapped.seq).collect();
    seqs.sort();
    assert_eq!(seqs, (15..30).collect::<Vec<i64>>());

    // A time after the last message: the end of every partition (not offset 0).
    let c = config.clone();
    let set = tokio::task::spawn_blocking(move || {
        offsets::apply_start_at(&c, StartAt::Time(now_ms() + 3_600_000))
    })
    .await
    .unwrap()
    .unwrap();
    assert!(set.iter().all(|(_, _, o)| *o == 10), "{set:?}");
    let c = config.clone();
    let set = tokio::task::spawn_blocking(move || offsets::apply_start_at(&c, StartAt::Earliest))
        .await
        .unwrap()
        .unwrap();
    assert!(set.iter().all(|(_, _, o)| *o == 0), "{set:?}");
}
