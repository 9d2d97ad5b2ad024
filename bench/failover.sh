#!/usr/bin/env bash
# Fleet fail-over time (numbers in docs/performance.md): three sluice-capture workers of one fleet
# share two instances of the local MariaDB under a steady insert load; KILLS times (default 20)
# the worker owning the first instance is killed with SIGKILL, and the time from the kill to the
# first event of each of its instances published by the new owner (read by a read_committed
# consumer) is taken. Prints every fail-over, the median and the max against the target
# (max <= 10 s with default settings: fleet.session_timeout_ms = 6000), the load average, and
# whether every insert arrived exactly once. KILLS=5 bench/failover.sh for a short run;
# SESSION_MS sets the fleet's session timeout.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/services.sh up >/dev/null
cargo build -q -p sluice-capture --bins
cargo build -q -p sluice-integration --example failover_bench
exec target/debug/examples/failover_bench
