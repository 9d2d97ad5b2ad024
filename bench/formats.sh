#!/usr/bin/env bash
# Input-format benchmark (numbers in docs/performance.md, "Input formats"): the same N row
# changes of shop.orders (10 columns: BIGINT, INT, DECIMAL, ENUM, 2 VARCHAR, SMALLINT,
# DATETIME(3), TIMESTAMP(3), JSON; transactions of 10 rows, 30% UPDATEs) on four topics of 8
# partitions, as
#   sluice   - Sluice events, one per row (what sluice-capture writes),
#   canal    - Canal flat messages, one per transaction (10 rows per message),
#   maxwell  - Maxwell messages, one per row,
#   debezium - Debezium messages, one per row, JsonConverter with schemas (key and value),
# each read by sluice-sink with a no-op target, one rule on shop.orders and the topic's format,
# from process start until its group committed every message. Prints events (rows) per second,
# the ratio to the Sluice run, CPU time per event (user + system) and peak RSS.
# EVENTS=100000 bench/formats.sh for a shorter run. The generator's renderings are checked
# against the decoders by `cargo test -p sluice-sinks --example formats_bench`.
# One topic at a time (produce, read, delete), LZ4-compressed as sluice-capture sends: Debezium's
# messages repeat their schema (about 5.5 kB per row), and the broker's disk is shared. The
# script refuses to start with less free space than the largest topic could take (2 kB per row).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
EVENTS="${EVENTS:-1000000}"
BROKERS="${SLUICE_BENCH_KAFKA:-127.0.0.1:9092}"
WORK="${SLUICE_STATE_DIR:-$ROOT/.state}/bench-formats"
TARGET_RATIO=0.6
mkdir -p "$WORK"

bash scripts/services.sh up >&2
cargo build --release --quiet -p sluice-sinks --bin sluice-sink --example formats_bench
BENCH=target/release/examples/formats_bench
SINK=target/release/sluice-sink
PREFIX="bench_formats_$(date +%s)"
FORMATS=(sluice canal maxwell debezium)
source bench/lib.sh
topics=()
for f in "${FORMATS[@]}"; do topics+=("$PREFIX.$f" "$PREFIX.$f.dlq"); done
trap 'drop_topics "$BROKERS" "${topics[@]}"' EXIT

config() { # format
    cat >"$WORK/$1.toml" <<TOML
[kafka]
brokers = ["$BROKERS"]
[consumer]
group_id = "$PREFIX-$1"
topics = ["$PREFIX.$1"]
format = "$1"
commit_interval_ms = 200
[metrics]
listen = "127.0.0.1:0"
[log]
level = "warn"
[targets.out]
type = "noop"
[[rules]]
name = "orders"
target = "out"
match = { tables = ["shop.orders"] }
TOML
}

LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $EVENTS row changes per format, topics $PREFIX.* (8 partitions, LZ4) on $BROKERS, load average $LOAD_START"
KAFKA_DATA="${SLUICE_STATE_DIR:-$ROOT/.state}/kafka/data"
need_mb=$((EVENTS * 2 / 1000 + 200))
free_mb="$(df -Pm "$KAFKA_DATA" | awk 'NR == 2 { print $4 }')"
if [ "$free_mb" -lt "$need_mb" ]; then
    echo "only $free_mb MB free under $KAFKA_DATA; $EVENTS Debezium rows may take up to $need_mb MB (LZ4): free space or lower EVENTS" >&2
    exit 1
fi
for f in "${FORMATS[@]}"; do
    config "$f"
    "$BENCH" --brokers "$BROKERS" produce --topic "$PREFIX.$f" --format "$f" --rows "$EVENTS" \
        --partitions 8 | tee "$WORK/$f.produce"
    messages="$EVENTS"
    [ "$f" = canal ] && messages=$(((EVENTS + 9) / 10))
    "$BENCH" --brokers "$BROKERS" sink --topic "$PREFIX.$f" --messages "$messages" \
        --rows "$EVENTS" --bin "$SINK" --config "$WORK/$f.toml" --group "$PREFIX-$f" \
        --label "$f" | tee "$WORK/$f.out"
    drop_topics "$BROKERS" "$PREFIX.$f" "$PREFIX.$f.dlq"
done
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

echo "== load average at start: $LOAD_START; at end: $LOAD_END"
field() { sed -E "s/.* = ([0-9]+) events\/s, peak RSS ([0-9]+) MB, CPU ([0-9.]+) s \(([0-9.]+) us\/event\).*/\\$2/" "$WORK/$1.out"; }
base="$(field sluice 1)"
printf '%-9s %12s %8s %12s %10s %s\n' format events/s ratio "CPU us/ev" "peak RSS" "target >= $TARGET_RATIO"
for f in "${FORMATS[@]}"; do
    r="$(field "$f" 1)"
    q="$(ratio "$r" "$base")"
    met=""
    if [ "$f" != sluice ]; then
        met="$(python3 -c "import sys; print('met' if float(sys.argv[1]) >= float(sys.argv[2]) else 'MISSED')" "$q" "$TARGET_RATIO")"
    fi
    printf '%-9s %12s %8s %12s %7s MB %s\n' "$f" "$r" "$q" "$(field "$f" 4)" "$(field "$f" 2)" "$met"
done
