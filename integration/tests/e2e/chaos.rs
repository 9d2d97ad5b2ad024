//! A short chaos run (the long one is scripts/chaos.sh): the whole pipeline under a random
//! workload while capture workers and the sink are killed and paused, the broker, the replica and
//! Redis are killed and restarted and connections are cut; then the targets must equal the source
//! with every stale cache key deleted, no version ever gone back, and no dead letter.

use sluice_integration::chaos::{run, Options};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_chaos_run_loses_nothing() {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::random::<u32>() as u64);
    eprintln!("chaos seed {seed} (CHAOS_SEED={seed} repeats it)");
    let report = run(Options {
        seed,
        duration: Duration::from_secs(50),
        fault_every: Duration::from_secs(4),
        rate: 20,
        converge_within: Duration::from_secs(120),
    })
    .await
    .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    eprintln!("{report}");
    let faults: usize = report.faults.values().sum();
    assert!(faults >= 5, "only {faults} faults struck: {report}");
    assert!(report.done.transactions > 100, "{report}");
}
