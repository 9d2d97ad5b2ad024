//! The chaos run's workload on the source: inserts, updates, key changes, deletes, multi-row and
//! large transactions and one DDL, seeded; before a row changes, its cache key is set to a stale
//! value, which the pipeline must delete.

use mysql_async::prelude::Queryable;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;

/// What the workload did.
#[derive(Debug, Default, Clone)]
pub struct Done {
    /// Statements that changed rows, committed.
    pub operations: usize,
    /// Row changes committed.
    pub row_changes: usize,
    pub transactions: usize,
    pub large_transactions: usize,
    pub key_changes: usize,
    pub deletes: usize,
    pub ddl: usize,
    /// Every id that ever changed (its cache key must be gone at the end).
    pub changed: BTreeSet<i64>,
    /// Cache keys the workload could not set (Redis was down); not counted as stale.
    pub cache_misses: usize,
}

/// The random writer.
pub struct Workload {
    rng: StdRng,
    db: String,
    live: Vec<i64>,
    next_id: i64,
    pub done: Done,
    ddl_done: bool,
}

impl Workload {
    pub fn new(seed: u64, db: &str) -> Workload {
        Workload {
            rng: StdRng::seed_from_u64(seed),
            db: db.to_owned(),
            live: Vec::new(),
            next_id: 0,
            done: Done::default(),
            ddl_done: false,
        }
    }

    /// One step: a transaction of one kind. `cache` is the Redis the app would fill (stale keys
    /// are set there before the change).
    pub async fn step(
        &mut self,
        conn: &mut mysql_async::Conn,
        cache: Option<&mut redis::aio::MultiplexedConnection>,
        ddl_now: bool,
    ) -> Result<(), String> {
        let db = self.db.clone();
        if ddl_now && !self.ddl_done {
            self.ddl_done = true;
            conn.query_drop(format!("ALTER TABLE `{db}`.t ADD COLUMN extra INT NULL"))
                .await
                .map_err(|e| format!("DDL: {e}"))?;
            self.done.ddl += 1;
            return Ok(());
        }
        let roll = self.rng.random_range(0..100);
        // (id before, id after, statement) of each change of the transaction.
        let mut changes: Vec<(Option<i64>, Option<i64>, String)> = Vec::new();
        let extra = if self.ddl_done { ", extra = v" } else { "" };
        let pick = |rng: &mut StdRng, live: &Vec<i64>| live[rng.random_range(0..live.len())];
        if self.live.len() < 20 || roll < 35 {
            self.next_id += 1;
            let id = self.next_id;
            changes.push((
                None,
                Some(id),
                format!("INSERT INTO `{db}`.t (id, v, note) VALUES ({id}, 0, 'n{id}')"),
            ));
        } else if roll < 65 {
            let id = pick(&mut self.rng, &self.live);
            changes.push((
                Some(id),
                Some(id),
                format!("UPDATE `{db}`.t SET v = v + 1{extra} WHERE id = {id}"),
            ));
        } else if roll < 72 {
            let id = pick(&mut self.rng, &self.live);
            self.next_id += 1;
            let new = self.next_id;
            changes.push((
                Some(id),
                Some(new),
                format!("UPDATE `{db}`.t SET id = {new}, v = v + 1 WHERE id = {id}"),
            ));
            self.done.key_changes += 1;
        } else if roll < 80 {
            let id = pick(&mut self.rng, &self.live);
            changes.push((
                Some(id),
                None,
                format!("DELETE FROM `{db}`.t WHERE id = {id}"),
            ));
            self.done.deletes += 1;
        } else if roll < 99 {
            // A multi-row transaction over distinct live rows.
            let n = self.rng.random_range(2..=8).min(self.live.len());
            let mut ids: Vec<i64> = Vec::new();
            while ids.len() < n {
                let id = pick(&mut self.rng, &self.live);
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            for id in ids {
                changes.push((
                    Some(id),
                    Some(id),
                    format!("UPDATE `{db}`.t SET v = v + 1{extra} WHERE id = {id}"),
                ));
            }
        } else {
            // A large transaction: 500 inserts.
            let first = self.next_id + 1;
            self.next_id += 500;
            let values: Vec<String> = (first..=self.next_id)
                .map(|id| format!("({id}, 0, 'bulk')"))
                .collect();
            changes.push((
                None,
                None,
                format!(
                    "INSERT INTO `{db}`.t (id, v, note) VALUES {}",
                    values.join(",")
                ),
            ));
            self.done.large_transactions += 1;
            self.live.extend(first..=self.next_id);
            self.done.changed.extend(first..=self.next_id);
            self.done.row_changes += 500 - 1;
        }
        // Stale cache entries for the rows about to change, as the application would have.
        if let Some(cache) = cache {
            for (before, _, _) in &changes {
                if let Some(id) = before {
                    let set: Result<(), redis::RedisError> = redis::cmd("SET")
                        .arg(format!("t:{id}"))
                        .arg("stale")
                        .query_async(cache)
                        .await;
                    if set.is_err() {
                        self.done.cache_misses += 1;
                    }
                }
            }
        }
        let mut tx = conn
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .map_err(|e| format!("begin: {e}"))?;
        for (_, _, sql) in &changes {
            tx.query_drop(sql)
                .await
                .map_err(|e| format!("{sql}: {e}"))?;
        }
        tx.commit().await.map_err(|e| format!("commit: {e}"))?;
        self.done.transactions += 1;
        for (before, after, _) in changes {
            self.done.operations += 1;
            self.done.row_changes += 1;
            if let Some(id) = before {
                self.done.changed.insert(id);
                if after != Some(id) {
                    self.live.retain(|x| *x != id);
                }
            }
            if let Some(id) = after {
                self.done.changed.insert(id);
                if before != Some(id) {
                    self.live.push(id);
                }
            }
        }
        Ok(())
    }
}
