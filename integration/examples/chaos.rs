//! The chaos run by hand (scripts/chaos.sh; figures in docs/reliability.md): the pipeline under a
//! seeded workload and fault schedule, then the proof that nothing was lost. Prints the figures;
//! exits 1 with what did not hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_integration::chaos::{run, Options};
use std::time::Duration;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seed = env("CHAOS_SEED", rand::random::<u32>() as u64);
    let opts = Options {
        seed,
        duration: Duration::from_secs(env("CHAOS_SECONDS", 1200)),
        fault_every: Duration::from_secs_f64(env("CHAOS_FAULT_EVERY", 5.0)),
        rate: env("CHAOS_RATE", 20),
        converge_within: Duration::from_secs(env("CHAOS_CONVERGE_SECONDS", 300)),
    };
    eprintln!("[chaos] {opts:?} (CHAOS_SEED={seed} repeats the schedule and the workload)");
    match run(opts).await {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("[chaos] FAILED (seed {seed}): {e}");
            std::process::exit(1);
        }
    }
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
