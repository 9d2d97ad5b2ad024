//! Which row each write of the run touches, and the SQL of the table and of its writes.

use crate::Common;
use anyhow::bail;

/// The table, the same in the source and the replica database; `wseq` is the write's number.
pub const TABLE_DDL: &str = "(id BIGINT UNSIGNED NOT NULL PRIMARY KEY, rev INT NOT NULL,
    wseq BIGINT NOT NULL, name VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL,
    amount DECIMAL(12,2) NOT NULL, updated_at DATETIME(6) NOT NULL, KEY (wseq)) ENGINE=InnoDB";

/// Which row each write touches. Write `w` (1-based) is `ids[w - 1]`; seeded rows (the UPDATEs'
/// targets) have ids `1..=seeded`, INSERTs take the ids after them.
pub struct Plan {
    pub warmup: u64,
    pub total: u64,
    pub txn_rows: u64,
    ids: Vec<u64>,
    update: Vec<bool>,
    pub seeded: u64,
}

impl Plan {
    pub fn new(c: &Common) -> anyhow::Result<Plan> {
        if c.rate == 0 || c.seconds == 0 || c.txn_rows == 0 || c.update_pct > 100 {
            bail!("rate, seconds and txn_rows must be at least 1, update_pct at most 100");
        }
        let measured = c.rate * c.seconds;
        let total = c.warmup_rows + measured;
        // 37 is prime to 100: every 100 measured writes hold exactly update_pct UPDATEs, spread out.
        let update: Vec<bool> = (1..=total)
            .map(|w| w > c.warmup_rows && (w * 37) % 100 < c.update_pct)
            .collect();
        let seeded = update.iter().filter(|u| **u).count() as u64;
        let (mut next_seeded, mut next_new) = (0, seeded);
        let ids = update
            .iter()
            .map(|u| {
                let next = if *u { &mut next_seeded } else { &mut next_new };
                *next += 1;
                *next
            })
            .collect();
        Ok(Plan {
            warmup: c.warmup_rows,
            total,
            txn_rows: c.txn_rows,
            ids,
            update,
            seeded,
        })
    }

    fn id(&self, w: u64) -> u64 {
        self.ids[(w - 1) as usize]
    }

    pub fn is_update(&self, w: u64) -> bool {
        self.update[(w - 1) as usize]
    }

    /// `wseq` by id (index 0 unused).
    pub fn wseq_by_id(&self) -> Vec<u64> {
        let mut by_id = vec![0; self.total as usize + 1];
        for w in 1..=self.total {
            by_id[self.id(w) as usize] = w;
        }
        by_id
    }

    /// One transaction of the writes `lo..=hi`: BEGIN, a multi-row INSERT, one UPDATE per
    /// updated row, COMMIT, sent as one multi-statement string (one round trip).
    pub fn transaction(&self, db: &str, lo: u64, hi: u64) -> String {
        let mut sql = String::from("BEGIN;");
        let mut inserts = Vec::new();
        for w in lo..=hi {
            let id = self.id(w);
            if self.is_update(w) {
                sql.push_str(&format!(
                    "UPDATE `{db}`.items SET rev = rev + 1, wseq = {w}, status = 'paid', \
                     amount = amount + 1, updated_at = NOW(6) WHERE id = {id};"
                ));
            } else {
                inserts.push((id, w));
            }
        }
        if !inserts.is_empty() {
            sql.push_str(&insert(db, inserts));
            sql.push(';');
        }
        sql.push_str("COMMIT");
        sql
    }
}

/// A multi-row INSERT into `db`.items of new rows, each an `(id, wseq)` (`wseq` 0: seeded).
pub fn insert(db: &str, rows: impl IntoIterator<Item = (u64, u64)>) -> String {
    let values: Vec<String> = rows
        .into_iter()
        .map(|(id, w)| {
            format!(
                "({id}, 0, {w}, 'item number {id}', 'new', {}.{:02}, NOW(6))",
                id % 100_000,
                id % 100
            )
        })
        .collect();
    format!(
        "INSERT INTO `{db}`.items (id, rev, wseq, name, status, amount, updated_at) VALUES {}",
        values.join(",")
    )
}
