#!/usr/bin/env bash
# Elasticsearch target throughput: EVENTS change events (default 1,000,000) on a topic of 8
# partitions of the benchmark broker, indexed into the local OpenSearch-compatible server, in one
# run for:
#   (a) direct bulk requests of the same documents (same NDJSON, versions, batch size, 8 at a time,
#       bodies prepared beforehand): the server's ceiling in this run
#   (b) sluice-sink run, from start until the group has committed every event: end to end
# and prints docs/s of both and the ratio b/a (target: at least 0.70).
# Needs: scripts/services.sh up --bench (tansu memory broker on 9095, osmem on 9200).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
cd "$ROOT"
EVENTS="${EVENTS:-1000000}"
BATCH="${BATCH:-1000}"
# Messages per partition the sink may hold before it pauses the partition. Above the messages per
# partition here, so no partition is paused: on this broker every resume costs a seek and one more
# fetch (the sink's offset gap check, docs/sink.md), which is the broker's cost, not the target's.
# MAX_IN_FLIGHT=20000 (the sink's default) bounds the sink's memory; every event arrives with it too.
MAX_IN_FLIGHT="${MAX_IN_FLIGHT:-$((EVENTS / 8 + 1000))}"
BROKER="${SLUICE_BENCH_KAFKA:-127.0.0.1:9095}"
ES="${SLUICE_TEST_ES_URL:-http://127.0.0.1:9200}"
RUN="es_bench_$(date +%s)"
WORK="$ROOT/.state/bench-elasticsearch"
rm -rf "$WORK" && mkdir -p "$WORK"

bash scripts/services.sh up --bench >/dev/null
echo "building sluice-sink and the es_bench helper (release) ..."
cargo build --release --quiet -p sluice-sinks --bin sluice-sink --example es_bench
SINK="$ROOT/target/release/sluice-sink"
HELPER="$ROOT/target/release/examples/es_bench"

trap 'drop_topics "$BROKER" "$RUN" "$RUN.dlq"' EXIT
echo "producing $EVENTS events to $RUN (8 partitions) on $BROKER ..."
"$HELPER" produce --brokers "$BROKER" --topic "$RUN" --partitions 8 --events "$EVENTS"

# (a) the server's ceiling: the same documents sent directly.
echo "(a) direct bulk requests ..."
read -r _ A_S < <("$HELPER" direct --url "$ES" --index "${RUN}_direct" --events "$EVENTS" --batch "$BATCH" --concurrency 8)
curl -s -XDELETE "$ES/${RUN}_direct" >/dev/null

# (b) end to end.
cat >"$WORK/sink.toml" <<TOML
[kafka]
brokers = ["$BROKER"]
[consumer]
group_id = "$RUN"
topics = ["$RUN"]
max_in_flight = $MAX_IN_FLIGHT
[batch]
max_items = $BATCH
max_bytes = 8388608
linger_ms = 20
[targets.search]
type = "elasticsearch"
urls = ["$ES"]
[[rules]]
name = "orders"
target = "search"
match = { tables = ["shop.orders"] }
[rules.elasticsearch]
index = "${RUN}_sink"
[metrics]
listen = "127.0.0.1:19468"
[log]
level = "warn"
TOML
echo "(b) sluice-sink run ..."
t0=$(date +%s.%N)
"$SINK" run --config "$WORK/sink.toml" >"$WORK/sink.log" 2>&1 &
PID=$!
"$HELPER" wait --brokers "$BROKER" --topic "$RUN" --group "$RUN" --events "$EVENTS" >/dev/null
B_S=$(python3 -c "import time,sys; print(time.time() - float(sys.argv[1]))" "$t0")
RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo 0)
kill "$PID"; wait "$PID" 2>/dev/null || true
count() { curl -s -XPOST "$ES/${RUN}_sink/_refresh" >/dev/null; curl -s "$ES/${RUN}_sink/_count" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("count"))'; }
COUNT=$(count)
if [ "$COUNT" = "$EVENTS" ]; then
    curl -s -XDELETE "$ES/${RUN}_sink" >/dev/null
else
    echo "documents in ${RUN}_sink: $COUNT of $EVENTS; the index is kept for a look (sink log: $WORK/sink.log)"
fi

A=$(rate "$EVENTS" "$A_S")
B=$(rate "$EVENTS" "$B_S")
echo
echo "events: $EVENTS, 8 partitions, bulk of $BATCH, max_in_flight $MAX_IN_FLIGHT"
printf '(a) direct bulk (ceiling)  %8.2f s  %8s docs/s\n' "$A_S" "$A"
printf '(b) sluice-sink end to end %8.2f s  %8s docs/s  (peak RSS %s MB, documents in the index: %s)\n' "$B_S" "$B" "$((RSS_KB / 1024))" "$COUNT"
echo "ratio b/a: $(ratio "$B" "$A") (target 0.70)"
