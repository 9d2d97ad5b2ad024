//! Rule throughput on one core: `cargo bench -p sluice-rules`.
//!
//! Prints events/s per rule shape and the ratio to a baseline that only copies each event's
//! `data` (the least any mapping must do), measured in the same process.

use serde_json::{json, Value};
use sluice_config::Problems;
use sluice_event::{ChangeEvent, EventType, Position, Row, Source};
use sluice_rules::{RuleConfig, RuleSet, Template};
use std::hint::black_box;
use std::time::{Duration, Instant};

const EVENTS: usize = 100_000;
const ROUNDS: usize = 5;

#[derive(serde::Deserialize)]
struct File {
    rules: Vec<RuleConfig>,
}

const RULES: &str = r#"
[[rules]]
name = "identity"
target = "t"
match = { tables = ["shop.orders_*"] }

[[rules]]
name = "search"
target = "t"
match = { tables = ['/^shop\.orders_\d+$/'] }
where = 'status != "deleted" && amount > 100'
id = "{tenant_id}:{id}"
[rules.fields]
exclude = ["note"]
rename = { amount = "total" }
constants = { origin = "shop-main" }
convert = { tags = "split", created = "epoch_seconds_to_datetime" }
json_path = { city = { column = "shipping", path = "$.address.city" } }

[[rules]]
name = "cache"
target = "t"
match = { tables = ["shop.orders_[0-9][0-9]"] }
only_if_changed = ["status", "email"]
"#;

fn main() {
    let file: File = match toml::from_str(RULES) {
        Ok(f) => f,
        Err(e) => panic!("bench rules: {e}"),
    };
    let mut problems = Problems::default();
    let set = RuleSet::compile(&file.rules, &mut problems);
    assert!(problems.is_empty(), "{problems}");
    let keys = [
        Template::parse("order:{id}").expect("template"),
        Template::parse("order:email:{email|lower}").expect("template"),
    ];

    let inserts: Vec<ChangeEvent> = (0..EVENTS).map(|i| event(i, EventType::Insert)).collect();
    let updates: Vec<ChangeEvent> = (0..EVENTS).map(|i| event(i, EventType::Update)).collect();

    let baseline = each(&inserts, |e| {
        black_box(e.data.clone());
    });
    report("baseline: clone data", baseline, baseline);

    let identity = set.rule(0);
    report(
        "identity, INSERT",
        each(&inserts, |e| {
            black_box(identity.apply(e).ok());
        }),
        baseline,
    );
    let search = set.rule(1);
    report(
        "where + fields + json_path + id, INSERT",
        each(&inserts, |e| {
            black_box(search.apply(e).ok());
        }),
        baseline,
    );
    let cache = set.rule(2);
    report(
        "only_if_changed + 2 keys (new and old row), UPDATE",
        each(&updates, |e| {
            if let Ok(Some(m)) = cache.apply(e) {
                for t in &keys {
                    black_box(t.try_render(&m.doc).ok());
                    if let Some(old) = &m.old_doc {
                        black_box(t.try_render(old).ok());
                    }
                }
            }
        }),
        baseline,
    );
    report(
        "matching (uncached), 3 rules",
        each(&inserts, |e| {
            black_box(set.matching(&e.instance, &e.database, &e.table));
        }),
        baseline,
    );
}

/// The best time of [`ROUNDS`] passes of `f` over every event.
fn each(events: &[ChangeEvent], f: impl Fn(&ChangeEvent)) -> Duration {
    best(|| events.iter().for_each(&f))
}

fn best(mut run: impl FnMut()) -> Duration {
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn report(name: &str, took: Duration, baseline: Duration) {
    let per_sec = EVENTS as f64 / took.as_secs_f64();
    let ratio = took.as_secs_f64() / baseline.as_secs_f64();
    println!("{name:<55} {per_sec:>12.0} events/s  {ratio:>5.2}x baseline time");
}

fn event(i: usize, kind: EventType) -> ChangeEvent {
    let data = json!({
        "id": i, "tenant_id": i % 17, "status": "paid", "amount": format!("{}.50", 50 + i % 200),
        "email": format!("User{i}@Example.com"), "note": "internal", "tags": "a,b,c",
        "created": 1_763_716_502 + i as i64, "shipping": {"address": {"city": "Oslo", "zip": "0150"}},
        "updated_at": "2026-11-21T09:15:02.123456"
    });
    let old = (kind == EventType::Update)
        .then(|| obj(json!({"status": "new", "email": format!("old{i}@example.com")})));
    ChangeEvent {
        v: 1,
        seq: i as i64,
        source: Source::Binlog,
        instance: "shop-main".into(),
        database: "shop".into(),
        table: format!("orders_{:02}", i % 64),
        kind,
        ts_ms: 0,
        capture_ms: 0,
        pos: Position {
            file: "binlog.000001".into(),
            offset: i as u64,
            row: 0,
            gtid: None,
        },
        xid: None,
        txn_last: true,
        pk: vec!["id".into()],
        data: obj(data),
        old,
        sql: None,
    }
}

fn obj(v: Value) -> Row {
    match v {
        Value::Object(m) => m,
        _ => Row::new(),
    }
}
