#!/usr/bin/env bash
# MySQL replica benchmark (numbers in docs/performance.md): 1M change events of one table
# (30% INSERTs of new rows, 70% UPDATEs) on an 8-partition topic of the local Kafka broker, then
#   baseline - the same rows loaded into MariaDB with plain multi-row
#              INSERT ... ON DUPLICATE KEY UPDATE (1,000 rows each) from one client: the ceiling,
#   sink     - sluice-sink writing them into a replica table, from start until fully committed,
# printing rows/s and the ratio sink / baseline. EVENTS=200000 bench/mysql.sh for a shorter run;
# SINK_BIN=path runs another sluice-sink build (or a wrapper that profiles it) in the sink step.
# MAX_IN_FLIGHT=n sets consumer.max_in_flight (default: the sink's own).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
EVENTS="${EVENTS:-1000000}"
BROKERS="${SLUICE_BENCH_KAFKA:-127.0.0.1:9092}"
URL="${SLUICE_TEST_MYSQL_URL:-mysql://sluice:sluice@127.0.0.1:3307}"
WORK="${SLUICE_STATE_DIR:-$ROOT/.state}/bench-mysql"
# Connections of the sink's pool, i.e. concurrent batch transactions. 2 matches this machine's
# 2 cores: with the default 8, MariaDB spent ~50% more CPU per row on 8 concurrent transactions
# (docs/performance.md has both). POOL_SIZE=8 bench/mysql.sh measures the default.
POOL_SIZE="${POOL_SIZE:-2}"
mkdir -p "$WORK"

bash scripts/services.sh up >&2
cargo build --release --quiet -p sluice-sinks --bin sluice-sink --example mysql_bench
BENCH=target/release/examples/mysql_bench
SINK="${SINK_BIN:-target/release/sluice-sink}"
# The local MariaDB's pid, so the helper prints the server's CPU time for each load.
PIDFILE="${SLUICE_STATE_DIR:-$ROOT/.state}/mariadb/mariadbd.pid"
SERVER=()
if [ -z "${SLUICE_TEST_MYSQL_URL:-}" ] && [ -r "$PIDFILE" ]; then SERVER=(--server-pid "$(cat "$PIDFILE")"); fi
RUN="$(date +%s)"
TOPIC="bench_mysql_$RUN"
DB="bench_mysql_$RUN"
source "$ROOT/bench/lib.sh"

HOSTPORT="${URL#*@}"; HOSTPORT="${HOSTPORT%%/*}"
CREDS="${URL#*://}"; CREDS="${CREDS%@*}"
sql() { mariadb --no-defaults -h "${HOSTPORT%:*}" -P "${HOSTPORT#*:}" -u"${CREDS%%:*}" -p"${CREDS#*:}" "$@"; }
TABLE='(id BIGINT UNSIGNED NOT NULL PRIMARY KEY, name VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL,
        qty INT NOT NULL, amount DECIMAL(12,2) NOT NULL, updated_at DATETIME(6) NOT NULL) ENGINE=InnoDB'
# The topics and the database go when the script ends: 1M rows twice is ~1 GB of tables and binlog.
trap 'drop_topics "$BROKERS" "$TOPIC" "$TOPIC.dlq"; sql -e "DROP DATABASE IF EXISTS $DB"' EXIT
sql -e "CREATE DATABASE $DB; CREATE TABLE $DB.items $TABLE; CREATE TABLE $DB.items_baseline $TABLE"

cat >"$WORK/sink.toml" <<TOML
[kafka]
brokers = ["$BROKERS"]
[consumer]
group_id = "$TOPIC"
topics = ["$TOPIC"]
commit_interval_ms = 200
${MAX_IN_FLIGHT:+max_in_flight = $MAX_IN_FLIGHT}
[batch]
max_items = ${MAX_ITEMS:-1000}
linger_ms = 20
[metrics]
listen = "127.0.0.1:0"
[log]
level = "info"
[targets.replica]
type = "mysql"
url = "$URL/$DB"
pool_size = $POOL_SIZE
[[rules]]
name = "items"
target = "replica"
match = { tables = ["bench.items"] }
TOML

echo "== $EVENTS events of bench.items, topic $TOPIC (8 partitions) on $BROKERS, replica $DB, pool_size $POOL_SIZE, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$BENCH" --brokers "$BROKERS" --topic "$TOPIC" --events "$EVENTS" produce --partitions 8
"$BENCH" --brokers "$BROKERS" --topic "$TOPIC" --events "$EVENTS" "${SERVER[@]}" baseline \
    --url "$URL/$DB" --table items_baseline | tee "$WORK/baseline.out"
"$BENCH" --brokers "$BROKERS" --topic "$TOPIC" --events "$EVENTS" "${SERVER[@]}" sink --bin "$SINK" \
    --config "$WORK/sink.toml" --group "$TOPIC" | tee "$WORK/sink.out"

echo "== load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
# Both loads end in the same rows.
same="$(sql -N -e "SELECT (SELECT COUNT(*) FROM $DB.items) = (SELECT COUNT(*) FROM $DB.items_baseline)
    AND (SELECT BIT_XOR(CRC32(CONCAT_WS('#', id, name, status, qty, amount, updated_at))) FROM $DB.items)
      = (SELECT BIT_XOR(CRC32(CONCAT_WS('#', id, name, status, qty, amount, updated_at))) FROM $DB.items_baseline)")"
rate() { sed -E 's/.* = ([0-9]+) rows\/s.*/\1/' "$WORK/$1.out"; }
awk -v b="$(rate baseline)" -v s="$(rate sink)" -v same="$same" 'BEGIN {
    printf "sink / baseline = %.2f (target >= 0.80); sink = %d rows/s; tables equal: %s\n",
        s / b, s, (same == 1 ? "yes" : "NO") }'
echo "load average (1, 5, 15 min): $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$same" = 1 ]; then sql -e "DROP DATABASE $DB"; else echo "kept $DB for a look"; exit 1; fi
