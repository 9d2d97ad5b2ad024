#!/usr/bin/env bash
# The chaos run (docs/reliability.md): a seeded random workload on the source (inserts, updates,
# key changes, deletes, multi-row and 500-row transactions, a DDL) while a fault schedule strikes
# the whole pipeline — SIGKILL of capture workers and of the sink, SIGKILL and restart of the
# Kafka broker, the replica MariaDB and Redis, SIGSTOP of a worker or the sink past their session
# timeouts, and a TCP proxy that delays, cuts and refuses the connections to the source, the
# replica, Redis and OpenSearch. Then it waits for the pipeline to converge and proves: the
# replica equals the source, the index equals the source, every changed row's stale cache key was
# deleted, no key's version ever went backwards in the targets (sampled every 0.5 s), and the
# dead-letter topic is empty. Prints the operations, the faults of each kind and the time to
# converge after the last fault.
#
#   CHAOS_SECONDS (1200) how long the workload and faults run
#   CHAOS_SEED           repeat a run (printed at the start)
#   CHAOS_FAULT_EVERY    mean seconds between faults (5)
#   CHAOS_RATE           workload transactions per second (20)
# A short run is part of the test suite (integration/tests/e2e/chaos.rs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/services.sh up >/dev/null
cargo build -q --bins -p sluice-capture -p sluice-sinks
cargo build -q -p sluice-integration --example chaos
exec target/debug/examples/chaos
