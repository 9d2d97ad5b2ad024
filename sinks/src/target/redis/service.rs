//! The request: one pipeline per batch, one outcome per item.

use super::encoder::{encode, Command};
use super::retry::classify;
use super::RedisRule;
use crate::target::{Item, Outcome};
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{RedisResult, Value};
use std::collections::HashMap;

/// A connection to a single server (reconnecting) or to a cluster.
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Writes `items` in one non-atomic pipeline (order is kept on the connection).
pub async fn write(
    conn: &Connection,
    rules: &HashMap<usize, RedisRule>,
    items: &[Item],
) -> Vec<Outcome> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
    // For each item sent: its index and how many wire commands it has.
    let mut sent: Vec<(usize, usize)> = Vec::with_capacity(items.len());
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for (i, item) in items.iter().enumerate() {
        let Some(rule) = rules.get(&item.rule) else {
            outcomes[i] = Some(Outcome::Reject(format!(
                "rule {} has no Redis settings in this target",
                item.rule
            )));
            continue;
        };
        match encode(rule, &item.mapped) {
            Ok(commands) => {
                let before = pipe.len();
                for c in commands {
                    add(&mut pipe, c);
                }
                sent.push((i, pipe.len() - before));
            }
            Err(reason) => outcomes[i] = Some(Outcome::Reject(reason)),
        }
    }
    if !pipe.is_empty() {
        let result: RedisResult<Vec<RedisResult<Value>>> = match conn {
            Connection::Single(c) => pipe.query_async(&mut c.clone()).await,
            Connection::Cluster(c) => pipe.query_async(&mut c.clone()).await,
        };
        match result {
            Ok(replies) => {
                let mut replies = replies.into_iter();
                for (i, n) in &sent {
                    let mut outcome = Outcome::Done;
                    for _ in 0..*n {
                        match replies.next() {
                            Some(Ok(_)) => {}
                            Some(Err(e)) => outcome = worse(outcome, classify(&e)),
                            None => {
                                outcome = worse(
                                    outcome,
                                    Outcome::Retry(
                                        "redis pipeline returned fewer replies than commands"
                                            .into(),
                                    ),
                                )
                            }
                        }
                    }
                    outcomes[*i] = Some(outcome);
                }
            }
            Err(e) => {
                // The whole request failed (connection, timeout): nothing is known to be written.
                let outcome = match classify(&e) {
                    Outcome::Reject(r) => Outcome::Retry(r),
                    other => other,
                };
                for (i, _) in &sent {
                    outcomes[*i] = Some(outcome.clone());
                }
            }
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Done))
        .collect()
}

/// Sends `PING`; used by `check`.
pub async fn ping(conn: &Connection) -> RedisResult<()> {
    let cmd = redis::cmd("PING");
    let _: Value = match conn {
        Connection::Single(c) => cmd.query_async(&mut c.clone()).await?,
        Connection::Cluster(c) => cmd.query_async(&mut c.clone()).await?,
    };
    Ok(())
}

fn add(pipe: &mut redis::Pipeline, command: Command) {
    match command {
        Command::Del(keys) => {
            pipe.del(keys);
        }
        Command::Set {
            key,
            value,
            ttl_secs,
        } => {
            let c = pipe.cmd("SET").arg(&key).arg(value);
            if let Some(ttl) = ttl_secs {
                c.arg("EX").arg(ttl);
            }
        }
        Command::HashReplace {
            key,
            fields,
            ttl_secs,
        } => {
            pipe.del(&key);
            if !fields.is_empty() {
                pipe.hset_multiple(&key, &fields);
            }
            if let Some(ttl) = ttl_secs {
                pipe.expire(&key, ttl as i64);
            }
        }
    }
}

/// Reject beats Retry beats Done: a definite failure of one command decides the item.
fn worse(a: Outcome, b: Outcome) -> Outcome {
    match (&a, &b) {
        (Outcome::Reject(_), _) => a,
        (_, Outcome::Reject(_)) => b,
        (Outcome::Retry(_), _) => a,
        _ => b,
    }
}
