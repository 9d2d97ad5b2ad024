//! Exactly once into Kafka: the publisher's Kafka transactions, each ending at a binlog
//! transaction boundary with the checkpoint that covers its events.
//!
//! A transaction holds the events of whole binlog transactions and, last, the checkpoint record
//! (compacted checkpoint topic, key = instance) at the boundary after them. Committing it makes
//! both visible to `read_committed` consumers at once; a capture that dies mid-transaction leaves
//! nothing visible, and whoever takes the instance over (same `transactional.id`) aborts what it
//! left open, reads the last committed checkpoint and continues from there with the same `seq`.

use crate::checkpoint::Checkpoint;
use crate::clock::now_ms;
use crate::error::{is_fenced, CaptureError};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long librdkafka may take to commit or abort a transaction before the capture restarts
/// from its checkpoint (the broker being down, say).
pub const END_TIMEOUT: Duration = Duration::from_secs(60);

/// The open transaction's bookkeeping.
pub struct Txn {
    /// The checkpoint topic.
    pub topic: String,
    /// The instance: the checkpoint record's key.
    pub instance: String,
    /// Written into every committed checkpoint.
    pub owner: String,
    /// Commit at the first boundary after the transaction has been open this long ...
    pub every: Duration,
    /// ... or holds this many messages.
    pub max_messages: u64,
    /// While nothing is published, commit the checkpoint again this often: a fresh checkpoint
    /// says the instance's capture is alive (a second capture refuses to start).
    pub keep_alive: Duration,
    open: bool,
    opened: Instant,
    /// Messages in the open transaction.
    in_txn: u64,
    /// Messages sent after the last boundary: the transaction cannot end before the next one.
    since_boundary: u64,
    /// The last boundary not yet committed.
    boundary: Option<Checkpoint>,
    committed: Option<Checkpoint>,
    last_commit: Instant,
}

/// What to do with the open transaction when the publisher stops.
#[derive(Debug, PartialEq, Eq)]
pub enum Finish {
    /// Everything sent ends at a boundary: commit it.
    Commit,
    /// Messages after the last boundary: abort (they are read again from the checkpoint).
    Abort,
    /// Nothing open.
    Nothing,
}

impl Txn {
    pub fn new(
        topic: String,
        instance: String,
        owner: String,
        every: Duration,
        max_messages: u64,
        keep_alive: Duration,
        from: Option<Checkpoint>,
    ) -> Txn {
        let now = Instant::now();
        Txn {
            topic,
            instance,
            owner,
            every,
            max_messages,
            keep_alive,
            open: false,
            opened: now,
            in_txn: 0,
            since_boundary: 0,
            boundary: None,
            committed: from,
            last_commit: now,
        }
    }

    /// Whether a transaction must begin before the next message.
    pub fn needs_begin(&self) -> bool {
        !self.open
    }

    /// A transaction began.
    pub fn began(&mut self) {
        self.open = true;
        self.opened = Instant::now();
        self.in_txn = 0;
    }

    /// A message was handed to the producer inside the open transaction.
    pub fn sent(&mut self) {
        self.in_txn += 1;
        self.since_boundary += 1;
    }

    /// A binlog transaction ended here: everything sent so far may be committed with `cp`.
    pub fn boundary(&mut self, cp: Checkpoint) {
        self.boundary = Some(cp);
        self.since_boundary = 0;
    }

    /// Whether to commit now: at a boundary, once the transaction is old or large enough; or,
    /// with nothing open, to save a checkpoint that moved (or to keep a fresh one).
    pub fn due(&self, now: Instant) -> bool {
        if self.since_boundary > 0 {
            return false;
        }
        if self.open {
            self.boundary.is_some()
                && (now.duration_since(self.opened) >= self.every
                    || self.in_txn >= self.max_messages)
        } else {
            (self.boundary.is_some() || self.committed.is_some())
                && now.duration_since(self.last_commit) >= self.keep_alive
        }
    }

