//! The request: one pipeline per batch (per hash slot on a cluster), one outcome per item.

use super::encoder::{Command, Encoder};
use super::retry::classify;
use super::RedisRule;
use crate::targets::{Item, Outcome};
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{RedisResult, Value};
use std::collections::HashMap;

/// A connection to a single server (reconnecting) or to a cluster.
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// At most this many keys go into one `DEL`, so one command never holds the server for long.
const MAX_KEYS_PER_DEL: usize = 1024;

/// Writes `items` in one round trip: one non-atomic pipeline on a single server, one pipeline per
/// hash slot (sent together) on a cluster. Commands on one key keep the items' order.
pub async fn write(
    conn: &Connection,
    rules: &HashMap<usize, RedisRule>,
    items: &[Item],
) -> Vec<Outcome> {
    let mut outcomes = vec![Outcome::Done; items.len()];
    let mut commands = Vec::with_capacity(items.len() * 2);
    // The item each command is for.
    let mut owners: Vec<usize> = Vec::with_capacity(items.len() * 2);
    let mut encoder = Encoder::default();
    for (i, item) in items.iter().enumerate() {
        let Some(rule) = rules.get(&item.rule) else {
            outcomes[i] = Outcome::Reject(format!(
                "rule {} has no Redis settings in this target",
                item.rule
            ));
            continue;
        };
        match encoder.encode(rule, &item.mapped, &mut commands) {
            Ok(()) => owners.resize(commands.len(), i),
            Err(reason) => outcomes[i] = Outcome::Reject(reason),
        }
    }
    let commands = owners.into_iter().zip(commands);
    match conn {
        Connection::Single(c) => {
            let mut batch = Batch::default();
            for (i, command) in commands {
                batch.push(i, command);
            }
            if !batch.is_empty() {
                let result = batch.pipe.query_async(&mut c.clone()).await;
                batch.settle(result, &mut outcomes);
            }
        }
        Connection::Cluster(c) => {
            // A cluster pipeline must stay within one hash slot (the client refuses others).
            let mut slots: HashMap<Slot, Batch> = HashMap::new();
            for (i, command) in commands {
                let slot = Slot::for_key(command.key());
                slots.entry(slot).or_default().push(i, command);
            }
            let sent = slots.into_values().map(|batch| async move {
                let result = batch.pipe.query_async(&mut c.clone()).await;
                (batch, result)
            });
            for (batch, result) in futures::future::join_all(sent).await {
                batch.settle(result, &mut outcomes);
            }
        }
    }
    outcomes
}

/// One pipeline and, for each of its wire commands, the items it writes for.
struct Batch {
    pipe: redis::Pipeline,
    /// Where each wire command's items start in `members`.
    starts: Vec<usize>,
    /// Item indices, grouped by wire command.
    members: Vec<usize>,
    /// Keys in the last wire command if it is a `DEL` that may take more; else 0.
    open_del: usize,
}

impl Default for Batch {
    fn default() -> Batch {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        Batch {
            pipe,
            starts: Vec::new(),
            members: Vec::new(),
            open_del: 0,
        }
    }
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    fn push(&mut self, item: usize, command: Command) {
        match command {
            Command::Del(key) => self.del(item, &key),
            Command::Set {
                key,
                value,
                ttl_secs,
            } => {
                self.begin("SET", item).arg(&key).arg(value);
                if let Some(ttl) = ttl_secs {
                    self.pipe.arg("EX").arg(ttl);
                }
            }
            Command::HashReplace {
                key,
                fields,
                ttl_secs,
            } => {
                self.del(item, &key);
                if !fields.is_empty() {
                    self.begin("HSET", item).arg(&key);
                    for (field, value) in &fields {
                        self.pipe.arg(field).arg(value);
                    }
                }
                if let Some(ttl) = ttl_secs {
                    self.begin("EXPIRE", item).arg(&key).arg(ttl);
                }
            }
        }
    }

    /// Adds `key` to the open `DEL`, or starts one.
    fn del(&mut self, item: usize, key: &str) {
        if self.open_del > 0 && self.open_del < MAX_KEYS_PER_DEL {
            self.pipe.arg(key);
            if self.members.last() != Some(&item) {
                self.members.push(item);
            }
            self.open_del += 1;
        } else {
            self.begin("DEL", item).arg(key);
            self.open_del = 1;
        }
    }

    /// Starts a wire command for `item`; the caller adds its arguments.
    fn begin(&mut self, name: &str, item: usize) -> &mut redis::Pipeline {
        self.open_del = 0;
        self.starts.push(self.members.len());
        self.members.push(item);
        self.pipe.cmd(name)
    }

