//! One smoke test per local service: each really talks to it, so a broken `services.sh up`
//! fails here first with the service's name in the test name.

use mysql_async::prelude::Queryable;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use sluice_integration::{
    create_topic, es, es_url, kafka_brokers, mysql, mysql_url, redis_url, unique_name,
};
use std::time::Duration;

#[tokio::test]
async fn mariadb_has_row_based_binlog() {
    let pool = mysql_async::Pool::new(mysql_url().as_str());
    let mut conn = pool.get_conn().await.expect("connect to MariaDB");
    let row: (String, String, String, String) = conn
        .query_first("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row,
        ("1".into(), "ROW".into(), "FULL".into(), "FULL".into())
    );
    let version: String = conn.query_first("SELECT VERSION()").await.unwrap().unwrap();
    assert!(version.contains("MariaDB"), "{version}");
    // The binlog really records row events: a write moves the binlog position.
    let db = unique_name("smoke");
    let before = mysql::binlog_end(&mut conn).await;
    mysql::create_database(&mut conn, &db, &["t (id INT PRIMARY KEY)"]).await;
    conn.query_drop(format!("INSERT INTO {db}.t VALUES (1)"))
        .await
        .unwrap();
    let after = mysql::binlog_end(&mut conn).await;
    assert!(
        after > before,
        "binlog did not advance: {before:?} -> {after:?}"
    );
    conn.query_drop(format!("DROP DATABASE {db}"))
        .await
        .unwrap();
    drop(conn);
    pool.disconnect().await.unwrap();
}

#[tokio::test]
async fn kafka_round_trip_with_group_commit() {
    let topic = unique_name("smoke");
    create_topic(&topic, 2).await.unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("acks", "all")
        .create()
        .unwrap();
    for i in 0..4 {
        let payload = format!("value-{i}");
        let key = format!("key-{i}");
        producer
            .send(
                FutureRecord::to(&topic)
                    .payload(&payload)
                    .key(&key)
                    .partition(i % 2),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }

    let group = unique_name("smoke_group");
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("no message within 30 s")
            .unwrap();
        seen.push(String::from_utf8(msg.payload().unwrap().to_vec()).unwrap());
        consumer.commit_message(&msg, CommitMode::Sync).unwrap();
    }
    seen.sort();
    assert_eq!(seen, ["value-0", "value-1", "value-2", "value-3"]);

    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&topic, 0);
    tpl.add_partition(&topic, 1);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    for p in 0..2 {
        let offset = committed.find_partition(&topic, p).unwrap().offset();
        assert_eq!(offset, Offset::Offset(2), "partition {p}");
    }
}

#[tokio::test]
async fn redis_set_get() {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = unique_name("smoke");
    let () = redis::cmd("SET")
        .arg(&key)
        .arg("v1")
        .query_async(&mut conn)
        .await
        .unwrap();
    let got: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(got, "v1");
    let removed: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(removed, 1);
}

#[tokio::test]
async fn opensearch_bulk_then_search() {
    let index = unique_name("smoke");
    let http = reqwest::Client::new();
    let body = format!(
        "{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"1\"}}}}\n{{\"name\":\"sluice\",\"n\":1}}\n\
         {{\"index\":{{\"_index\":\"{index}\",\"_id\":\"2\"}}}}\n{{\"name\":\"other\",\"n\":2}}\n"
    );
    let bulk = es::json(
        http.post(format!("{}/_bulk?refresh=true", es_url()))
            .header("content-type", "application/x-ndjson")
            .body(body),
    )
    .await;
    assert_eq!(bulk["errors"], false, "{bulk}");
    let found = es::json(
        http.post(format!("{}/{index}/_search", es_url()))
            .json(&serde_json::json!({"query": {"match": {"name": "sluice"}}})),
    )
    .await;
    let hits = found["hits"]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{found}");
    assert_eq!(hits[0]["_id"], "1");
    assert_eq!(hits[0]["_source"]["n"], 1);
    // The node keeps its data across runs: a passed test leaves nothing behind.
    es::delete_indexes(&[&index]).await;
}