    /// The checkpoint the next commit writes: the last boundary, else the last committed one
    /// again (keep-alive), stamped with the owner and the time.
    pub fn next_checkpoint(&self, now_ms: i64) -> Option<Checkpoint> {
        let mut cp = self.boundary.clone().or_else(|| self.committed.clone())?;
        cp.saved_ms = now_ms;
        cp.owner = Some(self.owner.clone());
        Some(cp)
    }

    /// The transaction holding `cp` was committed.
    pub fn committed(&mut self, cp: Checkpoint) {
        self.open = false;
        self.in_txn = 0;
        self.boundary = None;
        self.committed = Some(cp);
        self.last_commit = Instant::now();
    }

    /// What the publisher does with the open transaction when it stops.
    pub fn finish(&self) -> Finish {
        match (self.open, self.since_boundary, &self.boundary) {
            (_, n, _) if n > 0 => Finish::Abort,
            (true, _, Some(_)) => Finish::Commit,
            (true, _, None) => Finish::Abort,
            (false, _, Some(_)) => Finish::Commit,
            (false, _, None) => Finish::Nothing,
        }
    }

    /// `error` (from `what`) as the capture reports it: [`CaptureError::Fenced`] when a newer
    /// producer of the instance exists (`fatal` is the producer's fatal error, if any).
    pub fn failure(
        &self,
        what: impl Into<String>,
        error: KafkaError,
        fatal: Option<rdkafka::types::RDKafkaErrorCode>,
    ) -> CaptureError {
        let fenced_fatal = fatal.is_some_and(|code| {
            use rdkafka::types::RDKafkaErrorCode as C;
            matches!(
                code,
                C::Fenced | C::ProducerFenced | C::InvalidProducerEpoch
            )
        });
        if fenced_fatal || is_fenced(&error) {
            CaptureError::Fenced {
                instance: self.instance.clone(),
                transactional_id: format!("sluice-capture.{}", self.instance),
            }
        } else {
            CaptureError::Kafka {
                what: what.into(),
                source: error,
            }
        }
    }
}

impl super::Publisher {
    /// Begins a transaction unless one is open (transactional publishing only).
    pub(super) async fn begin_if_needed(&mut self) -> Result<(), CaptureError> {
        let Some(t) = self.txn.as_mut() else {
            return Ok(());
        };
        if !t.needs_begin() {
            return Ok(());
        }
        if let Err(e) = self.fast.begin_transaction() {
            let fatal = self.fast.client().fatal_error().map(|(c, _)| c);
            return Err(t.failure("beginning a transaction", e, fatal));
        }
        t.began();
        Ok(())
    }

    /// Sends the checkpoint record and commits the transaction with it. librdkafka flushes
    /// every message of the transaction first (serving their delivery reports), so this waits
    /// for Kafka's acknowledgements, off the async threads.
    pub(super) async fn commit(&mut self) -> Result<(), CaptureError> {
        let now = now_ms();
        let Some(cp) = self.txn.as_ref().and_then(|t| t.next_checkpoint(now)) else {
            return Ok(());
        };
        self.begin_if_needed().await?;
        let Some(t) = self.txn.as_ref() else {
            return Ok(());
        };
        let value = serde_json::to_vec(&cp)
            .map_err(|e| CaptureError::Topic(format!("encoding checkpoint: {e}")))?;
        let (topic, key) = (t.topic.clone(), t.instance.clone());
        let id = self.acks.register(1);
        let mut record = BaseRecord::with_opaque_to(&topic, id as usize)
            .key(&key)
            .payload(&value);
        loop {
            match self.fast.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    if !self.serve() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                Err((e, _)) => {
                    self.acks.unregister_from(id);
                    return Err(self.failure(format!("sending the checkpoint to {topic}"), e));
                }
            }
        }
        let fast = Arc::clone(&self.fast);
        let started = Instant::now();
        let done = tokio::task::spawn_blocking(move || fast.commit_transaction(END_TIMEOUT))
            .await
            .map_err(|e| CaptureError::Topic(format!("committing a transaction: {e}")))?;
        if let Err(e) = done {
            return Err(self.failure("committing a transaction".into(), e));
        }
        metrics::counter!("sluice_capture_transactions_total").increment(1);
        metrics::histogram!("sluice_capture_transaction_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::gauge!("sluice_capture_last_checkpoint_timestamp_seconds")
            .set(now as f64 / 1000.0);
        crate::tally::get().checkpoint_saved(now);
        if let Some(t) = self.txn.as_mut() {
            t.committed(cp);
        }
        Ok(())
    }

