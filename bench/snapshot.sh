#!/usr/bin/env bash
# Snapshot throughput: one table of ROWS rows (ints, decimal, varchar, text, datetime(3), json),
# measured in one run for:
#   (a) mariadb-dump --single-transaction --quick of the table > /dev/null   the baseline
#   (b) sluice-capture run, [snapshot] mode = "initial", into the local Kafka broker, from the
#       process start until Kafka acknowledged the last chunk (checkpoint covers it)
#   (c) a plain rdkafka producer sending as many messages of the snapshot's own event bytes
#       (a sample read back from (b)'s topic) with the capture's producer settings: the broker's
#       ceiling in this run
# and prints rows/s, the ratio of (b) to its ceiling, the slower of (a) and (c) (target: at
# least 0.6), the chunk count and peak RSS of (b).
# Needs the services of scripts/services.sh (it runs `up`): MariaDB on 3307, Kafka on 9092.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
cd "$ROOT"
ROWS="${ROWS:-1000000}"
CHUNK="${CHUNK:-10000}"
BROKER="${SLUICE_BENCH_KAFKA:-127.0.0.1:9092}"
DB=bench_snapshot
WORK="$ROOT/.state/bench-snapshot"
rm -rf "$WORK" && mkdir -p "$WORK"
since() { python3 -c "import time,sys; print(time.time() - float(sys.argv[1]))" "$1"; }

bash scripts/services.sh up >/dev/null
echo "building sluice-capture (release) ..."
cargo build --release --quiet -p sluice-capture --bin sluice-capture --example producer_ceiling
BIN="$ROOT/target/release/sluice-capture"
CEILING="$ROOT/target/release/examples/producer_ceiling"
export MIMALLOC_PURGE_DELAY="${MIMALLOC_PURGE_DELAY:-10000}"

