//! A capture fleet against Apache Kafka: workers share four instances through the group
//! coordinator; a worker killed with SIGKILL, a worker joining, and a worker paused (SIGSTOP)
//! past its session all happen under a random write load, and a read_committed reader must see
//! every row change exactly once, in per-key order.

use mysql_async::prelude::Queryable;
use rand::{Rng, SeedableRng};
use sluice_integration::fleet::{Arrival, Arrivals, Fleet};
use sluice_integration::wait::Deadline;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// The group's session timeout in these tests (Apache Kafka's smallest by default).
const SESSION_MS: u64 = 6_000;

/// Row changes made per instance, each statement changing exactly one row.
#[derive(Default)]
struct Load {
    changes: BTreeMap<String, usize>,
    live: BTreeMap<String, BTreeSet<i64>>,
    next_id: i64,
}

impl Load {
    /// One random change (or a three-row transaction) on `db`.
    async fn step(&mut self, conn: &mut mysql_async::Conn, db: &str, rng: &mut impl Rng) {
        let live = self.live.entry(db.to_owned()).or_default();
        let roll = rng.random_range(0..10);
        let mut changed = 0;
        if live.len() < 5 || roll < 4 {
            self.next_id += 1;
            let id = self.next_id;
            conn.exec_drop(format!("INSERT INTO `{db}`.t (id, v) VALUES (?, 0)"), (id,))
                .await
                .expect("insert");
            live.insert(id);
            changed += 1;
        } else if roll < 8 {
            let id = *live.iter().nth(rng.random_range(0..live.len())).unwrap();
            conn.exec_drop(format!("UPDATE `{db}`.t SET v = v + 1 WHERE id = ?"), (id,))
                .await
                .expect("update");
            changed += 1;
        } else if roll < 9 {
            let id = *live.iter().nth(rng.random_range(0..live.len())).unwrap();
            conn.exec_drop(format!("DELETE FROM `{db}`.t WHERE id = ?"), (id,))
                .await
                .expect("delete");
            live.remove(&id);
            changed += 1;
        } else {
            // A transaction of three updates of distinct keys.
            let ids: Vec<i64> = live.iter().take(3).copied().collect();
            let mut tx = conn
                .start_transaction(mysql_async::TxOpts::default())
                .await
                .expect("begin");
            for id in &ids {
                tx.exec_drop(format!("UPDATE `{db}`.t SET v = v + 1 WHERE id = ?"), (id,))
                    .await
                    .expect("update in a transaction");
            }
            tx.commit().await.expect("commit");
            changed += ids.len();
        }
        *self.changes.entry(db.to_owned()).or_default() += changed;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_survives_kill_join_and_pause_with_every_row_exactly_once() {
    let name = sluice_integration::unique_name("fleet");
    let mut conn = mysql_async::Conn::from_url(sluice_integration::mysql_url())
        .await
        .expect("connect to MariaDB");
    let dbs: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|s| format!("{name}_{s}"))
        .collect();
    let start = sluice_integration::fleet::source_tables(
        &mut conn,
        &dbs,
        "id BIGINT PRIMARY KEY, v INT NOT NULL",
    )
    .await
    .unwrap();
    let mut fleet = Fleet::new(&name, &dbs, &start, SESSION_MS);
    for w in ["w1", "w2", "w3"] {
        fleet.start(w);
    }
    let arrivals = Arrivals::start(&fleet.instances);
    wait_all_owned(&fleet, &[], "the three workers start").await;

    let mut w = Writer {
        load: Load::default(),
        rng: rand::rngs::StdRng::seed_from_u64(std::process::id() as u64),
        dbs: dbs.clone(),
    };
    // Phase 1: load, then kill -9 the worker that owns the most instances.
    w.write_for(Duration::from_secs(3), &mut conn).await;
    let owners = fleet.owners(&[]).await;
    let victim = most_loaded(&owners);
    let lost: Vec<String> = owners
        .iter()
        .filter(|(_, ws)| ws.contains(&victim))
        .map(|(i, _)| i.clone())
        .collect();
    let killed_at = Instant::now();
    let killed_ms = sluice_capture::clock::now_ms();
    sluice_integration::process::kill9(&mut fleet.workers.get_mut(&victim).unwrap().child).await;
    eprintln!("killed {victim}, which owned {lost:?}");
    w.write_for(Duration::from_secs(12), &mut conn).await;
    let mut failover = BTreeMap::new();
    for instance in &lost {
        let first = first_after(&arrivals.all(), instance, killed_ms)
            .unwrap_or_else(|| panic!("no event of {instance} arrived after the kill"));
        failover.insert(instance.clone(), first.duration_since(killed_at));
    }
    eprintln!("fail-over (kill -9 to the first event from the new owner): {failover:?}");
    for (instance, took) in &failover {
        assert!(
            *took < Duration::from_secs(20),
            "{instance} was captured again only {took:?} after its worker was killed"
        );
    }
    wait_all_owned(&fleet, &[&victim], "the kill").await;

    // Phase 2: a worker joins and gets a fair share.
    fleet.start("w4");
    let deadline = Deadline::after(40);
    loop {
        w.write_for(Duration::from_millis(500), &mut conn).await;
        if let Some(mine) = fleet.owned("w4").await.filter(|o| !o.is_empty()) {
            // A fair share: four instances over three live workers.
            assert!(mine.len() <= 2, "w4 took {mine:?}");
            break;
        }
        assert!(
            !deadline.passed(),
            "w4 was given no instance:\n{}",
            fleet.log("w4")
        );
    }
    eprintln!("after w4 joined: {:?}", fleet.owners(&[&victim]).await);

    // Phase 3: pause a worker past its session; another takes over; it resumes.
    let owners = fleet.owners(&[&victim]).await;
    let paused = most_loaded(&owners);
    let pid = fleet.workers[&paused].child.id().expect("a pid");
    sluice_integration::process::signal(pid, "STOP").unwrap();
    w.write_for(Duration::from_millis(SESSION_MS + 6_000), &mut conn)
        .await;
    wait_all_owned(&fleet, &[&victim, &paused], "the pause").await;
    sluice_integration::process::signal(pid, "CONT").unwrap();
    w.write_for(Duration::from_secs(8), &mut conn).await;

    // Every change must arrive, once.
    let deadline = Deadline::after(60);
    loop {
        let done = dbs
            .iter()
            .all(|db| arrivals.count(db) >= w.load.changes.get(db).copied().unwrap_or(0));
        if done {
            break;
        }
        let counts: Vec<(usize, usize)> = dbs
            .iter()
            .map(|db| {
                (
                    arrivals.count(db),
                    w.load.changes.get(db).copied().unwrap_or(0),
                )
            })
            .collect();
        deadline
            .sleep(Duration::from_millis(500), || {
                format!("events arrived vs made, per instance: {counts:?}")
            })
            .await;
    }
    // A little longer: anything extra would be a duplicate.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = arrivals.all();
    for db in &dbs {
        let mine: Vec<&Arrival> = all.iter().filter(|a| &a.event.instance == db).collect();
        assert_exactly_once_in_order(db, &mine, w.load.changes[db]);
        assert_state_matches(db, &mine, &mut conn).await;
    }
    let paused_log = fleet.log(&paused);
    assert!(
        paused_log.contains("lost instance") || paused_log.contains("released instance"),
        "the paused worker {paused} did not log losing its instances:\n{paused_log}"
    );
    let resumed = fleet.owned(&paused).await;
    assert!(
        resumed.as_ref().is_some_and(|o| !o.is_empty()),
        "the resumed worker {paused} serves no instance ({resumed:?})"
    );
    // `position` of one instance of the fleet file shows its committed checkpoint and owner.
    let position = sluice_integration::process::run_to_end(
        &sluice_integration::process::capture_binary(),
        [
            "position",
            "--config",
            fleet.file.to_str().unwrap(),
            "--instance",
            &dbs[0],
        ],
        &[("WORKER", "probe"), ("LISTEN", "127.0.0.1:1")],
        60,
    )
    .await;
    assert!(
        position.success() && position.stdout.contains(&format!("owner={name}/w")),
        "{position:?}"
    );
    eprintln!(
        "changes per instance: {:?}; workers at the end: {:?}",
        w.load.changes,
        fleet.owners(&[&victim]).await
    );
}

/// The random write load over the instances' databases.
struct Writer {
    load: Load,
    rng: rand::rngs::StdRng,
    dbs: Vec<String>,
}

impl Writer {
    /// Writes random changes for `how_long`.
    async fn write_for(&mut self, how_long: Duration, conn: &mut mysql_async::Conn) {
        let end = Instant::now() + how_long;
        while Instant::now() < end {
            let db = self.dbs[self.rng.random_range(0..self.dbs.len())].clone();
            self.load.step(conn, &db, &mut self.rng).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Waits until every instance has exactly one owner among the workers not in `skip`.
async fn wait_all_owned(fleet: &Fleet, skip: &[&str], after: &str) {
    let deadline = Deadline::after(60);
    loop {
        let owners = fleet.owners(skip).await;
        if fleet
            .instances
            .iter()
            .all(|i| owners.get(i).is_some_and(|w| w.len() == 1))
        {
            eprintln!("owners after {after}: {owners:?}");
            return;
        }
        deadline
            .sleep(Duration::from_millis(250), || {
                format!("instances not owned once each after {after}: {owners:?}")
            })
            .await;
    }
}

/// The worker that owns the most instances.
fn most_loaded(owners: &BTreeMap<String, Vec<String>>) -> String {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for ws in owners.values() {
        for w in ws {
            *count.entry(w).or_default() += 1;
        }
    }
    count
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(w, _)| w.to_owned())
        .expect("an owner")
}

/// When the first event of `instance` read from the binlog after `after_ms` arrived: only a new
/// owner can have published it.
fn first_after(all: &[Arrival], instance: &str, after_ms: i64) -> Option<Instant> {
    all.iter()
        .filter(|a| a.event.instance == instance && a.event.capture_ms > after_ms)
        .map(|a| a.at)
        .min()
}

/// Each change once: as many events as changes, no `seq` twice, `seq` increasing along each
/// partition and along each key.
fn assert_exactly_once_in_order(instance: &str, events: &[&Arrival], changes: usize) {
    let mut seqs = BTreeSet::new();
    let mut by_partition: HashMap<i32, i64> = HashMap::new();
    let mut by_key: HashMap<i64, i64> = HashMap::new();
    for a in events {
        let e = &a.event;
        assert!(
            seqs.insert(e.seq),
            "{instance}: seq {} arrived twice",
            e.seq
        );
        let prev = by_partition.insert(a.partition, e.seq).unwrap_or(i64::MIN);
        assert!(
            e.seq > prev,
            "{instance} partition {}: seq {} after {prev}",
            a.partition,
            e.seq
        );
        let id = e.data["id"].as_i64().expect("an integer id");
        let prev = by_key.insert(id, e.seq).unwrap_or(i64::MIN);
        assert!(
            e.seq > prev,
            "{instance} key {id}: seq {} after {prev}",
            e.seq
        );
    }
    assert_eq!(
        events.len(),
        changes,
        "{instance}: {} events for {changes} row changes",
        events.len()
    );
}

/// Replaying the events (by `seq`) gives the table as it is.
async fn assert_state_matches(db: &str, events: &[&Arrival], conn: &mut mysql_async::Conn) {
    let mut ordered: Vec<&Arrival> = events.to_vec();
    ordered.sort_by_key(|a| a.event.seq);
    let mut state: BTreeMap<i64, i64> = BTreeMap::new();
    for a in ordered {
        let e = &a.event;
        let id = e.data["id"].as_i64().unwrap();
        match e.kind {
            sluice_event::EventType::Delete => {
                state.remove(&id);
            }
            _ => {
                state.insert(id, e.data["v"].as_i64().unwrap());
            }
        }
    }
    let rows: Vec<(i64, i64)> = conn
        .query(format!("SELECT id, v FROM `{db}`.t ORDER BY id"))
        .await
        .expect("read the table");
    let table: BTreeMap<i64, i64> = rows.into_iter().collect();
    assert_eq!(
        state, table,
        "{db}: the events replayed differ from the table"
    );
}

/// One transactional capture, alone: a second capture of the live instance (another owner) is
/// refused with what to do; a kill -9 in the middle of a write load, then a restart, leaves every
/// row exactly once for a read_committed reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_capture_refuses_a_second_owner_and_resumes_exactly_once() {
    use sluice_integration::process::{capture_binary, kill9, run_to_end, spawn_run};
    let db = sluice_integration::unique_name("txn");
    let mut conn = mysql_async::Conn::from_url(sluice_integration::mysql_url())
        .await
        .expect("connect to MariaDB");
    conn.query_drop(format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id BIGINT PRIMARY KEY, v INT NOT NULL)"
    ))
    .await
    .expect("create the database");
    let dir = std::env::temp_dir().join(&db);
    std::fs::create_dir_all(&dir).unwrap();
    let mut toml = sluice_integration::capture::CaptureToml::new(&db, &dir);
    toml.start = Some("end".into());
    toml.metrics = true;
    toml.extra = format!(
        "[publish]\ntopic = \"{{instance}}\"\ntransactional = true\ncreate_topics = true\npartitions = {}\n",
        sluice_integration::fleet::PARTITIONS
    );
    let text = toml.text().replace(
        "[checkpoint]\n",
        &format!(
            "[checkpoint]\nkafka = true\ntopic = \"{db}.checkpoints\"\nowner = \"${{OWNER}}\"\n"
        ),
    );
    let config = dir.join("capture.toml");
    std::fs::write(&config, text).unwrap();
    let arrivals = Arrivals::start(std::slice::from_ref(&db));
    let start = |owner: &str, log: &str| {
        spawn_run(
            &capture_binary(),
            &config,
            &[],
            &[("OWNER", owner)],
            &dir.join(log),
        )
    };
    let mut a = start("host-a", "a1.log");
    let mut next = 0i64;
    let mut insert = async |conn: &mut mysql_async::Conn, n: i64| {
        for _ in 0..n {
            next += 1;
            conn.exec_drop(
                format!("INSERT INTO `{db}`.t (id, v) VALUES (?, 0)"),
                (next,),
            )
            .await
            .expect("insert");
        }
        next
    };
    // The capture starts at the end of the binlog: wait until it reads before writing.
    let deadline = Deadline::after(60);
    while !std::fs::read_to_string(dir.join("a1.log"))
        .unwrap_or_default()
        .contains("reading the binlog")
    {
        deadline
            .sleep(Duration::from_millis(100), || {
                "capture a did not start".into()
            })
            .await;
    }
    let written = insert(&mut conn, 50).await;
    wait_count(&arrivals, &db, written as usize).await;

