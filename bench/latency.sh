#!/usr/bin/env bash
# End-to-end latency (numbers in docs/performance.md). A writer commits small transactions into a
# source table on the local MariaDB at a fixed rate (RATE rows/s for SECONDS_ s, default 5,000 for
# 60 s; 30% of the rows UPDATEs of existing rows, the rest INSERTs); one sluice-capture publishes
# them to a fresh topic and three sluice-sinks, one per team as in config/examples (each its own
# group, every consumer, batch and producer setting left at its default), apply them:
#   cache   - DEL of the row's Redis key (Cache-Aside invalidation); the keys exist beforehand
#   replica - upsert into a replica table in a second database on the same MariaDB
#   search  - index into OpenSearch, an index with the server's defaults (refresh every 1 s)
# bench/latency/ measures each row from the writer's COMMIT returning to: its key's deletion
# (Redis keyspace notifications), its replica row being visible (polled every 5 ms) and its
# document being visible to search (_count/_search polled every 20 ms); it prints p50/p95/p99/max
# of each against the targets (p99 <= 100 ms for cache and replica, <= 1,500 ms for search),
# with the achieved write rate, the load average and each process's CPU. A plain consumer of the
# topic is timed too (no target): the capture's share of those latencies.
#
# RATE=1000 SECONDS_=15 bench/latency.sh for a short run. Also: TXN_ROWS (rows per transaction,
# 10), UPDATE_PCT (30), WRITERS (writer connections, 4), REPLICA_POLL_MS (5), ES_POLL_MS (20).
# Everything it creates (databases, topic, groups, index, keys) goes when it exits; the logs stay
# in .state/bench-latency/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
source bench/lib.sh
RATE="${RATE:-5000}"
SECONDS_="${SECONDS_:-60}"
TXN_ROWS="${TXN_ROWS:-10}"
UPDATE_PCT="${UPDATE_PCT:-30}"
WRITERS="${WRITERS:-4}"
REPLICA_POLL_MS="${REPLICA_POLL_MS:-5}"
ES_POLL_MS="${ES_POLL_MS:-20}"
BROKERS="${SLUICE_BENCH_KAFKA:-127.0.0.1:9092}"
URL="${SLUICE_TEST_MYSQL_URL:-mysql://sluice:sluice@127.0.0.1:3307}"
REDIS_URL="${SLUICE_TEST_REDIS_URL:-redis://127.0.0.1:6380}"
ES="${SLUICE_TEST_ES_URL:-http://127.0.0.1:9200}"
STATE="${SLUICE_STATE_DIR:-$ROOT/.state}"
WORK="$STATE/bench-latency"
rm -rf "$WORK" && mkdir -p "$WORK"

bash scripts/services.sh up >&2
echo "building sluice-capture, sluice-sink and the latency helper (release) ..." >&2
cargo build --release --quiet -p sluice-capture --bin sluice-capture \
    -p sluice-sinks --bin sluice-sink --example latency
CAPTURE=target/release/sluice-capture
SINK=target/release/sluice-sink
HELPER=target/release/examples/latency

RUN="lat_$(date +%s)"
SRC="${RUN}_src"
REP="${RUN}_rep"
TOPIC="sluice.$RUN"
INDEX="$RUN"
GROUPS_=("$RUN-cache" "$RUN-replica" "$RUN-search")
HOSTPORT="${URL#*@}"; HOSTPORT="${HOSTPORT%%/*}"
CREDS="${URL#*://}"; CREDS="${CREDS%@*}"
sql() { mariadb --no-defaults -h "${HOSTPORT%:*}" -P "${HOSTPORT#*:}" -u"${CREDS%%:*}" -p"${CREDS#*:}" "$@"; }
rcli() { redis-cli -u "$REDIS_URL" "$@"; }

