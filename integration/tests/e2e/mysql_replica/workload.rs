//! Random changes to the source table, with the events the capture would make of them.

use super::{event, now_ms, COLUMNS};
use mysql_async::prelude::Queryable;
use rand::rngs::StdRng;
use rand::Rng;
use sluice_event::{ChangeEvent, EventType, Row};

/// SQL literals for one random row (every column may be NULL except the key).
pub(super) fn random_values(rng: &mut StdRng, id: i64) -> Vec<String> {
    let names = [
        "Ann",
        "Bøb",
        "Zoë 🌊",
        "O'Hara",
        "back\\\\slash",
        "\"q\"",
        "",
    ];
    let mut v = vec![id.to_string()];
    v.push(format!("{}", rng.random::<u64>()));
    v.push(format!("{}", rng.random::<i16>()));
    v.push(format!(
        "'{}.{:02}'",
        rng.random_range(-9_999_999_999i64..9_999_999_999),
        rng.random_range(0..100)
    ));
    v.push(format!(
        "{}",
        f64::from(rng.random_range(-4000..4000)) / 4.0
    ));
    v.push(format!(
        "{}",
        f64::from(rng.random_range(-80000..80000)) / 8.0
    ));
    v.push(format!(
        "'{}-{:02}-{:02}'",
        rng.random_range(1000..9999),
        rng.random_range(1..13),
        rng.random_range(1..29)
    ));
    v.push(format!(
        "'{}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}'",
        rng.random_range(1000..9999),
        rng.random_range(1..13),
        rng.random_range(1..29),
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60),
        rng.random_range(0..1_000_000)
    ));
    v.push(format!(
        "'{}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}'",
        rng.random_range(1971..2037),
        rng.random_range(1..13),
        rng.random_range(1..29),
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60),
        rng.random_range(0..1000)
    ));
    v.push(format!(
        "'{}{}:{:02}:{:02}.{:02}'",
        if rng.random() { "-" } else { "" },
        rng.random_range(0..839),
        rng.random_range(0..60),
        rng.random_range(0..60),
        rng.random_range(0..100)
    ));
    v.push(format!("{}", rng.random_range(1901..2156)));
    v.push(format!(
        "'{}'",
        names[rng.random_range(0..names.len())].replace('\'', "''")
    ));
    v.push(format!("REPEAT('txt ', {})", rng.random_range(0..50)));
    v.push(format!("x'{}'", hex(&random_bytes(rng, 16))));
    v.push(format!("x'{}'", hex(&random_bytes(rng, 300))));
    v.push(String::from(
        ["'new'", "'paid'", "'shipped'"][rng.random_range(0..3)],
    ));
    v.push(String::from(
        ["''", "'red'", "'green,blue'", "'red,green,blue'"][rng.random_range(0..4)],
    ));
    v.push(format!("{}", rng.random_range(0..1024)));
    v.push(format!("'{}'", serde_json::json!({"n": rng.random_range(0..1000), "tags": ["a", "ü"], "deep": {"ok": rng.random::<bool>()}})));
    v.push(format!(
        "ST_GeomFromText('POINT({} {})', {})",
        rng.random_range(-90..90),
        rng.random_range(-90..90),
        [0, 4326][rng.random_range(0..2)]
    ));
    // RFC 4122 version 1 or 4 (MariaDB refuses some other version and variant bits).
    let mut u = random_array::<16>(rng);
    u[6] = (u[6] & 0x0f) | [0x10, 0x40][rng.random_range(0..2)];
    u[8] = (u[8] & 0x3f) | 0x80;
    v.push(format!(
        "'{}-{}-{}-{}-{}'",
        hex(&u[..4]),
        hex(&u[4..6]),
        hex(&u[6..8]),
        hex(&u[8..10]),
        hex(&u[10..])
    ));
    let ip4 = random_array::<4>(rng);
    v.push(format!("'{}.{}.{}.{}'", ip4[0], ip4[1], ip4[2], ip4[3]));
    // Zero groups and IPv4-mapped forms come up often enough to matter.
    let mut ip6 = random_array::<16>(rng);
    for w in ip6.chunks_mut(2) {
        if rng.random_ratio(1, 3) {
            w.fill(0);
        }
    }
    if rng.random_ratio(1, 4) {
        ip6[..10].fill(0);
        ip6[10..12].fill(0xff);
    }
    v.push(format!("CAST(x'{}' AS INET6)", hex(&ip6)));
    // Any column but the key may be NULL.
    for x in v.iter_mut().skip(1) {
        if rng.random_ratio(1, 12) {
            *x = "NULL".into();
        }
    }
    v
}

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let n = rng.random_range(0..=max);
    (0..n).map(|_| rng.random()).collect()
}

