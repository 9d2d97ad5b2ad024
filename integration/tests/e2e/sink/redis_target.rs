//! The Redis target: invalidation of new and old keys, and refreshed copies with a TTL.

use super::{committed, config_text, parse_config, producer, redis_conn, send_event, user_event};
use serde_json::{json, Value};
use sluice_event::{EventType, Row};
use sluice_integration::sink::RunningSink;
use sluice_integration::{create_topic, redis_exists, redis_url, unique_name, wait};
use sluice_sinks::Sink;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_redis_invalidates_new_and_old_keys_and_refreshes() {
    let topic = unique_name("sink_redis");
    create_topic(&topic, 2).await.unwrap();
    let prefix = unique_name("u");
    let text = format!(
        "{}\n[rules.redis]\nkeys = [\"{prefix}:{{id}}\", \"{prefix}:email:{{email}}\"]\n\
         [[rules]]\nname = \"users-copy\"\ntarget = \"out\"\nmatch = {{ tables = [\"shop.users\"] }}\n\
         [rules.redis]\nkeys = [\"{prefix}:copy:{{id}}\"]\nmode = \"refresh\"\nttl_secs = 600\n",
        config_text(
            &topic,
            &unique_name("g"),
            &format!("type = \"redis\"\nurl = \"{}\"", redis_url()),
            ""
        )
    );
    let config = parse_config(&text);
    let mut conn = redis_conn().await;
    for k in ["1", "email:a@x", "email:b@x", "2", "email:z@x", "copy:2"] {
        let () = redis::cmd("SET")
            .arg(format!("{prefix}:{k}"))
            .arg("cached")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let p = producer();
    // User 1 changes email a -> b: both email keys and the id key must go.
    let mut upd = user_event(EventType::Update, 1, "b@x", 10);
    let mut old = Row::new();
    old.insert("email".into(), json!("a@x"));
    upd.old = Some(old);
    send_event(&p, &topic, &upd, None, None).await;
    // User 2 is deleted: its keys and its refreshed copy go.
    send_event(
        &p,
        &topic,
        &user_event(EventType::Delete, 2, "z@x", 11),
        None,
        None,
    )
    .await;
    // User 3 is inserted: the refresh rule writes its JSON copy with a TTL.
    send_event(
        &p,
        &topic,
        &user_event(EventType::Insert, 3, "c@x", 12),
        None,
        None,
    )
    .await;

    let sink = RunningSink::start(Sink::new(config.clone()));
    let copy3 = format!("{prefix}:copy:3");
    wait::until(90, "the refreshed copy of user 3", async || {
        redis_exists(&mut conn, &copy3).await
    })
    .await;
    wait::until(90, "all offsets committed", async || {
        let c = committed(&config).await;
        let total: i64 = c.iter().map(|o| o.unwrap_or(0)).sum();
        total == 3
    })
    .await;
    sink.stop().await.unwrap();
    for k in ["1", "email:a@x", "email:b@x", "2", "email:z@x", "copy:2"] {
        assert!(
            !redis_exists(&mut conn, &format!("{prefix}:{k}")).await,
            "{prefix}:{k} still cached"
        );
    }
    let copy: String = redis::cmd("GET")
        .arg(&copy3)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&copy).unwrap(),
        json!({"id":3,"email":"c@x"})
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg(&copy3)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 600, "{ttl}");
}