# The probe of deletions needs keyevent notifications of generic commands (E, g); the server's
# setting is put back on exit.
NOTIFY_BEFORE="$(rcli config get notify-keyspace-events | sed -n 2p)"
PIDS=()
stop_all() { # SIGTERM (capture and sinks drain and commit on it), SIGKILL after 30 s
    local pid i
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
cleanup() {
    stop_all
    rcli config set notify-keyspace-events "$NOTIFY_BEFORE" >/dev/null || true
    rcli --scan --pattern "$RUN:*" | xargs -r -n 1000 redis-cli -u "$REDIS_URL" del >/dev/null || true
    sql -e "DROP DATABASE IF EXISTS \`$SRC\`; DROP DATABASE IF EXISTS \`$REP\`" || true
    curl -s -XDELETE "$ES/$INDEX?ignore_unavailable=true" >/dev/null || true
    drop_topics "$BROKERS" "$TOPIC" "$TOPIC.dlq"
    local g args=()
    for g in "${GROUPS_[@]}"; do args+=(--group "$g"); done
    java -cp "$STATE/kafka/lib/*" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
        --bootstrap-server "$BROKERS" --delete "${args[@]}" >/dev/null 2>&1 || true
}
trap cleanup EXIT
rcli config set notify-keyspace-events "${NOTIFY_BEFORE}Eg" >/dev/null

COMMON=(--mysql-url "$URL" --source-db "$SRC" --replica-db "$REP" --es-url "$ES" --index "$INDEX"
    --rate "$RATE" --seconds "$SECONDS_" --txn-rows "$TXN_ROWS" --update-pct "$UPDATE_PCT")
# Tables, the rows the UPDATEs will change (in source and replica alike), the index; the capture
# starts at the binlog position after them.
START="$("$HELPER" setup "${COMMON[@]}")"

cat >"$WORK/capture.toml" <<TOML
instance = "$RUN"
[source]
url = "$URL"
server_id = 7291
start = "$START"
[kafka]
brokers = ["$BROKERS"]
[publish]
create_topics = true
[checkpoint]
dir = "$WORK/state"
[filter]
include = ["^$SRC\\\\.items\$"]
[metrics]
listen = "127.0.0.1:0"
[log]
level = "warn"
TOML
sink_config() { # name target-toml rule-toml
    cat >"$WORK/$1.toml" <<TOML
[kafka]
brokers = ["$BROKERS"]
[consumer]
group_id = "$RUN-$1"
topics = ["$TOPIC"]
[metrics]
listen = "127.0.0.1:0"
[log]
level = "warn"
[targets.$1]
$2
[[rules]]
name = "$1"
target = "$1"
match = { tables = ["$SRC.items"] }
$3
TOML
}
sink_config cache "type = \"redis\"
url = \"$REDIS_URL\"" "[rules.redis]
keys = [\"$RUN:{id}\"]"
sink_config replica "type = \"mysql\"
url = \"$URL/$REP\"" ""
sink_config search "type = \"elasticsearch\"
urls = [\"$ES\"]" "[rules.elasticsearch]
index = \"$INDEX\""

echo "== $RUN: $RATE rows/s for $SECONDS_ s, transactions of $TXN_ROWS rows, $UPDATE_PCT% UPDATEs, $WRITERS writer connections; load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$CAPTURE" run --config "$WORK/capture.toml" 2>"$WORK/capture.log" &
PIDS+=($!)
PID_ARGS=(--pid "capture=$!")
"$HELPER" wait-topic --brokers "$BROKERS" --topic "$TOPIC"
for s in cache replica search; do
    "$SINK" run --config "$WORK/$s.toml" 2>"$WORK/$s.log" &
    PIDS+=($!)
    PID_ARGS+=(--pid "sink-$s=$!")
done
# The services' own processes, when they are the local ones of scripts/services.sh.
for s in mariadb kafka opensearch redis; do
    if [ -r "$STATE/$s.pid" ] && kill -0 "$(cat "$STATE/$s.pid")" 2>/dev/null; then
        PID_ARGS+=(--pid "$s=$(cat "$STATE/$s.pid")")
    fi
done

if ! "$HELPER" run "${COMMON[@]}" --redis-url "$REDIS_URL" --key-prefix "$RUN" \
    --brokers "$BROKERS" --topic "$TOPIC" --writers "$WRITERS" \
    --replica-poll-ms "$REPLICA_POLL_MS" --es-poll-ms "$ES_POLL_MS" "${PID_ARGS[@]}" | tee "$WORK/result.txt"; then
    for s in capture cache replica search; do
        echo "-- $s log ($WORK/$s.log):" >&2
        tail -n 5 "$WORK/$s.log" >&2
    done
    exit 1
fi
for s in capture cache replica search; do
    if [ -s "$WORK/$s.log" ]; then echo "-- $s logged (warnings or errors), $WORK/$s.log:"; tail -n 3 "$WORK/$s.log"; fi
done
echo "== load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
