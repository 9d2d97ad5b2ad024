//! The percentile report: per probe, the latencies from commit to sighting against its p99 target.

use crate::marks::Shared;
use crate::probe::PROBE_NAMES;

/// p99 targets in milliseconds; the topic's probe only shows the capture's share.
const TARGETS_MS: [Option<f64>; 4] = [Some(100.0), Some(100.0), Some(1500.0), None];

/// The table of latencies per probe, then per kind of write; true if a target was missed.
pub fn print_latencies(
    shared: &Shared,
    measured: std::ops::RangeInclusive<u64>,
    resolution: &[String; 4],
) -> bool {
    println!(
        "{:<20} {:<36} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}  {:>12}",
        "latency",
        "resolution",
        "rows",
        "seen",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "p99 target"
    );
    let mut missed = false;
    for (i, name) in PROBE_NAMES.iter().enumerate() {
        let lat = latencies(shared, i, measured.clone(), |_| true);
        let seen = lat.iter().filter(|l| l.is_finite()).count();
        let p99 = percentile(&lat, 0.99);
        let (target, verdict) = match TARGETS_MS[i] {
            Some(t) if p99 <= t => (format!("{t} ms"), "met"),
            Some(t) => {
                missed = true;
                (format!("{t} ms"), "MISSED")
            }
            None => ("-".to_owned(), ""),
        };
        println!(
            "{name:<20} {:<36} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}  {:>12} {}",
            resolution[i],
            lat.len(),
            seen,
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.95)),
            ms(p99),
            ms(percentile(&lat, 1.0)),
            target,
            verdict
        );
    }
    for (kind, is_update) in [("INSERTs", false), ("UPDATEs", true)] {
        let p: Vec<String> = (0..PROBE_NAMES.len())
            .map(|i| {
                let lat = latencies(shared, i, measured.clone(), |w| {
                    shared.plan.is_update(w) == is_update
                });
                format!(
                    "{} p50 {} / p99 {}",
                    PROBE_NAMES[i],
                    ms(percentile(&lat, 0.5)),
                    ms(percentile(&lat, 0.99))
                )
            })
            .collect();
        println!("  {kind} only: {} ms", p.join(", "));
    }
    missed
}

/// Latencies in ms of the writes in `range` that `keep` keeps, from commit to probe `i`'s time
/// (infinite when the probe never saw the write).
fn latencies(
    shared: &Shared,
    i: usize,
    range: std::ops::RangeInclusive<u64>,
    keep: impl Fn(u64) -> bool,
) -> Vec<f64> {
    let mut lat: Vec<f64> = range
        .filter(|w| keep(*w))
        .map(|w| match (shared.commits.get(w), shared.probes[i].get(w)) {
            (Some(c), Some(s)) => (s as f64 - c as f64) / 1e6,
            _ => f64::INFINITY,
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    lat
}

/// Nearest-rank percentile of sorted values (NaN for none).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(v: f64) -> String {
    if v.is_infinite() {
        "not seen".into()
    } else {
        format!("{v:.1}")
    }
}
