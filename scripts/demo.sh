#!/usr/bin/env bash
# The Sluice demo: local services up, the sample `shop` database, sluice-capture and sluice-sink
# on the example configs in config/examples/, some writes, and where each row landed.
# Run it from anywhere; it is safe to run again (it recreates the sample database).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STATE="${SLUICE_STATE_DIR:-$ROOT/.state}"
DEMO="$STATE/demo"
mkdir -p "$DEMO"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
sql() { mariadb --no-defaults -h 127.0.0.1 -P 3307 -usluice -psluice "$@"; }

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

say "1. local services (MariaDB, Kafka, Redis, OpenSearch)"
bash scripts/services.sh up
bash scripts/services.sh status

say "2. the sample database: shop.users and shop.orders_00 .. orders_03"
sql <scripts/demo/shop.sql
sql -e "SHOW TABLES FROM shop"

say "3. building sluice-capture and sluice-sink"
cargo build --release --bins --quiet

# --- capture step (issue 3): start sluice-capture on config/examples/capture.toml ---
say "3a. sluice-capture: the binlog of 127.0.0.1:3307 into the Kafka topic sluice.shop-main"
export MYSQL_PASSWORD="${MYSQL_PASSWORD:-sluice}"
# The sample database was just recreated, so an earlier run's checkpoint points at changes that
# no longer matter, in a binlog the server may have purged since (expire_logs_days): start at
# the end, as a new instance does.
rm -f .state/capture/shop-main.checkpoint.json
target/release/sluice-capture check --config config/examples/capture.toml
target/release/sluice-capture run --config config/examples/capture.toml >"$DEMO/capture.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.1:9465/readyz >/dev/null && break; sleep 0.2; done
curl -sf http://127.0.0.1:9465/readyz >/dev/null || { echo "sluice-capture did not get ready; see $DEMO/capture.log"; exit 1; }
echo "sluice-capture is streaming (log: $DEMO/capture.log, metrics: http://127.0.0.1:9465/metrics)"
# --- end capture step ---

# --- sink step (issue 4): start sluice-sink on config/examples/sink.toml ---
say "3b. sluice-sink: sluice.shop-main into Redis (invalidate user keys, refresh order copies)"
rcli() { redis-cli -h 127.0.0.1 -p 6380 "$@"; }
# Cache-Aside entries a service would have cached before the writes below.
for key in user:1 user:2 user:email:ada@example.com; do rcli SET "$key" stale >/dev/null; done
target/release/sluice-sink run --config config/examples/sink.toml >"$DEMO/sink.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.1:9464/readyz >/dev/null && break; sleep 0.2; done
curl -sf http://127.0.0.1:9464/readyz >/dev/null || { echo "sluice-sink did not get ready; see $DEMO/sink.log"; exit 1; }
echo "sluice-sink is consuming (log: $DEMO/sink.log, metrics: http://127.0.0.1:9464/metrics)"
echo "cached before the writes: user:1=$(rcli GET user:1) user:email:ada@example.com=$(rcli GET user:email:ada@example.com)"
say "3c. sluice-sink: the order shards orders_00 .. orders_03 into one OpenSearch index, orders"
# A fresh index each run (the sample database is recreated too); create_index gives its mapping.
curl -s -XDELETE http://127.0.0.1:9200/orders >/dev/null || true
target/release/sluice-sink run --config config/examples/sink-search.toml >"$DEMO/sink-search.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.1:9466/readyz >/dev/null && break; sleep 0.2; done
curl -sf http://127.0.0.1:9466/readyz >/dev/null || { echo "sluice-sink (search) did not get ready; see $DEMO/sink-search.log"; exit 1; }
echo "sluice-sink (search) is consuming (log: $DEMO/sink-search.log)"
say "3d. sluice-sink: shop.users and the order shards into the shop_replica database"
sql <scripts/demo/shop_replica.sql
export REPLICA_PASSWORD="${REPLICA_PASSWORD:-sluice}"
target/release/sluice-sink run --config config/examples/sink-replica.toml >"$DEMO/sink-replica.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.1:9467/readyz >/dev/null && break; sleep 0.2; done
curl -sf http://127.0.0.1:9467/readyz >/dev/null || { echo "sluice-sink (replica) did not get ready; see $DEMO/sink-replica.log"; exit 1; }
echo "sluice-sink (replica) is consuming (log: $DEMO/sink-replica.log)"
# --- end sink step ---

