//! The `run` command: warm-up, the measured writes and their tail, the machine's load, the report.

use crate::marks::{Marks, Shared};
use crate::opensearch::{es_client, refreshes};
use crate::plan::Plan;
use crate::probe::{self, PROBE_NAMES, REPLICA, SEARCH};
use crate::{common, report, writer, RunArgs};
use anyhow::bail;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let c = &args.common;
    let plan = Plan::new(c)?;
    let total = plan.total;
    let shared = Arc::new(Shared {
        base: Instant::now(),
        commits: Marks::new(total),
        probes: [(); 4].map(|_| Marks::new(total)),
        plan,
        stop: AtomicBool::new(false),
    });
    probe::precreate_keys(&args.redis_url, &args.key_prefix, total).await?;
    let probes = probe::start(&shared, &args)?;

    // Warm-up: start-up, group joins and first connections are not part of the figures.
    let source_url = format!("{}/{}", c.mysql_url, c.source_db);
    let warm = shared.plan.warmup;
    if warm > 0 {
        writer::write(
            &shared,
            &source_url,
            &c.source_db,
            1,
            warm,
            c.rate,
            args.writers,
        )
        .await?;
        let deadline = Instant::now() + Duration::from_secs(args.warmup_timeout_secs);
        while !shared.probes.iter().all(|p| p.all_set(1..=warm)) {
            if Instant::now() > deadline {
                let missing: Vec<&str> = (0..PROBE_NAMES.len())
                    .filter(|&i| !shared.probes[i].all_set(1..=warm))
                    .map(|i| PROBE_NAMES[i])
                    .collect();
                probe::stop(&shared, probes);
                bail!(
                    "the warm-up rows did not all arrive within {} s ({} missing); see the logs of capture and sinks",
                    args.warmup_timeout_secs,
                    missing.join(", ")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let es = es_client(&c.es_url)?;
    let refresh_start = refreshes(&es, &c.index).await?;
    let load_start = loadavg();
    let cpu_start: Vec<Option<f64>> = args
        .pids
        .iter()
        .map(|(_, p)| common::cpu_secs(*p))
        .collect();
    let own_cpu_start = common::cpu_secs(std::process::id());
    let started = Instant::now();
    let lateness = writer::write(
        &shared,
        &source_url,
        &c.source_db,
        warm + 1,
        total,
        c.rate,
        args.writers,
    )
    .await?;
    let written = started.elapsed();
    let measured = warm + 1..=total;
    let deadline = Instant::now() + Duration::from_secs(args.tail_secs);
    let mut firsts = [warm + 1; 4];
    loop {
        for (first, marks) in firsts.iter_mut().zip(&shared.probes) {
            *first = marks.first_unset(*first, total);
        }
        if firsts.iter().all(|f| *f > total) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let window = started.elapsed();
    let load_end = loadavg();
    let refresh_end = refreshes(&es, &c.index).await?;
    let cpu: Vec<Option<f64>> = args
        .pids
        .iter()
        .zip(&cpu_start)
        .map(|((_, p), before)| Some(common::cpu_secs(*p)? - (*before)?))
        .collect();
    let own_cpu = common::cpu_secs(std::process::id()).zip(own_cpu_start);
    let stats = probe::stop(&shared, probes);

    // The report.
    let rows = total - warm;
    let updates = measured
        .clone()
        .filter(|w| shared.plan.is_update(*w))
        .count();
    println!(
        "measured rows: {rows} ({} INSERTs, {updates} UPDATEs), transactions of {} rows from {} connections, after {warm} warm-up rows",
        rows as usize - updates,
        c.txn_rows,
        args.writers
    );
    println!(
        "write rate: {:.0} rows/s achieved over {:.1} s (asked {} rows/s); a transaction started at most {:.1} ms after its scheduled time",
        rows as f64 / written.as_secs_f64(),
        written.as_secs_f64(),
        c.rate,
        lateness.as_secs_f64() * 1000.0
    );
    println!("load average (1, 5, 15 min): {load_start} at the start, {load_end} at the end");
    let mut usage: Vec<String> = args
        .pids
        .iter()
        .zip(&cpu)
        .filter_map(|((name, _), s)| {
            Some(format!(
                "{name} {:.0}%",
                s.as_ref()? * 100.0 / window.as_secs_f64()
            ))
        })
        .collect();
    if let Some((after, before)) = own_cpu {
        usage.push(format!(
            "writer+probes {:.0}%",
            (after - before) * 100.0 / window.as_secs_f64()
        ));
    }
    println!(
        "CPU over the {:.1} s of writes and tail, % of one core: {}",
        window.as_secs_f64(),
        usage.join(", ")
    );
    let (n, ms_total) = (
        refresh_end.0 - refresh_start.0,
        refresh_end.1 - refresh_start.1,
    );
    println!(
        "OpenSearch refreshed the index {n} times in that window, {:.0} ms each on average",
        if n == 0 {
            0.0
        } else {
            ms_total as f64 / n as f64
        }
    );
    let resolution = [
        "exact (keyspace notification)".to_owned(),
        format!(
            "poll {} ms + {:.1} ms query",
            args.replica_poll_ms,
            stats[REPLICA].mean_ms()
        ),
        format!(
            "poll {} ms + {:.1} ms count/search",
            args.es_poll_ms,
            stats[SEARCH].mean_ms()
        ),
        "consumer receipt (no group)".to_owned(),
    ];
    let missed = report::print_latencies(&shared, measured, &resolution);
    println!(
        "targets: p99 <= 100 ms for the cache key and the replica row, <= 1500 ms for search: {}",
        if missed { "MISSED" } else { "met" }
    );
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
