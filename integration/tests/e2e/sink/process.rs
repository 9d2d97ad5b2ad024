//! `sluice-sink` as a process: bad config files, kill -9, two processes in one group, SIGTERM.

use super::{
    all_committed, committed, config_text, parse_config, producer, redis_conn, send_event,
    user_event,
};
use sluice_event::{ChangeEvent, EventType};
use sluice_integration::process::{kill9, run_to_end, sink_binary, spawn_run, terminate};
use sluice_integration::{create_topic, redis_url, unique_name, wait};
use std::path::{Path, PathBuf};

fn write_config(text: &str) -> PathBuf {
    sluice_integration::write_temp_file("sinkcfg", "sink.toml", text)
}

#[tokio::test]
async fn sink_bad_config_files_fail_with_exact_messages() {
    let base = config_text(
        "t",
        "g",
        "type = \"redis\"\nurl = \"redis://127.0.0.1:6380\"",
        "",
    );
    let cases: Vec<(String, String)> = vec![
        (
            format!("{base}\n[rules.redis]\nkeys = [\"u:{{id}}\"]\n").replace("[batch]", "[batch]\nlinger = 5"),
            "TOML parse error at line 11, column 1\n   |\n11 | linger = 5\n   | ^^^^^^\nunknown field `linger`, expected one of `max_items`, `max_bytes`, `linger_ms`".into(),
        ),
        (
            format!("{base}\n[rules.redis]\nkeys = [\"u:{{id}}\"]\n").replace("[\"shop.users\"]", "[\"/shop\\\\.(users/\"]"),
            "invalid configuration:\n  rules[0].match.tables[0]".into(),
        ),
        (
            format!("{base}fields = {{ include = [\"id\"] }}\n[rules.redis]\nkeys = [\"u:{{email}}\"]\n"),
            "invalid configuration:\n  rules[0].redis.keys[0]: unknown column `email` in template `u:{email}`: fields.include does not keep it; add it to fields.include (kept: id)".into(),
        ),
        (
            format!("{base}fields = {{ json_path = {{ city = {{ column = \"attrs\", path = \"$.[\" }} }} }}\n[rules.redis]\nkeys = [\"u:{{id}}\"]\n"),
            "invalid configuration:\n  rules[0].fields.json_path.city".into(),
        ),
    ];
    let bin = sink_binary();
    for (text, want) in cases {
        let path = write_config(&text);
        let args = ["check".as_ref(), "--config".as_ref(), path.as_os_str()];
        let out = run_to_end(&bin, args, &[], 60).await;
        let stderr = &out.stderr;
        assert!(!out.success(), "{text}");
        let want = format!("sluice-sink: {}: {want}", path.display());
        assert!(stderr.starts_with(&want), "want:\n{want}\ngot:\n{stderr}");
    }
}

/// A `sluice-sink run` child process logging to a file.
struct SinkProcess {
    child: tokio::process::Child,
    log: PathBuf,
}

fn spawn_sink(config: &Path, name: &str) -> SinkProcess {
    let log = config.with_file_name(format!("{name}.log"));
    let child = spawn_run(&sink_binary(), config, &[], &[], &log);
    SinkProcess { child, log }
}