say "4. writes in MariaDB"
sql <scripts/demo/writes.sql
sql -t -e "SELECT id, email, name FROM shop.users; SELECT id, user_id, status, amount FROM shop.orders_00 UNION ALL SELECT id, user_id, status, amount FROM shop.orders_01 UNION ALL SELECT id, user_id, status, amount FROM shop.orders_03"

say "5. where each row landed"
# --- landed step: each target issue prints what reached its target ---
sleep 2
echo "Kafka topic sluice.shop-main: events sluice-capture published, by table and type:"
curl -s http://127.0.0.1:9465/metrics | grep '^sluice_capture_events_total' || true
target/release/sluice-capture position --config config/examples/capture.toml
# sink: the users' cached keys are gone (the old email's key too), the orders are cached as JSON.
for _ in $(seq 50); do [ "$(rcli EXISTS user:email:ada@example.com)" = 0 ] && [ "$(rcli EXISTS order:100)" = 1 ] && break; sleep 0.2; done
echo "Redis after the writes:"
for key in user:1 user:2 user:email:ada@example.com; do echo "  $key exists: $(rcli EXISTS "$key")"; done
echo "  order:100 = $(rcli GET order:100) (ttl $(rcli TTL order:100) s)"
echo "  order:102 exists: $(rcli EXISTS order:102) (deleted in MariaDB)"
# The sink commits every commit_interval_ms (1 s): wait for it, so the table shows no lag.
for _ in $(seq 20); do
    target/release/sluice-sink offsets --config config/examples/sink.toml 2>/dev/null |
        awk 'NR > 1 && $5 != 0 { lag = 1 } END { exit lag }' && break
    sleep 0.2
done
target/release/sluice-sink offsets --config config/examples/sink.toml
# elasticsearch: three orders in one index (102 was deleted), each at the version of its last change.
for _ in $(seq 50); do curl -s http://127.0.0.1:9200/orders/_count | grep -q '"count":3' && break; sleep 0.2; done
echo "OpenSearch index orders, search status:paid OR total >= 50:"
curl -s -XPOST 'http://127.0.0.1:9200/orders/_search' -H 'content-type: application/json' \
    -d '{"query":{"bool":{"should":[{"term":{"status":"paid"}},{"range":{"total":{"gte":50}}}]}}}' |
    python3 -c 'import json, sys
hits = json.load(sys.stdin)["hits"]["hits"]
for h in sorted(hits, key=lambda h: h["_id"]):
    s = h["_source"]
    print("  _id", h["_id"], "status", s.get("status"), "total", s.get("total"), "skus", s.get("skus"), "user", s.get("user_id"))
print("  (" + str(len(hits)) + " hits)")'
# mysql: shop_replica follows shop; order 102 is soft-deleted; verify compares both by key ranges.
for _ in $(seq 50); do [ "$(sql -N -e "SELECT COUNT(*) FROM shop_replica.orders WHERE deleted_at IS NOT NULL")" = 1 ] && [ "$(sql -N -e "SELECT email FROM shop_replica.users WHERE id = 1")" = ada@lovelace.example ] && break; sleep 0.2; done
echo "MariaDB shop_replica (users without password; the four shards in one orders table):"
sql -t -e "SELECT id, email, name FROM shop_replica.users; SELECT id, user_id, status, amount, deleted_at IS NOT NULL AS deleted, version FROM shop_replica.orders"
for rule in users-replica orders-replica; do
    target/release/sluice-sink verify --config config/examples/sink-replica.toml --rule "$rule" || echo "verify: $rule differs (see above)"
done
# --- end landed step ---
echo
echo "done; stopping sluice-capture and the sinks (their logs are in $DEMO)"
