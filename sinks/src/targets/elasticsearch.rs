//! The Elasticsearch/OpenSearch target: documents from rules through the `_bulk` API,
//! versioned by the event's `seq` (`version_type = external_gte`; in mode `upsert` a script
//! compares it with the one kept in the document), one outcome per bulk item.
//! Users' documentation: docs/elasticsearch.md.

mod config;
mod encoder;
pub mod reindex;
mod retry;
mod service;

pub use config::{
    DeleteMode, ElasticsearchConfig, ElasticsearchRule, ElasticsearchRuleConfig, Mode,
    DEFAULT_ES_TIMEOUT_MS,
};
pub use encoder::{encode, Action, Op, SEQ_FIELD};
pub use reindex::{reindex, Reindex, ReindexError, Report};
pub use service::{ensure_index, name_kind, replace_index_with_alias, swap_alias, NameKind};

use super::{Item, Outcome, TargetError, Write};
use elasticsearch::Elasticsearch;
use retry::{classify, is_pressure, Failure, ItemFailure};
use service::PingError;
use sluice_config::Problems;
use sluice_rules::RuleSet;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Under pressure the items per request are halved down to this; success doubles them back
/// until the runtime's batch is sent whole again.
const MIN_CHUNK: usize = 1;
/// Above this many items per request the limit is lifted altogether.
const UNLIMITED_FROM: usize = 8_192;
/// How long a versioned item acknowledged by a write that also had retries is remembered, so
/// the runtime's re-send of it can be answered without sending it again.
const ACK_TTL: Duration = Duration::from_secs(300);
/// At most this many such acknowledgements are kept.
const ACK_MAX: usize = 100_000;

/// A connected Elasticsearch/OpenSearch target with the settings of every rule aimed at it.
pub struct ElasticsearchTarget {
    name: String,
    address: String,
    client: Elasticsearch,
    rules: HashMap<usize, ElasticsearchRule>,
    /// Items per bulk request; 0 = the whole batch (no pressure seen lately).
    chunk: AtomicUsize,
    /// (rule, id, seq) of versioned items written by a write that returned some `Retry`.
    acked: Mutex<HashMap<(usize, String, i64), Instant>>,
}

/// One encoded item: its index in the batch, its bytes in the body, its actions.
struct Encoded {
    item: usize,
    bytes: Range<usize>,
    actions: Vec<Action>,
}

impl ElasticsearchTarget {
    /// Builds the client for `config`, compiles the rules aimed at `name`, and creates the
    /// indexes of rules that have `create_index` if they are missing.
    pub async fn connect(
        name: &str,
        config: &ElasticsearchConfig,
        rules: &RuleSet,
    ) -> Result<ElasticsearchTarget, TargetError> {
        let mut compiled = HashMap::new();
        let mut problems = Problems::default();
        for i in 0..rules.len() {
            let rule = rules.rule(i);
            if rule.target() == name {
                if let Some(r) =
                    ElasticsearchRule::parse(&format!("rules[{i}]"), rule, &mut problems)
                {
                    compiled.insert(i, r);
                }
            }
        }
        if !problems.is_empty() {
            return Err(TargetError::Config {
                target: name.to_owned(),
                message: format!("invalid rule settings:\n{problems}"),
            });
        }
        // URLs carry no credentials (validation refuses them), so they can be shown.
        let address = config.urls.join(",");
        let client = service::client(config).map_err(|message| TargetError::Config {
            target: name.to_owned(),
            message,
        })?;
        let target = ElasticsearchTarget {
            name: name.to_owned(),
            address,
            client,
            rules: compiled,
            chunk: AtomicUsize::new(0),
            acked: Mutex::new(HashMap::new()),
        };
        target.create_indexes().await?;
        Ok(target)
    }

    /// The client, for index management (`sluice-sink reindex`).
    pub fn client(&self) -> &Elasticsearch {
        &self.client
    }

    async fn create_indexes(&self) -> Result<(), TargetError> {
        let mut rules: Vec<_> = self.rules.iter().collect();
        rules.sort_by_key(|(i, _)| **i);
        for (_, rule) in rules {
            let Some(body) = &rule.create_index else {
                continue;
            };
            let index = rule.index.as_str().replace("{{", "{").replace("}}", "}");
            let created = ensure_index(&self.client, &index, body)
                .await
                .map_err(|reason| self.connect_error(reason))?;
            if created {
                tracing::info!(target_name = %self.name, index, "created index");
            }
        }
        Ok(())
    }