impl SinkProcess {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Sets `prefix:{id}` for `ids` to "stale", produces one UPDATE per id, and returns how many.
async fn stale_keys_and_events(topic: &str, prefix: &str, ids: std::ops::Range<i64>) -> i64 {
    let mut conn = redis_conn().await;
    let mut pipe = redis::pipe();
    for id in ids.clone() {
        pipe.set(format!("{prefix}:{id}"), "stale").ignore();
    }
    let () = pipe.query_async(&mut conn).await.unwrap();
    let p = producer();
    let events: Vec<ChangeEvent> = ids
        .clone()
        .map(|id| user_event(EventType::Update, id, "e", id + 1))
        .collect();
    for chunk in events.chunks(500) {
        futures::future::join_all(chunk.iter().map(|e| send_event(&p, topic, e, None, None))).await;
    }
    ids.end - ids.start
}

async fn remaining(prefix: &str) -> usize {
    let mut conn = redis_conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.len()
}

fn redis_sink_config(topic: &str, group: &str, prefix: &str) -> String {
    format!(
        "{}\n[rules.redis]\nkeys = [\"{prefix}:{{id}}\"]\n",
        config_text(
            topic,
            group,
            &format!("type = \"redis\"\nurl = \"{}\"", redis_url()),
            ""
        )
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_process_killed_with_sigkill_resumes_and_leaves_no_stale_key() {
    let topic = unique_name("sink_kill");
    create_topic(&topic, 4).await.unwrap();
    let prefix = unique_name("k");
    let group = unique_name("g");
    let text = redis_sink_config(&topic, &group, &prefix);
    let config = parse_config(&text);
    let path = write_config(&text);
    let total = stale_keys_and_events(&topic, &prefix, 0..5000).await;

    let mut first = spawn_sink(&path, "first");
    wait::until(120, "the first sink to make progress", async || {
        remaining(&prefix).await < total as usize
    })
    .await;
    kill9(&mut first.child).await;
    // More stale keys and events arrive while no sink runs.
    let more = stale_keys_and_events(&topic, &prefix, 5000..6000).await;
    // The second joins at once: the broker holds the rebalance until the dead member's session
    // (15 s) has expired, then gives the second every partition from the committed offsets.
    let mut second = spawn_sink(&path, "second");
    wait::until(120, "every message committed", async || {
        all_committed(&config, total + more).await
    })
    .await;
    assert_eq!(remaining(&prefix).await, 0, "stale keys left in Redis");
    kill9(&mut second.child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_two_processes_share_a_group_and_survive_a_kill() {
    let topic = unique_name("sink_pair");
    create_topic(&topic, 4).await.unwrap();
    let prefix = unique_name("p");
    let group = unique_name("g");
    let text = redis_sink_config(&topic, &group, &prefix);
    let config = parse_config(&text);
    let path = write_config(&text);

    let mut a = spawn_sink(&path, "a");
    let mut b = spawn_sink(&path, "b");
    // Both joined and the partitions are split between them.
    wait::until(120, "both sinks to own partitions", async || {
        let (la, lb) = (a.log_text(), b.log_text());
        assigned_last(&la).is_some_and(|n| n > 0 && n < 4)
            && assigned_last(&lb).is_some_and(|n| n > 0 && n < 4)
    })
    .await;
    let total = stale_keys_and_events(&topic, &prefix, 0..1000).await;
    wait::until(120, "the first batch committed", async || {
        all_committed(&config, total).await
    })
    .await;
    kill9(&mut a.child).await;
    let more = stale_keys_and_events(&topic, &prefix, 1000..2000).await;
    // Nobody else joins: the broker expires a's session (15 s) and rebalances, and the survivor
    // takes over a's partitions from their committed offsets and finishes the work alone.
    wait::until(90, "the survivor to own all four partitions", async || {
        assigned_last(&b.log_text()) == Some(4)
    })
    .await;
    wait::until(90, "the survivor to commit everything", async || {
        all_committed(&config, total + more).await
    })
    .await;
    assert_eq!(remaining(&prefix).await, 0, "stale keys left in Redis");
    kill9(&mut b.child).await;
}

/// The partition count of the last "partitions assigned" log line.
fn assigned_last(log: &str) -> Option<usize> {
    log.lines()
        .rev()
        .filter(|l| l.contains("partitions assigned"))
        .filter_map(|l| {
            let rest = l.split("partitions=").nth(1)?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_process_stops_on_sigterm_with_a_final_commit() {
    let topic = unique_name("sink_term");
    create_topic(&topic, 2).await.unwrap();
    let prefix = unique_name("t");
    // Periodic commits are an hour apart: only the final commit on SIGTERM can commit.
    let text = redis_sink_config(&topic, &unique_name("g"), &prefix)
        .replace("commit_interval_ms = 1000", "commit_interval_ms = 3600000");
    let config = parse_config(&text);
    let path = write_config(&text);
    let total = stale_keys_and_events(&topic, &prefix, 0..200).await;
    let mut sink = spawn_sink(&path, "term");
    wait::until(120, "every stale key invalidated", async || {
        remaining(&prefix).await == 0
    })
    .await;
    let exit = terminate(&mut sink.child, 60)
        .await
        .expect("sluice-sink did not stop within 60 s of SIGTERM");
    assert!(exit.success(), "{exit:?}\n{}", sink.log_text());
    assert!(
        all_committed(&config, total).await,
        "{:?}",
        committed(&config).await
    );
}
