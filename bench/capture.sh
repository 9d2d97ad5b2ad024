#!/usr/bin/env bash
# Capture throughput on one binlog of ROWS row events (ints, decimal, varchar, text, datetime(3),
# json), measured in one run for:
#   (a) mariadb-binlog --read-from-remote-server --raw   the transfer ceiling
#   (b) python-mysql-replication + json.dumps            the baseline (venv in bench/.venv)
#   (c) sluice-capture tail > /dev/null                  decode + JSON encode
#   (d) sluice-capture run into the local Kafka broker     until the last event is acknowledged
#   (e) a plain rdkafka producer, same events            the broker's ceiling in this run:
#       same count, payloads, keys' partitions, the capture's three headers, producer settings
#       and allocator; (e0) is the same without headers, for reference
# and prints rows/s, the ratios c/b, c/a, d/b, d/e, peak RSS of (c) and (d), and the load average.
# (c)-(e0) run REPEAT times (default 3), alternating, after one untimed round of (d) and (e), and
# each reports its median.
# BIG_TXN_MB=1024 also pushes one transaction of that size through tail and run, for peak RSS;
# IN_FLIGHT=n sets the capture's publish.in_flight (default: the built-in one).
# Needs the services of scripts/services.sh (it runs `up`): MariaDB on 3307, Kafka on 9092.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
cd "$ROOT"
ROWS="${ROWS:-300000}"
BIG_TXN_MB="${BIG_TXN_MB:-0}"
BROKER="${SLUICE_BENCH_KAFKA:-127.0.0.1:9092}"
DB=bench_capture
WORK="$ROOT/.state/bench-capture"
rm -rf "$WORK" && mkdir -p "$WORK"
# Seconds between two `now` stamps (end stamps are taken by the shell, not a python start-up).
secs() { python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$1" "$2"; }

bash scripts/services.sh up >/dev/null
echo "building sluice-capture (release) ..."
cargo build --release --quiet -p sluice-capture --bin sluice-capture --example producer_ceiling
BIN="$ROOT/target/release/sluice-capture"
CEILING="$ROOT/target/release/examples/producer_ceiling"
# (e) has the capture's allocator and the purge delay sluice-capture sets for itself
# (sluice_config::allocator), so the ratio compares like with like.
export MIMALLOC_PURGE_DELAY="${MIMALLOC_PURGE_DELAY:-10000}"

if [ ! -x bench/.venv/bin/python ]; then
    echo "creating bench/.venv with python-mysql-replication ..."
    python3 -m venv bench/.venv
    bench/.venv/bin/pip install --quiet mysql-replication==1.0.17 pymysql
fi

echo "writing $ROWS rows in transactions of 1000 ..."
read -r START_FILE START_POS END_FILE END_POS < <(orders_binlog "$DB" "$ROWS")
echo "binlog: $START_FILE:$START_POS .. $END_FILE:$END_POS"
settle "$DB.orders"

cat >"$WORK/capture.toml" <<TOML
instance = "bench-$$"
[source]
url = "mysql://$MYSQL_USER:$MYSQL_PW@$MYSQL_HOST:$MYSQL_PORT"
server_id = 7078
start = "$START_FILE:$START_POS"
[kafka]
brokers = ["$BROKER"]
[publish]
create_topics = true
partitions = 6
${IN_FLIGHT:+in_flight = $IN_FLIGHT}
[checkpoint]
dir = "$WORK/state"
interval_ms = 100
[filter]
include = ["^$DB\\\\."]
[metrics]
listen = "127.0.0.1:19466"
[log]
level = "warn"
TOML

# (a) transfer ceiling
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(now)
(cd "$WORK" && mariadb-binlog --no-defaults --read-from-remote-server --raw -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u"$MYSQL_USER" -p"$MYSQL_PW" \
    --start-position="$START_POS" --stop-position="$END_POS" --to-last-log "$START_FILE" >/dev/null 2>&1 || true)
t1=$(now)
A_S=$(secs "$t0" "$t1")
A=$(rate "$ROWS" "$A_S")
rm -f "$WORK"/binlog.*

# (b) python-mysql-replication
read -r B_ROWS B_S < <(bench/.venv/bin/python bench/capture_pyrepl.py "$MYSQL_HOST" "$MYSQL_PORT" "$MYSQL_USER" "$MYSQL_PW" "$DB" "$START_FILE" "$START_POS" "$ROWS")
B=$(rate "$B_ROWS" "$B_S")

# The events once, untimed: their count and size, and the payloads of (e).
"$BIN" tail --config "$WORK/capture.toml" --until "$END_FILE:$END_POS" >"$WORK/events.jsonl" 2>/dev/null
read -r C_ROWS C_BYTES < <(wc -lc <"$WORK/events.jsonl")
AVG_SIZE=$((C_BYTES / (C_ROWS > 0 ? C_ROWS : 1)))

# (c), (d), (e) and (e0) are measured REPEAT times, alternating, and each reports its median:
# (d) and (e) then share the machine's state (a noisy neighbour, the broker's memory) as
# closely as two runs can, and one outlier moves neither. Every run's numbers are printed too.
REPEAT="${REPEAT:-3}"
median() { python3 -c "import statistics, sys; print(int(statistics.median(float(x) for x in sys.argv[1:])))" "$@"; }
trap 'drop_topics "$BROKER" "sluice.big-$$"' EXIT

# (c) sluice-capture tail > /dev/null; prints rows/s.
run_c() {
    local t0 t1
    t0=$(now)
    /usr/bin/time -f "%M" -o "$WORK/tail.rss.$1" "$BIN" tail --config "$WORK/capture.toml" --until "$END_FILE:$END_POS" >/dev/null
    t1=$(now)
    rate "$C_ROWS" "$(secs "$t0" "$t1")"
}

# (d) sluice-capture run until the checkpoint reaches the end position; prints rows/s. Its topic
# is created first, untimed, as (e)'s is: the run measures reading, encoding and publishing, not
# CreateTopics. `--until` makes the capture save its checkpoint as soon as the last event is
# acknowledged (a running capture saves every checkpoint.interval_ms) and exit; the exit is not
# timed.
run_d() {
    local instance="bench-$$-$1" t0 t1 pid
    sed -e "s/^instance = .*/instance = \"$instance\"/" "$WORK/capture.toml" >"$WORK/run.toml"
    "$CEILING" "$BROKER" "sluice.$instance" 0 1 6 >/dev/null
    t0=$(now)
    /usr/bin/time -f "%M" -o "$WORK/run.rss.$1" "$BIN" run --config "$WORK/run.toml" --until "$END_FILE:$END_POS" 2>"$WORK/run.log" &
    pid=$!
    # One poller (every 5 ms) that prints the time it saw the checkpoint reach the end.
    if ! t1=$(python3 - "$WORK/state/$instance.checkpoint.json" "$END_FILE" "$END_POS" "$pid" <<'PY'
import json, os, sys, time
path, end_file, end_pos, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
while True:
    try:
        with open(path) as f:
            cp = json.load(f)
        if (cp["file"], cp["pos"]) >= (end_file, end_pos):
            print(f"{time.time():.6f}")
            sys.exit(0)
    except (OSError, ValueError):
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    time.sleep(0.005)
PY
    ); then echo "sluice-capture run stopped:" >&2; cat "$WORK/run.log" >&2; exit 1; fi
    if ! wait "$pid"; then echo "sluice-capture run failed:" >&2; cat "$WORK/run.log" >&2; exit 1; fi
    drop_topics "$BROKER" "sluice.$instance"
    rate "$ROWS" "$(secs "$t0" "$t1")"
}

# (e) the plain producer, same count, the same event bytes as payloads (the untimed tail run),
# so the broker compresses and stores what it stores for the capture; prints rows/s. With
# HEADERS=0 in the environment: (e0).
run_e() {
    local topic="bench-ceiling-$$-$1" n s
    read -r n s < <("$CEILING" "$BROKER" "$topic" "$ROWS" "$AVG_SIZE" 6 "$WORK/events.jsonl")
    drop_topics "$BROKER" "$topic"
    rate "$n" "$s"
}

# One untimed round of (d) and (e) first. In three runs of this script the first (d) was the
# slowest of its three, every time: 316k-355k rows/s against 421k-483k (the first (e) was not).
# Its RSS file counts towards the peak RSS reported.
run_d 0 >/dev/null
run_e 0 >/dev/null

CS=() DS=() ES=() E0S=()
for ((k = 1; k <= REPEAT; k++)); do
    CS+=("$(run_c "$k")")
    DS+=("$(run_d "$k")")
    ES+=("$(run_e "$k")")
    E0S+=("$(HEADERS=0 run_e "0-$k")")
    echo "run $k of $REPEAT: (c) ${CS[-1]}  (d) ${DS[-1]}  (e) ${ES[-1]}  (e0) ${E0S[-1]} rows/s"
done
rm -f "$WORK/events.jsonl"
C=$(median "${CS[@]}") D=$(median "${DS[@]}") E=$(median "${ES[@]}") E0=$(median "${E0S[@]}")

echo
echo "rows: $ROWS (tail counted $C_ROWS events, $AVG_SIZE bytes each on average); (c)-(e0): median of $REPEAT"
printf '%-52s %12s rows/s\n' "(a) mariadb-binlog --raw (transfer ceiling)" "$A"
printf '%-52s %12s rows/s\n' "(b) python-mysql-replication + json.dumps" "$B"
printf '%-52s %12s rows/s\n' "(c) sluice-capture tail > /dev/null" "$C"
printf '%-52s %12s rows/s\n' "(d) sluice-capture run -> $BROKER (acked)" "$D"
printf '%-52s %12s rows/s\n' "(e) plain rdkafka producer, same events" "$E"
printf '%-52s %12s rows/s\n' "(e0) the same without headers" "$E0"
echo "c/b $(ratio "$C" "$B")   c/a $(ratio "$C" "$A")   d/b $(ratio "$D" "$B")   d/e $(ratio "$D" "$E")"
rss_mb() { awk '/^[0-9]+$/ { print int($1 / 1024) " MB"; found = 1 } END { if (!found) print "n/a" }' "$1"; }
# The highest of the runs.
peak_rss() { cat "$WORK/$1".rss.* | awk '/^[0-9]+$/ { if ($1 > m) m = $1 } END { print m + 0 }' >"$WORK/$1.rss"; rss_mb "$WORK/$1.rss"; }
echo "peak RSS: tail $(peak_rss tail), run $(peak_rss run)"
echo "load average (1, 5, 15 min): before (a) $LOAD0; after (e) $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "$BIG_TXN_MB" -gt 0 ]; then
    echo
    echo "one transaction of ~$BIG_TXN_MB MB ..."
    sql -e "CREATE TABLE IF NOT EXISTS $DB.big (id BIGINT PRIMARY KEY, body TEXT)"
    read -r BS_FILE BS_POS < <(sql -N -e "SHOW MASTER STATUS" | awk '{print $1, $2}')
    sql "$DB" -e "SET SESSION max_statement_time = 0; INSERT INTO $DB.big SELECT seq, REPEAT('b', 1000) FROM seq_1_to_$((BIG_TXN_MB * 1024))"
    sed -e "s/^start = .*/start = \"$BS_FILE:$BS_POS\"/" -e "s/instance = \"bench-$$\"/instance = \"big-$$\"/" "$WORK/capture.toml" >"$WORK/big.toml"
    /usr/bin/time -f "%M" -o "$WORK/bigtail.rss" "$BIN" tail --config "$WORK/big.toml" --until-end | wc -l >"$WORK/big.count"
    read -r BE_FILE BE_POS < <(sql -N -e "SHOW MASTER STATUS" | awk '{print $1, $2}')
    if ! /usr/bin/time -f "%M" -o "$WORK/bigrun.rss" "$BIN" run --config "$WORK/big.toml" --until "$BE_FILE:$BE_POS" 2>"$WORK/bigrun.log"; then
        cat "$WORK/bigrun.log"; exit 1
    fi
    echo "big transaction: $(cat "$WORK/big.count") rows; peak RSS tail $(rss_mb "$WORK/bigtail.rss"), run $(rss_mb "$WORK/bigrun.rss")"
    sql -e "DROP TABLE $DB.big"
fi