fn random_array<const N: usize>(rng: &mut StdRng) -> [u8; N] {
    std::array::from_fn(|_| rng.random())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Plays the capture: turns row changes into events with increasing `seq`.
pub(super) struct Capture {
    db: String,
    seq: i64,
    pub(super) events: Vec<ChangeEvent>,
}

impl Capture {
    pub(super) fn new(db: &str) -> Capture {
        Capture {
            db: db.to_owned(),
            seq: now_ms() << 20,
            events: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, kind: EventType, data: Row, old: Option<Row>) {
        self.seq += 1;
        self.events
            .push(event(&self.db, "t", kind, self.seq, data, old));
    }

    fn update(&mut self, before: &Row, after: Row) {
        let old: Row = before
            .iter()
            .filter(|(k, v)| after.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.push(EventType::Update, after, Some(old));
    }
}

/// Runs `n` random transactions of 1-4 changes on `db.t` (ids below `max_id`) and records
/// their events in order: inserts, updates of random columns, primary-key changes (a DELETE of
/// the old key and an INSERT of the new one, as the capture emits them) and deletes.
pub(super) async fn workload(
    c: &mut mysql_async::Conn,
    cap: &mut Capture,
    rng: &mut StdRng,
    n: usize,
    max_id: i64,
) {
    let db = cap.db.clone();
    for _ in 0..n {
        let mut tx = c
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .unwrap();
        for _ in 0..rng.random_range(1..=4) {
            let id = rng.random_range(1..max_id);
            let roll = rng.random_range(0..100);
            let Some(before) = rows_in(&mut tx, &db, id).await else {
                let values = random_values(rng, id);
                tx.query_drop(format!("INSERT INTO {db}.t VALUES ({})", values.join(",")))
                    .await
                    .unwrap();
                let after = rows_in(&mut tx, &db, id).await.unwrap();
                cap.push(EventType::Insert, after, None);
                continue;
            };
            if roll < 15 {
                tx.query_drop(format!("DELETE FROM {db}.t WHERE id = {id}"))
                    .await
                    .unwrap();
                cap.push(EventType::Delete, before, None);
            } else if roll < 25 {
                let to = rng.random_range(1..max_id);
                if rows_in(&mut tx, &db, to).await.is_none() {
                    tx.query_drop(format!("UPDATE {db}.t SET id = {to} WHERE id = {id}"))
                        .await
                        .unwrap();
                    cap.push(EventType::Delete, before, None);
                    let after = rows_in(&mut tx, &db, to).await.unwrap();
                    cap.push(EventType::Insert, after, None);
                }
            } else {
                let values = random_values(rng, id);
                let sets: Vec<String> = COLUMNS
                    .iter()
                    .zip(&values)
                    .skip(1)
                    .filter(|_| rng.random_ratio(1, 3))
                    .map(|((c, _, _), v)| format!("`{c}` = {v}"))
                    .collect();
                if !sets.is_empty() {
                    tx.query_drop(format!(
                        "UPDATE {db}.t SET {} WHERE id = {id}",
                        sets.join(", ")
                    ))
                    .await
                    .unwrap();
                    let after = rows_in(&mut tx, &db, id).await.unwrap();
                    if after != before {
                        cap.update(&before, after);
                    }
                }
            }
        }
        tx.commit().await.unwrap();
    }
}

async fn rows_in(tx: &mut mysql_async::Transaction<'_>, db: &str, id: i64) -> Option<Row> {
    let exprs: Vec<String> = COLUMNS
        .iter()
        .map(|(_, _, e)| format!("IFNULL({e}, 'null')"))
        .collect();
    let r: Option<mysql_async::Row> = tx
        .query_first(format!(
            "SELECT {} FROM {db}.t WHERE id = {id}",
            exprs.join(", ")
        ))
        .await
        .unwrap();
    let r = r?;
    let mut row = Row::new();
    for (i, (name, _, _)) in COLUMNS.iter().enumerate() {
        let text: String = r.get(i).unwrap();
        row.insert(
            (*name).to_owned(),
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {text}: {e}")),
        );
    }
    Some(row)
}
