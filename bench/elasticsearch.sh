#!/usr/bin/env bash
# Elasticsearch target throughput: EVENTS change events (default 1,000,000) on a topic of 8
# partitions of the local Apache Kafka broker, indexed into the local OpenSearch 2.19 node, in one
# run for:
#   (a) direct bulk requests of the same documents (same NDJSON, versions, batch size, 8 at a time,
#       bodies prepared beforehand): the server's ceiling in this run
#   (b) sluice-sink run, from start until the group has committed every event: end to end
# and prints docs/s of both and the ratio b/a (target: at least 0.70).
# Needs the services of scripts/services.sh (it runs `up`, which does nothing for those already
# running): Kafka on 127.0.0.1:9092, OpenSearch on 127.0.0.1:9200. Run it on a quiet machine.
# EVENTS=20000 bench/elasticsearch.sh for a quick check that it works.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
cd "$ROOT"
EVENTS="${EVENTS:-1000000}"
BATCH="${BATCH:-1000}"
# Messages per partition the sink may hold before it pauses the partition: the sink's own default
# (consumer.max_in_flight) unless this is set.
MAX_IN_FLIGHT="${MAX_IN_FLIGHT:-}"
BROKER="${SLUICE_BENCH_KAFKA:-127.0.0.1:9092}"
ES="${SLUICE_TEST_ES_URL:-http://127.0.0.1:9200}"
RUN="es_bench_$(date +%s)"
WORK="${SLUICE_STATE_DIR:-$ROOT/.state}/bench-elasticsearch"
rm -rf "$WORK" && mkdir -p "$WORK"

bash scripts/services.sh up >/dev/null
echo "building sluice-sink and the es_bench helper (release) ..."
cargo build --release --quiet -p sluice-sinks --bin sluice-sink --example es_bench
SINK="$ROOT/target/release/sluice-sink"
HELPER="$ROOT/target/release/examples/es_bench"

# The node keeps its indexes on disk: a run that stops early leaves no direct-bulk index behind
# (the sink's index is kept only when it is incomplete, for a look).
trap 'drop_topics "$BROKER" "$RUN" "$RUN.dlq"; curl -s -XDELETE "$ES/${RUN}_direct?ignore_unavailable=true" >/dev/null || true' EXIT
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
${MAX_IN_FLIGHT:+max_in_flight = $MAX_IN_FLIGHT}
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
echo "events: $EVENTS, 8 partitions, bulk of $BATCH, max_in_flight ${MAX_IN_FLIGHT:-default}"
printf '(a) direct bulk (ceiling)  %8.2f s  %8s docs/s\n' "$A_S" "$A"
printf '(b) sluice-sink end to end %8.2f s  %8s docs/s  (peak RSS %s MB, documents in the index: %s)\n' "$B_S" "$B" "$((RSS_KB / 1024))" "$COUNT"
echo "ratio b/a: $(ratio "$B" "$A") (target 0.70)"