    fn connect_error(&self, reason: String) -> TargetError {
        TargetError::Connect {
            target: self.name.clone(),
            address: self.address.clone(),
            reason,
        }
    }

    /// Items per request now: the whole batch unless the server pushed back.
    fn chunk_limit(&self) -> usize {
        match self.chunk.load(Ordering::Relaxed) {
            0 => usize::MAX,
            n => n,
        }
    }

    /// The server pushed back on a request of `sent` items: send half as many next time.
    fn shrink(&self, sent: usize) {
        let new = (sent / 2).max(MIN_CHUNK);
        let old = self.chunk_limit();
        if new < old {
            self.chunk.store(new, Ordering::Relaxed);
            tracing::info!(target_name = %self.name, items = new, "elasticsearch pushed back; smaller bulk requests");
            metrics::gauge!("sluice_sink_es_bulk_limit", "target" => self.name.clone())
                .set(new as f64);
        }
    }

    /// A request of `sent` items went through without pressure: allow twice as many.
    fn grow(&self, sent: usize) {
        let limit = self.chunk.load(Ordering::Relaxed);
        if limit != 0 && sent >= limit {
            let new = limit.saturating_mul(2);
            let new = if new >= UNLIMITED_FROM { 0 } else { new };
            self.chunk.store(new, Ordering::Relaxed);
            metrics::gauge!("sluice_sink_es_bulk_limit", "target" => self.name.clone())
                .set(new as f64);
        }
    }

    /// True if this versioned item was acknowledged by an earlier write.
    fn was_acked(&self, item: &Item) -> bool {
        let Ok(acked) = self.acked.lock() else {
            return false;
        };
        if acked.is_empty() {
            return false;
        }
        let key = (item.rule, item.mapped.id.clone(), item.mapped.seq);
        matches!(acked.get(&key), Some(at) if at.elapsed() < ACK_TTL)
    }

    /// Forgets acknowledgements the runtime will not ask about again.
    fn forget_acked(&self, items: &[Item], which: &[usize]) {
        if let Ok(mut acked) = self.acked.lock() {
            for &i in which {
                let item = &items[i];
                acked.remove(&(item.rule, item.mapped.id.clone(), item.mapped.seq));
            }
        }
    }

    fn remember_acked(&self, items: &[Item], done: impl Iterator<Item = usize>) {
        let Ok(mut acked) = self.acked.lock() else {
            return;
        };
        let now = Instant::now();
        if acked.len() >= ACK_MAX {
            acked.retain(|_, at| at.elapsed() < ACK_TTL);
            if acked.len() >= ACK_MAX {
                acked.clear();
            }
        }
        for i in done {
            let item = &items[i];
            acked.insert((item.rule, item.mapped.id.clone(), item.mapped.seq), now);
        }
    }

    fn versioned(&self, item: &Item) -> bool {
        self.rules
            .get(&item.rule)
            .is_some_and(|r| r.mode == Mode::Index)
    }
}

