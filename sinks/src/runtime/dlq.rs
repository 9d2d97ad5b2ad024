//! Dead letters: the original message, its headers, and why it could not be written.

use super::prepare::Failure;
use super::Msg;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use std::time::Duration;

/// Header with the reason a message was dead-lettered.
pub const HEADER_ERROR: &str = "sluice-error";
/// Header with the kind of failure: `decode`, `key`, `mapping`, `rejected` or `retries`.
pub const HEADER_ERROR_CLASS: &str = "sluice-error-class";
/// Header with the name of the rule that failed (absent when the message itself is bad).
pub const HEADER_RULE: &str = "sluice-rule";
/// Header with the name of the target that rejected the item (absent when none did).
pub const HEADER_TARGET: &str = "sluice-target";
/// Header with the topic the message was read from.
pub const HEADER_ORIGINAL_TOPIC: &str = "sluice-original-topic";
/// Header with the partition the message was read from, in decimal.
pub const HEADER_ORIGINAL_PARTITION: &str = "sluice-original-partition";
/// Header with the offset of the message, in decimal.
pub const HEADER_ORIGINAL_OFFSET: &str = "sluice-original-offset";

/// How long one dead-letter produce may wait for the broker before it is retried.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// One message on its way to the dead-letter topic.
pub struct DeadLetter<'a> {
    pub topic: &'a str,
    pub original_topic: &'a str,
    pub partition: i32,
    pub msg: &'a Msg,
    pub failure: &'a Failure,
}

impl DeadLetter<'_> {
    /// The headers: the original ones, then the `sluice-error`... ones.
    pub fn headers(&self) -> Vec<(String, Vec<u8>)> {
        let mut h: Vec<(String, Vec<u8>)> = self
            .msg
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_vec()))
            .collect();
        h.push((
            HEADER_ERROR.into(),
            self.failure.reason.clone().into_bytes(),
        ));
        h.push((
            HEADER_ERROR_CLASS.into(),
            self.failure.class.as_bytes().to_vec(),
        ));
        if let Some(rule) = &self.failure.rule {
            h.push((HEADER_RULE.into(), rule.clone().into_bytes()));
        }
        if let Some(target) = &self.failure.target {
            h.push((HEADER_TARGET.into(), target.clone().into_bytes()));
        }
        h.push((
            HEADER_ORIGINAL_TOPIC.into(),
            self.original_topic.as_bytes().to_vec(),
        ));
        h.push((
            HEADER_ORIGINAL_PARTITION.into(),
            self.partition.to_string().into_bytes(),
        ));
        h.push((
            HEADER_ORIGINAL_OFFSET.into(),
            self.msg.offset.to_string().into_bytes(),
        ));
        h
    }

    /// Produces the letter and waits for the broker's acknowledgement.
    pub async fn send(&self, producer: &FutureProducer) -> Result<(), KafkaError> {
        let mut headers = OwnedHeaders::new();
        let list = self.headers();
        for (k, v) in &list {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(self.topic).headers(headers);
        if let Some(k) = self.msg.key() {
            record = record.key(k);
        }
        if let Some(p) = self.msg.payload() {
            record = record.payload(p);
        }
        producer
            .send(record, Timeout::After(SEND_TIMEOUT))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_keep_the_original_ones_and_say_where_from() {
        let headers: [(&str, &[u8]); 1] = [("sluice-seq", b"7")];
        let msg = Msg::new(42, None, Some(b"{}"), headers.into_iter());
        let failure = Failure {
            rule: Some("users".into()),
            target: None,
            reason: "bad".into(),
            stop: false,
            class: "mapping",
        };
        let letter = DeadLetter {
            topic: "t.dlq",
            original_topic: "t",
            partition: 3,
            msg: &msg,
            failure: &failure,
        };
        let h: Vec<(String, String)> = letter
            .headers()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
            .collect();
        let want: Vec<(String, String)> = [
            ("sluice-seq", "7"),
            ("sluice-error", "bad"),
            ("sluice-error-class", "mapping"),
            ("sluice-rule", "users"),
            ("sluice-original-topic", "t"),
            ("sluice-original-partition", "3"),
            ("sluice-original-offset", "42"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(h, want);
    }
}