if [ "$(sql -N -e "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$DB' AND TABLE_NAME = 'orders'")" = 1 ] &&
    [ "$(sql -N -e "SELECT COUNT(*) FROM $DB.orders")" = "$ROWS" ]; then
    echo "reusing $DB.orders ($ROWS rows)"
else
    echo "writing $ROWS rows ..."
    sql -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB; CREATE TABLE $DB.orders (
      id BIGINT UNSIGNED PRIMARY KEY, user_id INT NOT NULL, amount DECIMAL(12,2) NOT NULL,
      status VARCHAR(20) NOT NULL, note TEXT, created_at DATETIME(3) NOT NULL, items JSON NOT NULL)"
    {
        for ((lo = 1; lo <= ROWS; lo += 50000)); do
            hi=$((lo + 49999)); [ "$hi" -gt "$ROWS" ] && hi=$ROWS
            echo "INSERT INTO $DB.orders SELECT seq, seq % 5000, (seq % 100000) / 100, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'cancelled'), CONCAT('note for order ', seq, ': leave at the door'), TIMESTAMPADD(SECOND, seq, '2026-01-01 00:00:00.123'), JSON_OBJECT('sku', CONCAT('A-', seq % 97), 'qty', seq % 7, 'tags', JSON_ARRAY('x', 'y')) FROM seq_${lo}_to_${hi};"
        done
    } | sql "$DB"
fi
sql -e "ANALYZE TABLE $DB.orders" >/dev/null

# (a) mariadb-dump of the same table
t0=$(now)
mariadb-dump --no-defaults -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u"$MYSQL_USER" -p"$MYSQL_PW" \
    --single-transaction --quick --skip-lock-tables "$DB" orders >/dev/null
A_S=$(since "$t0")
A=$(rate "$ROWS" "$A_S")

# (b) initial snapshot through sluice-capture run, until acknowledged
INSTANCE="snapbench-$$"
trap 'drop_topics "$BROKER" "sluice.$INSTANCE" "snapbench-ceiling-$$"' EXIT
cat >"$WORK/capture.toml" <<TOML
instance = "$INSTANCE"
[source]
url = "mysql://$MYSQL_USER:$MYSQL_PW@$MYSQL_HOST:$MYSQL_PORT"
server_id = 7079
[kafka]
brokers = ["$BROKER"]
[publish]
create_topics = true
partitions = 6
[checkpoint]
dir = "$WORK/state"
interval_ms = 100
[filter]
include = ['^$DB\.(orders|sluice_signal)\$']
[snapshot]
mode = "initial"
tables = ["$DB.orders"]
chunk_size = $CHUNK
signal_table = "$DB.sluice_signal"
[metrics]
listen = "127.0.0.1:19467"
[log]
level = "warn,sluice_capture::snapshot=debug"  # per-chunk timings in run.log
TOML
t0=$(now)
/usr/bin/time -f "%M" -o "$WORK/run.rss" "$BIN" run --config "$WORK/capture.toml" 2>"$WORK/run.log" &
RUN_PID=$!
PROGRESS="$WORK/state/$INSTANCE.snapshot.json"
CP="$WORK/state/$INSTANCE.checkpoint.json"
# Done when the newest progress entry says done and the checkpoint's seq covers it (acked).
until [ -f "$PROGRESS" ] && [ -f "$CP" ] && python3 - "$PROGRESS" "$CP" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["entries"][-1]
cp = json.load(open(sys.argv[2]))
sys.exit(0 if all(j["state"] == "done" for j in p["jobs"]) and cp["seq"] >= p["seq"] else 1)
PY
do
    if ! kill -0 "$RUN_PID" 2>/dev/null; then echo "sluice-capture run stopped:"; cat "$WORK/run.log"; exit 1; fi
    sleep 0.05
done
B_S=$(since "$t0")
read -r B_ROWS CHUNKS < <(python3 -c "import json,sys; j=json.load(open(sys.argv[1]))['entries'][-1]['jobs'][0]; print(j['rows'], j['chunks'])" "$PROGRESS")
curl -s "http://127.0.0.1:19467/metrics" | grep '^sluice_capture_snapshot' >"$WORK/metrics.txt" || true
# /usr/bin/time does not pass the signal on: stop the capture it runs.
pkill -TERM -P "$RUN_PID" || true; wait "$RUN_PID" || true
B=$(rate "$B_ROWS" "$B_S")

# (c) the same count of messages, with 2,000 of the snapshot's own events as payloads
java -cp "${SLUICE_STATE_DIR:-$ROOT/.state}/kafka/lib/*" org.apache.kafka.tools.consumer.ConsoleConsumer \
    --bootstrap-server "$BROKER" --topic "sluice.$INSTANCE" --from-beginning --max-messages 2000 \
    >"$WORK/sample.jsonl" 2>/dev/null || true
read -r C_N C_S < <("$CEILING" "$BROKER" "snapbench-ceiling-$$" "$ROWS" 0 6 "$WORK/sample.jsonl")
C=$(rate "$C_N" "$C_S")
CEIL=$((A < C ? A : C))

echo
echo "rows: $ROWS, chunk_size $CHUNK, $CHUNKS chunks, $B_ROWS snapshot rows acknowledged"
printf '%-60s %10s rows/s  (%.1f s)\n' "(a) mariadb-dump --single-transaction --quick > /dev/null" "$A" "$A_S"
printf '%-60s %10s rows/s  (%.1f s)\n' "(b) sluice-capture snapshot -> $BROKER (acked)" "$B" "$B_S"
printf '%-60s %10s rows/s  (%.1f s)\n' "(c) plain producer, the snapshot's event bytes (acked)" "$C" "$C_S"
echo "b/a $(ratio "$B" "$A")   b/c $(ratio "$B" "$C")   b/ceiling $(ratio "$B" "$CEIL") (ceiling: the slower of a and c; target >= 0.60)"
echo "load average (1, 5, 15 min): $(cut -d' ' -f1-3 /proc/loadavg)"
awk '/^[0-9]+$/ { print "peak RSS (b): " int($1 / 1024) " MB" }' "$WORK/run.rss"
echo "metrics at the end:"; sed 's/^/  /' "$WORK/metrics.txt"
