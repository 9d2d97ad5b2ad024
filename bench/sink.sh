#!/usr/bin/env bash
# Sink benchmark (numbers in docs/performance.md): 1M change events on an 8-partition topic of
# the local Apache Kafka broker, then
#   plain  - a plain rdkafka consumer that only reads them (the baseline),
#   noop   - sluice-sink with a no-op target, from start until the group committed everything,
#   redis  - sluice-sink invalidating two Redis keys per event,
# printing events/s, the ratio to the plain consumer, the sink's peak RSS and its CPU time per
# event (user + system; it moves far less with the machine's load than the rate).
# EVENTS=200000 bench/sink.sh for a shorter run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
EVENTS="${EVENTS:-1000000}"
BROKERS="${SLUICE_BENCH_KAFKA:-127.0.0.1:9092}"
REDIS_URL="${SLUICE_TEST_REDIS_URL:-redis://127.0.0.1:6380}"
WORK="${SLUICE_STATE_DIR:-$ROOT/.state}/bench-sink"
# The sink's own defaults unless these are set (consumer.max_in_flight, .max_in_flight_bytes).
MAX_IN_FLIGHT="${MAX_IN_FLIGHT:-}"
MAX_IN_FLIGHT_BYTES="${MAX_IN_FLIGHT_BYTES:-}"
mkdir -p "$WORK"

bash scripts/services.sh up >&2
cargo build --release --quiet -p sluice-sinks --bins --examples
BENCH=target/release/examples/sink_bench
SINK=target/release/sluice-sink
TOPIC="bench_sink_$(date +%s)"
source bench/lib.sh
trap 'drop_topics "$BROKERS" "$TOPIC" "$TOPIC.dlq"' EXIT

config() { # name group target-toml rule-extra
    cat >"$WORK/$1.toml" <<TOML
[kafka]
brokers = ["$BROKERS"]
[consumer]
group_id = "$2"
topics = ["$TOPIC"]
commit_interval_ms = 200
${MAX_IN_FLIGHT:+max_in_flight = $MAX_IN_FLIGHT}
${MAX_IN_FLIGHT_BYTES:+max_in_flight_bytes = $MAX_IN_FLIGHT_BYTES}
[metrics]
listen = "127.0.0.1:0"
[log]
level = "warn"
[targets.out]
$3
[[rules]]
name = "users"
target = "out"
match = { tables = ["shop.users"] }
$4
TOML
}
config noop "$TOPIC-noop" 'type = "noop"' ''
config redis "$TOPIC-redis" "type = \"redis\"
url = \"$REDIS_URL\"" '[rules.redis]
keys = ["bench:user:{id}", "bench:user:email:{email}"]'

echo "== $EVENTS events, topic $TOPIC (8 partitions) on $BROKERS, max_in_flight=${MAX_IN_FLIGHT:-default} max_in_flight_bytes=${MAX_IN_FLIGHT_BYTES:-default}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$BENCH" --brokers "$BROKERS" --topic "$TOPIC" --events "$EVENTS" produce --partitions 8
# The plain consumer gets the sink's own prefetch bound (runtime.rs).
"$BENCH" --brokers "$BROKERS" --topic "$TOPIC" --events "$EVENTS" \
    --consumer-prop queued.max.messages.kbytes=16384 plain | tee "$WORK/plain.out"
"$BENCH" --brokers "$BROKERS" --topic "$TOPIC" --events "$EVENTS" sink --bin "$SINK" \
    --config "$WORK/noop.toml" --group "$TOPIC-noop" --label noop | tee "$WORK/noop.out"
"$BENCH" --brokers "$BROKERS" --topic "$TOPIC" --events "$EVENTS" sink --bin "$SINK" \
    --config "$WORK/redis.toml" --group "$TOPIC-redis" --label redis | tee "$WORK/redis.out"

echo "== load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
rate() { sed -E 's/.* = ([0-9]+) events\/s.*/\1/' "$WORK/$1.out"; }
awk -v p="$(rate plain)" -v n="$(rate noop)" -v r="$(rate redis)" 'BEGIN {
    printf "noop sink / plain consumer = %.2f (target >= 0.80)\n", n / p;
    printf "redis sink / plain consumer = %.2f (target >= 0.60)\n", r / p }'
