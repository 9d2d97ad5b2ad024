//! Kafka acknowledgements as one contiguous watermark over the messages, in send order.
//!
//! `low` is the count of messages that are all acknowledged (acks arrive out of order across
//! partitions). A checkpoint taken after message `n` may be saved once `low >= n`.

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message as _};
use rdkafka::producer::ProducerContext;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Shared between the publisher, which registers sends, and librdkafka's delivery callback,
/// which the publisher's own polling runs (`publish::Publisher`).
#[derive(Default)]
pub struct Acks {
    window: Mutex<Window>,
}

#[derive(Default)]
struct Window {
    /// Every message numbered below `low` is acknowledged.
    low: u64,
    /// For messages `low..`: acknowledged yet, and when it was sent (one message in 64, the
    /// ones whose delivery time is recorded; reading the clock for every message cost 1-2%).
    pending: VecDeque<(bool, Option<Instant>)>,
    failed: Option<(KafkaError, String)>,
    /// Delivery reports handled so far, failures included.
    reports: u64,
}

impl Acks {
    fn lock(&self) -> MutexGuard<'_, Window> {
        // A panic while holding the lock cannot leave the window inconsistent (plain counters).
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers the next `n` messages; returns the first number. Call before handing them to
    /// the producer.
    pub fn register(&self, n: usize) -> u64 {
        let now = Instant::now();
        let mut w = self.lock();
        let first = w.low + w.pending.len() as u64;
        for id in first..first + n as u64 {
            w.pending
                .push_back((false, id.is_multiple_of(64).then_some(now)));
        }
        first
    }

    /// Forgets the registrations from `id` on (the producer refused message `id`).
    pub fn unregister_from(&self, id: u64) {
        let mut w = self.lock();
        let keep = id.saturating_sub(w.low) as usize;
        w.pending.truncate(keep);
    }

    /// Records the acknowledgement of message `id`.
    pub fn ack(&self, id: u64) {
        let mut w = self.lock();
        w.reports += 1;
        let Some(i) = id.checked_sub(w.low).map(|i| i as usize) else {
            return;
        };
        let Some(slot) = w.pending.get_mut(i) else {
            return;
        };
        slot.0 = true;
        // One message in 64 is timed: the exporter keeps every sample until the next scrape.
        let latency = slot.1.map(|sent| sent.elapsed().as_secs_f64());
        while w.pending.front().is_some_and(|s| s.0) {
            w.pending.pop_front();
            w.low += 1;
        }
        drop(w);
        if let Some(secs) = latency {
            metrics::histogram!("sluice_capture_kafka_delivery_seconds").record(secs);
        }
    }

    /// Records a failed delivery; the publisher stops on it.
    pub fn fail(&self, error: KafkaError, what: String) {
        metrics::counter!("sluice_capture_kafka_errors_total").increment(1);
        crate::tally::get().error();
        let mut w = self.lock();
        if w.failed.is_none() {
            w.failed = Some((error, what));
        }
        w.reports += 1;
    }

    /// The count of delivery reports handled so far (acknowledgements and failures).
    pub fn reports(&self) -> u64 {
        self.lock().reports
    }

    /// The watermark and the number of messages still unacknowledged, or the first failure.
    pub fn state(&self) -> Result<(u64, usize), (KafkaError, String)> {
        let w = self.lock();
        match &w.failed {
            Some((e, what)) => Err((e.clone(), what.clone())),
            None => Ok((w.low, w.pending.len())),
        }
    }
}

/// The producer context that feeds delivery reports into [`Acks`]; the opaque is the number.
pub struct AckContext(pub Arc<Acks>);

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        match result {
            Ok(_) => self.0.ack(id as u64),
            Err((e, msg)) => self.0.fail(
                e.clone(),
                format!(
                    "delivering to {} partition {}",
                    msg.topic(),
                    msg.partition()
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_waits_for_the_oldest() {
        let acks = Acks::default();
        assert_eq!(acks.register(3), 0);
        assert_eq!(acks.register(1), 3);
        acks.ack(2);
        acks.ack(1);
        assert_eq!(acks.state().unwrap(), (0, 4));
        acks.ack(0);
        assert_eq!(acks.state().unwrap(), (3, 1));
        acks.ack(3);
        acks.ack(3);
        assert_eq!(acks.state().unwrap(), (4, 0));
        assert_eq!(acks.reports(), 5);
        assert_eq!(acks.register(3), 4);
        acks.unregister_from(5);
        assert_eq!(acks.state().unwrap(), (4, 1));
        assert_eq!(acks.register(1), 5);
        acks.fail(KafkaError::Canceled, "x".into());
        assert!(acks.state().is_err());
    }
}
