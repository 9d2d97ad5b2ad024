//! Topic administration: names from the template, partition counts, creating missing topics.

use crate::clients::{admin_config, Producer, METADATA_TIMEOUT};
use crate::config::CaptureConfig;
use crate::error::CaptureError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::Producer as _;
use sluice_config::kafka::watched;
use std::collections::HashMap;
use std::time::Duration;

/// Topic names from the template and their partition counts.
pub struct Topics {
    template: String,
    instance: String,
    partitions: HashMap<String, u32>,
    create: Option<(i32, i32)>,
    brokers: String,
    admin: ClientConfig,
}

impl Topics {
    pub fn new(cfg: &CaptureConfig) -> Topics {
        Topics {
            template: cfg.publish.topic.clone(),
            instance: cfg.instance.clone(),
            partitions: HashMap::new(),
            create: cfg
                .publish
                .create_topics
                .then_some((cfg.publish.partitions, cfg.publish.replication_factor)),
            brokers: cfg.kafka.brokers.join(","),
            admin: admin_config(cfg),
        }
    }

    /// The topic of events of `database.table`.
    pub fn name_of(&self, database: &str, table: &str) -> String {
        render(&self.template, &self.instance, database, table)
    }

    /// The topic when the template does not depend on the table (checked at start-up).
    pub fn fixed_name(&self) -> Option<String> {
        (!self.template.contains("{database}") && !self.template.contains("{table}"))
            .then(|| render(&self.template, &self.instance, "", ""))
    }

    /// Records the partition count of `topic`, as another client's metadata listed it.
    pub fn known(&mut self, topic: &str, partitions: u32) {
        self.partitions.insert(topic.to_owned(), partitions);
    }

    /// Partition count of `topic`, creating it if configured; a missing topic is a clear error.
    pub async fn partitions(
        &mut self,
        producer: &Producer,
        topic: &str,
    ) -> Result<u32, CaptureError> {
        if let Some(n) = self.partitions.get(topic) {
            return Ok(*n);
        }
        let mut n = metadata_partitions(producer, topic).await?;
        if n == 0 {
            let Some((partitions, replication)) = self.create else {
                return Err(CaptureError::Topic(format!(
                    "topic {topic} does not exist on {}; create it (kafka-topics.sh --create --topic {topic} --partitions 6) or set publish.create_topics = true",
                    self.brokers
                )));
            };
            create_topic(&self.admin, topic, partitions, replication, &[]).await?;
            for _ in 0..50 {
                n = metadata_partitions(producer, topic).await?;
                if n > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if n == 0 {
                return Err(CaptureError::Topic(format!(
                    "topic {topic} was created but does not appear in the metadata of {}",
                    self.brokers
                )));
            }
        }
        self.partitions.insert(topic.to_owned(), n);
        Ok(n)
    }
}

fn render(template: &str, instance: &str, database: &str, table: &str) -> String {
    template
        .replace("{instance}", instance)
        .replace("{database}", database)
        .replace("{table}", table)
}

/// Partitions of `topic` per the brokers' metadata; 0 when it does not exist.
async fn metadata_partitions(producer: &Producer, topic: &str) -> Result<u32, CaptureError> {
    let p = producer.clone();
    let t = topic.to_owned();
    let md = tokio::task::spawn_blocking(move || {
        watched(
            &p.watch,
            METADATA_TIMEOUT,
            || {},
            |timeout| p.client.client().fetch_metadata(Some(&t), timeout),
        )
        .map(|md| partition_count(&md, &t).unwrap_or(0))
    })
    .await
    .map_err(|e| CaptureError::Topic(format!("metadata lookup for {topic} failed: {e}")))?;
    md.map_err(|f| CaptureError::kafka(format!("reading metadata of topic {topic}"), f))
}

/// Creates `topic` with the producer's connection settings; an existing topic is fine.
pub async fn create_topic(
    admin: &ClientConfig,
    topic: &str,
    partitions: i32,
    replication: i32,
    config: &[(&str, &str)],
) -> Result<(), CaptureError> {
    let admin: AdminClient<DefaultClientContext> =
        admin.create().map_err(|source| CaptureError::Kafka {
            what: "creating an admin client".into(),
            source,
        })?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    for (k, v) in config {
        new = new.set(k, v);
    }
    let results = admin
        .create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(|source| CaptureError::Kafka {
            what: format!("creating topic {topic}"),
            source,
        })?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(CaptureError::Topic(format!(
                    "creating topic {t} failed: {code}; create it by hand or check the user's CREATE permission"
                )))
            }
        }
    }
    Ok(())
}

/// Partitions of `topic` in `md`; `None` when it is missing or has an error.
pub(crate) fn partition_count(md: &rdkafka::metadata::Metadata, topic: &str) -> Option<u32> {
    md.topics()
        .iter()
        .find(|x| x.name() == topic && x.error().is_none())
        .map(|x| x.partitions().len() as u32)
        .filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_templates() {
        assert_eq!(
            render("sluice.{instance}", "shop-main", "d", "t"),
            "sluice.shop-main"
        );
        assert_eq!(
            render("{instance}.{database}.{table}", "i", "d", "t"),
            "i.d.t"
        );
    }
}