    // Another owner while a is alive: refused, naming a and the transactional id.
    let second = run_to_end(
        &capture_binary(),
        ["run", "--config", config.to_str().unwrap()],
        &[("OWNER", "host-b")],
        60,
    )
    .await;
    assert!(!second.success(), "a second owner ran: {}", second.stderr);
    assert!(
        second.stderr.contains("is being captured by host-a")
            && second.stderr.contains(&format!("sluice-capture.{db}")),
        "{}",
        second.stderr
    );

    // kill -9 in the middle of writes, then a restart by the same owner.
    let writes = async {
        let mut c = mysql_async::Conn::from_url(sluice_integration::mysql_url())
            .await
            .unwrap();
        insert(&mut c, 400).await
    };
    let kill = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        kill9(&mut a).await;
    };
    let (written, ()) = tokio::join!(writes, kill);
    let _a2 = start("host-a", "a2.log");
    wait_count(&arrivals, &db, written as usize).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mine: Vec<Arrival> = arrivals.all();
    let refs: Vec<&Arrival> = mine.iter().collect();
    assert_exactly_once_in_order(&db, &refs, written as usize);
    let log = std::fs::read_to_string(dir.join("a2.log")).unwrap_or_default();
    assert!(log.contains("took instance"), "{log}");
}

/// Waits until `n` events of `instance` arrived.
async fn wait_count(arrivals: &Arrivals, instance: &str, n: usize) {
    let deadline = Deadline::after(60);
    while arrivals.count(instance) < n {
        deadline
            .sleep(Duration::from_millis(200), || {
                format!(
                    "{} of {n} events of {instance} arrived",
                    arrivals.count(instance)
                )
            })
            .await;
    }
}