impl Write for ElasticsearchTarget {
    async fn write(&self, items: &[Item]) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
        let mut body = Vec::with_capacity(items.iter().map(|i| i.bytes + 160).sum());
        let mut encoded: Vec<Encoded> = Vec::with_capacity(items.len());
        // Items answered from `acked`: kept there while this batch still has retries.
        let mut skipped: Vec<usize> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(rule) = self.rules.get(&item.rule) else {
                outcomes[i] = Some(Outcome::Reject(format!(
                    "rule {} has no Elasticsearch settings in target `{}`",
                    item.rule, self.name
                )));
                continue;
            };
            // A re-send after a partial failure: versioned items already written need not go
            // again (the index holds this version or a newer one either way).
            if rule.mode == Mode::Index && self.was_acked(item) {
                outcomes[i] = Some(Outcome::Done);
                skipped.push(i);
                continue;
            }
            let start = body.len();
            match encode(rule, &item.mapped, &mut body) {
                Ok(actions) if actions.is_empty() => outcomes[i] = Some(Outcome::Done),
                Ok(actions) => encoded.push(Encoded {
                    item: i,
                    bytes: start..body.len(),
                    actions,
                }),
                Err(reason) => {
                    outcomes[i] = Some(Outcome::Reject(format!("elasticsearch: {reason}")))
                }
            }
        }
        let limit = self.chunk_limit();
        let mut not_sent: Option<String> = None;
        let mut any_retry = false;
        for chunk in encoded.chunks(limit) {
            if let Some(reason) = &not_sent {
                for e in chunk {
                    outcomes[e.item] = Some(Outcome::Retry(reason.clone()));
                }
                continue;
            }
            let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
                continue;
            };
            let actions: Vec<(Op, &str)> = chunk
                .iter()
                .flat_map(|e| {
                    let id = items[e.item].mapped.id.as_str();
                    e.actions.iter().map(move |a| (a.op, id))
                })
                .collect();
            let bytes = &body[first.bytes.start..last.bytes.end];
            let mut pressure = false;
            match service::bulk(&self.client, bytes, &actions).await {
                Err(failed) => {
                    pressure = failed.pressure;
                    for e in chunk {
                        outcomes[e.item] = Some(failed.outcome.clone());
                    }
                    any_retry = true;
                }
                Ok(answers) => {
                    let mut answers = answers.into_iter();
                    for e in chunk {
                        let mut outcome = Outcome::Done;
                        for action in &e.actions {
                            let Some(a) = answers.next() else { break };
                            if (200..300).contains(&a.status) {
                                continue;
                            }
                            let f = ItemFailure {
                                op: action.op,
                                status: a.status,
                                kind: a.kind,
                                reason: a.reason,
                                index: action.index.clone(),
                                id: items[e.item].mapped.id.clone(),
                            };
                            pressure |= is_pressure(&Failure::Item(&f));
                            outcome = worse(outcome, classify(&Failure::Item(&f)));
                        }
                        any_retry |= matches!(outcome, Outcome::Retry(_));
                        outcomes[e.item] = Some(outcome);
                    }
                }
            }
            if pressure {
                self.shrink(chunk.len());
            } else if !any_retry {
                self.grow(chunk.len());
            }
            if any_retry {
                // The runtime re-sends from the first item to retry; later chunks would only be
                // sent twice.
                not_sent = Some(
                    "not sent: an earlier item of this batch must be retried first".to_owned(),
                );
            }
        }
        if !any_retry && !skipped.is_empty() {
            // The runtime re-sends only batches with retries: this one is finished.
            self.forget_acked(items, &skipped);
        }
        if any_retry {
            let done = encoded
                .iter()
                .filter(|e| {
                    matches!(outcomes[e.item], Some(Outcome::Done))
                        && self.versioned(&items[e.item])
                })
                .map(|e| e.item);
            self.remember_acked(items, done);
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Done))
            .collect()
    }

    async fn check(&self) -> Result<(), TargetError> {
        let (name, address) = (&self.name, &self.address);
        let refused = |message: String| TargetError::Config {
            target: name.clone(),
            message,
        };
        match service::ping(&self.client).await {
            Ok(()) => Ok(()),
            Err(PingError::Status { status: 401, body }) => Err(refused(format!(
                "{address} refused the credentials (HTTP 401, {}); set targets.{name}.username \
                 and password, or api_key, to credentials the cluster accepts (secrets come \
                 from the environment: password = \"${{ES_PASSWORD}}\"), and check that the \
                 variable is set where the sink runs",
                service::error_reason(&body)
            ))),
            Err(PingError::Status { status: 403, body }) => Err(refused(format!(
                "{address} accepted the credentials but refused access (HTTP 403, {}); grant \
                 the user or API key of targets.{name} the `monitor` cluster privilege and \
                 `write`/`create_index` on the rules' indexes",
                service::error_reason(&body)
            ))),
            Err(PingError::Status { status, body }) => {
                Err(self.connect_error(format!("HTTP {status}, {}", service::error_reason(&body))))
            }
            Err(PingError::Request(reason)) if reason.contains("certificate") => {
                Err(refused(format!(
                    "TLS with {address} failed: {reason}; targets.{name}.ca_file must be the \
                     PEM of the CA that signed the server's certificate (without ca_file the \
                     built-in roots must trust it), and the URL's host must be in the certificate"
                )))
            }
            Err(PingError::Request(reason)) => Err(self.connect_error(reason)),
        }
    }
}

/// Reject beats Retry beats Done: a definite failure of one action decides the item.
fn worse(a: Outcome, b: Outcome) -> Outcome {
    let rank = |o: &Outcome| match o {
        Outcome::Done => 0,
        Outcome::Retry(_) => 1,
        Outcome::Reject(_) => 2,
    };
    if rank(&b) > rank(&a) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_beats_retry_beats_done() {
        let r = Outcome::Retry("r".into());
        let j = Outcome::Reject("j".into());
        assert_eq!(worse(Outcome::Done, r.clone()), r);
        assert_eq!(worse(r.clone(), j.clone()), j);
        assert_eq!(worse(j.clone(), Outcome::Done), j);
    }
}
