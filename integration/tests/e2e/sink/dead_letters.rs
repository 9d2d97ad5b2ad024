//! Definite errors: dead-lettered with every header, or the sink stopped by `on_error = "stop"`.

use super::{
    committed, config_text, ids, parse_config, producer, read_all, send_event, send_raw, send_user,
    start, user_event,
};
use serde_json::json;
use sluice_event::EventType;
use sluice_integration::{create_topic, unique_name, wait};
use sluice_sinks::targets::fault::Faults;
use sluice_sinks::targets::memory::MemoryTarget;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_dead_letters_definite_errors_with_all_headers() {
    let topic = unique_name("sink_dlq");
    create_topic(&topic, 1).await.unwrap();
    create_topic(&format!("{topic}.dlq"), 1).await.unwrap();
    // The id template needs `email`; an event without it cannot render.
    let config = parse_config(&config_text(
        &topic,
        &unique_name("g"),
        "type = \"noop\"",
        "id = \"{id}:{email}\"",
    ));
    let p = producer();
    send_user(&p, &topic, EventType::Insert, 1, "a@x", 1).await;
    send_raw(&p, &topic, b"k", b"{not json", None, Some(0), None).await;
    let mut v2 = serde_json::to_value(user_event(EventType::Insert, 3, "c@x", 3)).unwrap();
    v2["v"] = json!(2);
    send_raw(
        &p,
        &topic,
        b"k",
        v2.to_string().as_bytes(),
        None,
        Some(0),
        None,
    )
    .await;
    send_user(&p, &topic, EventType::Insert, 4, "d@x", 4).await;
    let mut no_email = user_event(EventType::Insert, 5, "x", 5);
    no_email.data.remove("email");
    send_event(&p, &topic, &no_email, Some(0), None).await;
    send_user(&p, &topic, EventType::Insert, 6, "f@x", 6).await;

    let memory = MemoryTarget::default();
    let faults = Faults::default();
    faults.reject_id("4:d@x");
    let sink = start(config.clone(), &memory, &faults);
    wait::until(90, "offset 6 committed", async || {
        committed(&config).await == vec![Some(6)]
    })
    .await;
    sink.stop().await.unwrap();
    assert_eq!(ids(&memory.written()), ["1:a@x", "6:f@x"]);

    let dlq = read_all(&format!("{topic}.dlq"), 4);
    assert_eq!(dlq.len(), 4, "{dlq:?}");
    let offsets: Vec<&str> = dlq
        .iter()
        .map(|(_, _, _, h)| h["sluice-original-offset"].as_str())
        .collect();
    assert_eq!(offsets, ["1", "2", "3", "4"]);
    for (_, _, _, h) in &dlq {
        assert_eq!(h["sluice-original-topic"], topic);
        assert_eq!(h["sluice-original-partition"], "0");
    }
    let h = &dlq[0].3;
    assert!(
        h["sluice-error"].starts_with("message is not a Sluice change event: "),
        "{h:?}"
    );
    assert!(!h.contains_key("sluice-rule"));
    assert_eq!(dlq[0].2, b"{not json");
    assert_eq!(
        dlq[1].3["sluice-error"],
        "event version 2 is not supported (this build reads v1); upgrade sluice-sink or send v1 events"
    );
    let h = &dlq[2].3;
    assert_eq!(h["sluice-error"], "injected rejection of id 4:d@x");
    assert_eq!(h["sluice-rule"], "users");
    assert_eq!(h["sluice-target"], "out");
    // The original headers travel along.
    assert_eq!(h["sluice-seq"], "4");
    assert_eq!(h["sluice-table"], "shop.users");
    let h = &dlq[3].3;
    assert_eq!(h["sluice-rule"], "users");
    assert!(
        h["sluice-error"].contains("template `{id}:{email}`"),
        "{h:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_rule_with_on_error_stop_halts_at_the_message() {
    let topic = unique_name("sink_stop");
    create_topic(&topic, 1).await.unwrap();
    let config = parse_config(&config_text(
        &topic,
        &unique_name("g"),
        "type = \"noop\"",
        "id = \"{email}\"\non_error = \"stop\"",
    ));
    let p = producer();
    send_user(&p, &topic, EventType::Insert, 1, "a@x", 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut bad = user_event(EventType::Insert, 2, "x", 2);
    bad.data.remove("email");
    send_event(&p, &topic, &bad, Some(0), None).await;
    send_user(&p, &topic, EventType::Insert, 3, "c@x", 3).await;

    let memory = MemoryTarget::default();
    let faults = Faults::default();
    let sink = start(config.clone(), &memory, &faults);
    let err = sink.finished(90).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "stopped by rule `users` (on_error = \"stop\") at {topic}/0@1: "
        )),
        "{err}"
    );
    assert!(!ids(&memory.written()).contains(&"c@x".to_owned()));
    let done = committed(&config).await;
    assert!(done == vec![Some(1)] || done == vec![None], "{done:?}");
}