    /// At the end of a run: commits what ends at a boundary, aborts the rest (read again from
    /// the committed checkpoint by whoever captures the instance next).
    pub(super) async fn end_transaction(&mut self) -> Result<(), CaptureError> {
        let finish = match &self.txn {
            Some(t) => t.finish(),
            None => return Ok(()),
        };
        match finish {
            Finish::Commit => self.commit().await,
            Finish::Nothing => Ok(()),
            Finish::Abort => {
                let fast = Arc::clone(&self.fast);
                let done = tokio::task::spawn_blocking(move || fast.abort_transaction(END_TIMEOUT))
                    .await
                    .map_err(|e| CaptureError::Topic(format!("aborting a transaction: {e}")))?;
                tracing::info!("aborted the open transaction; its events are read again from the last committed checkpoint");
                done.map_err(|e| self.failure("aborting a transaction".into(), e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn() -> Txn {
        Txn::new(
            "cp".into(),
            "inst".into(),
            "me".into(),
            Duration::from_millis(100),
            3,
            Duration::from_secs(1),
            None,
        )
    }

    fn cp(seq: i64) -> Checkpoint {
        Checkpoint {
            file: "b.1".into(),
            pos: 4 + seq as u64,
            seq,
            ..Checkpoint::default()
        }
    }

    #[test]
    fn commits_only_at_a_boundary_once_old_or_large() {
        let mut t = txn();
        let start = Instant::now();
        assert!(!t.due(start + Duration::from_secs(5)), "nothing to commit");
        assert_eq!(t.finish(), Finish::Nothing);
        t.began();
        t.sent();
        t.sent();
        // Mid-transaction: never due, and stopping now aborts.
        assert!(!t.due(Instant::now() + Duration::from_secs(5)));
        assert_eq!(t.finish(), Finish::Abort);
        t.boundary(cp(2));
        assert!(!t.due(Instant::now()), "young and small");
        assert!(t.due(Instant::now() + Duration::from_millis(150)), "old");
        assert_eq!(t.finish(), Finish::Commit);
        t.sent();
        t.boundary(cp(3));
        assert!(t.due(Instant::now()), "3 messages: large");
        let next = t.next_checkpoint(77).unwrap();
        assert_eq!((next.seq, next.saved_ms), (3, 77));
        assert_eq!(next.owner.as_deref(), Some("me"));
        t.committed(next);
        assert!(t.needs_begin());
        assert!(!t.due(Instant::now()), "keep-alive waits a second");
        assert!(t.due(Instant::now() + Duration::from_secs(2)));
        assert_eq!(t.next_checkpoint(99).unwrap().seq, 3);
    }

    #[test]
    fn fencing_is_told_apart_from_other_failures() {
        use rdkafka::types::RDKafkaErrorCode as C;
        let t = txn();
        let fenced = t.failure(
            "x",
            KafkaError::MessageProduction(C::Fatal),
            Some(C::ProducerFenced),
        );
        assert!(matches!(fenced, CaptureError::Fenced { .. }), "{fenced}");
        assert!(fenced.to_string().contains("sluice-capture.inst"));
        let other = t.failure("x", KafkaError::MessageProduction(C::MessageTimedOut), None);
        assert!(matches!(other, CaptureError::Kafka { .. }));
        assert!(other.is_transient());
    }
}
