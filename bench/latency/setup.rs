//! The `setup` and `wait-topic` commands: tables, seeded rows and index before the capture starts.

use crate::opensearch::es_client;
use crate::plan::{self, Plan, TABLE_DDL};
use crate::{mysql, Common};
use anyhow::{bail, Context as _};
use elasticsearch::indices::IndicesCreateParts;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::ClientConfig;
use serde_json::json;
use std::time::{Duration, Instant};

pub async fn setup(c: &Common) -> anyhow::Result<()> {
    let plan = Plan::new(c)?;
    let mut conn = mysql::connect(&c.mysql_url).await?;
    for db in [&c.source_db, &c.replica_db] {
        sqlx::raw_sql(&format!(
            "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.items {TABLE_DDL}"
        ))
        .execute(&mut conn)
        .await
        .with_context(|| format!("create {db}.items"))?;
    }
    // The UPDATEs' rows, before the capture's start: in the replica already, as if it had been
    // in step before the run.
    let src = &c.source_db;
    for lo in (1..=plan.seeded).step_by(1000) {
        let hi = (lo + 999).min(plan.seeded);
        sqlx::raw_sql(&plan::insert(src, (lo..=hi).map(|id| (id, 0))))
            .execute(&mut conn)
            .await
            .context("seed the source table")?;
    }
    sqlx::raw_sql(&format!(
        "INSERT INTO `{}`.items SELECT * FROM `{src}`.items",
        c.replica_db
    ))
    .execute(&mut conn)
    .await
    .context("copy the seeded rows into the replica")?;
    // The index's settings are the server's defaults (refresh_interval 1 s); only wseq is mapped
    // ahead, so the probe's range query works before the first document arrives.
    let es = es_client(&c.es_url)?;
    let resp = es
        .indices()
        .create(IndicesCreateParts::Index(&c.index))
        .body(json!({"mappings": {"properties": {"wseq": {"type": "long"}}}}))
        .send()
        .await
        .context("create the index")?;
    if !resp.status_code().is_success() {
        bail!(
            "create index {}: {}",
            c.index,
            resp.text().await.unwrap_or_default()
        );
    }
    let (file, pos): (String, u64) = sqlx::query_as("SHOW MASTER STATUS")
        .fetch_one(&mut conn)
        .await
        .context("SHOW MASTER STATUS (is the binlog on?)")?;
    println!("{file}:{pos}");
    Ok(())
}

pub fn wait_topic(brokers: &str, topic: &str, timeout: Duration) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            if md
                .topics()
                .iter()
                .any(|t| t.error().is_none() && !t.partitions().is_empty())
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("topic {topic} does not exist on {brokers} after {timeout:?}; is sluice-capture running?");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