    /// Turns the replies into outcomes: the worst reply of an item's commands decides.
    fn settle(&self, result: RedisResult<Vec<RedisResult<Value>>>, outcomes: &mut [Outcome]) {
        let replies = match result {
            Ok(replies) => replies,
            Err(e) => {
                // The whole request failed (connection, timeout): nothing is known to be written.
                let outcome = match classify(&e) {
                    Outcome::Reject(r) => Outcome::Retry(r),
                    other => other,
                };
                for &i in &self.members {
                    outcomes[i] = worse(
                        std::mem::replace(&mut outcomes[i], Outcome::Done),
                        outcome.clone(),
                    );
                }
                return;
            }
        };
        let mut replies = replies.into_iter();
        for (c, &start) in self.starts.iter().enumerate() {
            let end = self
                .starts
                .get(c + 1)
                .copied()
                .unwrap_or(self.members.len());
            let outcome = match replies.next() {
                Some(Ok(_)) => continue,
                Some(Err(e)) => classify(&e),
                None => {
                    Outcome::Retry("redis pipeline returned fewer replies than commands".into())
                }
            };
            for &i in &self.members[start..end] {
                outcomes[i] = worse(
                    std::mem::replace(&mut outcomes[i], Outcome::Done),
                    outcome.clone(),
                );
            }
        }
    }
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

/// Reject beats Retry beats Done: a definite failure of one command decides the item.
fn worse(a: Outcome, b: Outcome) -> Outcome {
    match (&a, &b) {
        (Outcome::Reject(_), _) => a,
        (_, Outcome::Reject(_)) => b,
        (Outcome::Retry(_), _) => a,
        _ => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn del(k: &str) -> Command {
        Command::Del(k.into())
    }

    /// The wire commands of a batch, as (arguments, items).
    fn wire(b: &Batch) -> Vec<(Vec<String>, Vec<usize>)> {
        b.pipe
            .cmd_iter()
            .enumerate()
            .map(|(c, cmd)| {
                let args = cmd
                    .args_iter()
                    .map(|a| match a {
                        redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                        _ => "<other>".into(),
                    })
                    .collect();
                let end = b.starts.get(c + 1).copied().unwrap_or(b.members.len());
                (args, b.members[b.starts[c]..end].to_vec())
            })
            .collect()
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn runs_of_deletes_become_one_del_and_other_commands_keep_their_place() {
        let mut b = Batch::default();
        b.push(0, del("a"));
        b.push(0, del("b"));
        b.push(
            1,
            Command::Set {
                key: "c".into(),
                value: b"v".to_vec(),
                ttl_secs: Some(9),
            },
        );
        b.push(2, del("c"));
        b.push(3, del("d"));
        b.push(
            4,
            Command::HashReplace {
                key: "h".into(),
                fields: vec![("f".into(), b"1".to_vec())],
                ttl_secs: None,
            },
        );
        assert_eq!(
            wire(&b),
            vec![
                (strs(&["DEL", "a", "b"]), vec![0]),
                (strs(&["SET", "c", "v", "EX", "9"]), vec![1]),
                (strs(&["DEL", "c", "d", "h"]), vec![2, 3, 4]),
                (strs(&["HSET", "h", "f", "1"]), vec![4]),
            ]
        );
    }

    #[test]
    fn a_long_run_of_deletes_is_split() {
        let mut b = Batch::default();
        for i in 0..MAX_KEYS_PER_DEL + 1 {
            b.push(i, del(&format!("k{i}")));
        }
        let w = wire(&b);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].0.len(), MAX_KEYS_PER_DEL + 1);
        assert_eq!(
            w[1],
            (
                strs(&["DEL", &format!("k{MAX_KEYS_PER_DEL}")]),
                vec![MAX_KEYS_PER_DEL]
            )
        );
    }

    #[test]
    fn replies_decide_the_outcome_of_the_items_they_serve() {
        let mut b = Batch::default();
        b.push(0, del("a"));
        b.push(1, del("b"));
        b.push(
            1,
            Command::Set {
                key: "b".into(),
                value: b"v".to_vec(),
                ttl_secs: None,
            },
        );
        b.push(2, del("c"));
        let wrongtype: redis::RedisError =
            (redis::ErrorKind::UnexpectedReturnType, "WRONGTYPE").into();
        let mut outcomes = vec![Outcome::Done; 3];
        b.settle(
            Ok(vec![Ok(Value::Int(2)), Err(wrongtype), Ok(Value::Int(1))]),
            &mut outcomes,
        );
        assert_eq!(outcomes[0], Outcome::Done);
        assert!(
            matches!(outcomes[1], Outcome::Reject(_)),
            "{:?}",
            outcomes[1]
        );
        assert_eq!(outcomes[2], Outcome::Done);

        // A missing reply, and a failed request, leave the items to be retried.
        let mut outcomes = vec![Outcome::Done; 3];
        b.settle(Ok(vec![Ok(Value::Int(2))]), &mut outcomes);
        assert_eq!(outcomes[0], Outcome::Done);
        assert!(matches!(outcomes[1], Outcome::Retry(_)));
        assert!(matches!(outcomes[2], Outcome::Retry(_)));
        let io: redis::RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset").into();
        let mut outcomes = vec![Outcome::Done; 3];
        b.settle(Err(io), &mut outcomes);
        assert!(outcomes.iter().all(|o| matches!(o, Outcome::Retry(_))));
    }
}
