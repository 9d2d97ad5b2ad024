//! A client context that keeps the first definite problem, and requests retried until one shows.

use super::KafkaSecurityError;
use crate::KafkaConfig;
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, KafkaResult};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A client context that keeps the first definite connection problem librdkafka reports (see
/// [`KafkaConfig::classify`]) and logs everything as the default context does. Clones share
/// what they saw, so one can go to the client and one stay with the caller.
///
/// librdkafka's reports reach a context only while the client is polled: a producer's or
/// consumer's own thread does that, a `BaseConsumer` must be polled by its caller ([`watched`]).
#[derive(Clone)]
pub struct KafkaWatch {
    inner: Arc<Inner>,
}

struct Inner {
    kafka: KafkaConfig,
    seen: Mutex<Option<KafkaSecurityError>>,
}

impl KafkaWatch {
    /// A watch for clients made from `kafka`.
    pub fn new(kafka: &KafkaConfig) -> KafkaWatch {
        KafkaWatch {
            inner: Arc::new(Inner {
                kafka: kafka.clone(),
                seen: Mutex::new(None),
            }),
        }
    }

    /// The first definite problem reported so far.
    pub fn failure(&self) -> Option<KafkaSecurityError> {
        self.lock().clone()
    }

    /// `error` as the definite problem it is, if it is one (a client that could not be created
    /// because of a TLS file), else `error` itself.
    pub fn explain(&self, error: KafkaError) -> KafkaFailure {
        match self.inner.kafka.classify(&error.to_string()) {
            Some(e) => KafkaFailure::Settings(e),
            None => KafkaFailure::Request(error),
        }
    }

    fn observe(&self, report: &str) {
        let mut seen = self.lock();
        if seen.is_none() {
            *seen = self.inner.kafka.classify(report);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<KafkaSecurityError>> {
        // Only an `Option` is kept under the lock: a panic cannot leave it half-written.
        self.inner.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for KafkaWatch {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // The failed connection is logged (`FAIL`) before the error callback runs, which may
        // run only on a later poll.
        if matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
                | RDKafkaLogLevel::Warning
        ) {
            self.observe(log_message);
        }
        DefaultClientContext.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.observe(reason);
        DefaultClientContext.error(error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for KafkaWatch {}

/// Why a [`watched`] request failed.
#[derive(Debug)]
pub enum KafkaFailure {
    /// A setting is wrong (definite).
    Settings(KafkaSecurityError),
    /// The request failed or timed out for another reason (the broker may be down or slow).
    Request(KafkaError),
}

/// Longest single attempt of a [`watched`] request: how soon a definite problem is noticed.
const SLICE: Duration = Duration::from_millis(500);

/// Runs the blocking librdkafka `request` (given the time it may take) again and again within
/// `within`, until it succeeds or `watch` has seen a definite problem; `serve` polls the client
/// so its reports reach `watch` (a no-op for clients with a thread of their own).
pub fn watched<T>(
    watch: &KafkaWatch,
    within: Duration,
    mut serve: impl FnMut(),
    mut request: impl FnMut(Duration) -> KafkaResult<T>,
) -> Result<T, KafkaFailure> {
    let deadline = Instant::now() + within;
    loop {
        let started = Instant::now();
        let slice = deadline.saturating_duration_since(started).min(SLICE);
        let error = match request(slice) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        serve();
        if let Some(e) = watch.failure() {
            return Err(KafkaFailure::Settings(e));
        }
        if Instant::now() >= deadline {
            return Err(KafkaFailure::Request(error));
        }
        // An error that came back at once is not retried in a busy loop.
        if started.elapsed() < SLICE / 5 {
            std::thread::sleep(SLICE / 5);
        }
    }
}
