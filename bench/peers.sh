#!/usr/bin/env bash
# Sluice against the peers a team would run instead, on the same binlog range, broker and machine,
# in one run (figures in docs/performance.md):
#   capture   sluice-capture run --until <end>  vs  Debezium 3.5.0.Final's MariaDB connector on Kafka
#             Connect standalone, each into a fresh topic of the local Apache Kafka, timed from
#             process start until every row is on the topic (acknowledged);
#   decode    sluice-capture tail > /dev/null   vs  go-mysql's BinlogSyncer + encoding/json
#             (bench/peers/go-mysql), each decoding the range and encoding every row as JSON;
#   end-to-end  sluice-capture run + sluice-sink run (mysql target)  vs  Debezium's MariaDB source
#             and JDBC sink connectors on one Connect standalone worker, each from the range's
#             start through a fresh topic into its own replica database (bench_peers_rep_sluice,
#             bench_peers_rep_dbz; the table created beforehand with the source's DDL, since
#             sluice-sink runs no DDL and both should write into the same definition), timed from
#             process start until the replica's COUNT(*) and BIT_XOR(CRC32(...)) equal the
#             source's (polled every 0.5 s, bench/peers/replica.sh).
# For each: rows/s, CPU seconds per million rows (user + system of the process) and peak RSS,
# then the ratios against the targets: capture >= 5x Debezium's rows/s at <= 1/4 of its CPU per
# row; decode >= 3x go-mysql's rows/s; end-to-end >= 5x Debezium's rows/s to convergence.
# ROWS=300000 by default. A peer that cannot run is reported with its error, not dropped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
source bench/lib.sh
# shellcheck source=bench/peers/gomysql.sh
source bench/peers/gomysql.sh
# shellcheck source=bench/peers/debezium.sh
source bench/peers/debezium.sh
# shellcheck source=bench/peers/sluice_e2e.sh
source bench/peers/sluice_e2e.sh
ROWS="${ROWS:-300000}"
BROKER="${SLUICE_BENCH_KAFKA:-127.0.0.1:9092}"
DB=bench_peers
STATE="${SLUICE_STATE_DIR:-$ROOT/.state}"
WORK="$STATE/bench-peers"
rm -rf "$WORK" && mkdir -p "$WORK"
RUN="$(date +%s)"

bash scripts/services.sh up >/dev/null
echo "building sluice-capture (release), the go-mysql peer, Debezium's jars ..."
cargo build --release --quiet -p sluice-capture --bin sluice-capture -p sluice-sinks --bin sluice-sink
BIN="$ROOT/target/release/sluice-capture"
export SLUICE_CAPTURE_BIN="$BIN" SLUICE_SINK_BIN="$ROOT/target/release/sluice-sink"
GOMYSQL="$(build_gomysql)"
install_debezium

echo "writing $ROWS rows in transactions of 1000 ..."
read -r START_FILE START_POS END_FILE END_POS < <(orders_binlog "$DB" "$ROWS")
echo "binlog: $START_FILE:$START_POS .. $END_FILE:$END_POS"
settle "$DB.orders"
TOPICS=()
trap 'drop_topics "$BROKER" "${TOPICS[@]}"' EXIT

# timed OUT CMD...: runs CMD under GNU time into OUT ("<wall s> <user s> <sys s> <peak RSS KB>").
timed() {
    local out="$1"
    shift
    /usr/bin/time -f "%e %U %S %M" -o "$out" "$@"
}

# A result line per peer: NAME ROWS WALL CPU RSS_KB (or NAME error TEXT).
RESULTS="$WORK/results"
: >"$RESULTS"
result() { echo "$*" >>"$RESULTS"; }

# -- capture: sluice-capture run --until the end, into a fresh topic (created untimed, 6 partitions)
instance="peers-$RUN"
TOPICS+=("sluice.$instance")
cat >"$WORK/capture.toml" <<TOML
instance = "$instance"
[source]
url = "mysql://$MYSQL_USER:$MYSQL_PW@$MYSQL_HOST:$MYSQL_PORT"
server_id = 7181
start = "$START_FILE:$START_POS"
[kafka]
brokers = ["$BROKER"]
[publish]
create_topics = true
partitions = 6
[checkpoint]
dir = "$WORK/state"
[filter]
include = ["^$DB\\\\.orders\$"]
[metrics]
listen = "127.0.0.1:0"
[log]
level = "warn"
TOML
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
if timed "$WORK/run.time" "$BIN" run --config "$WORK/capture.toml" --until "$END_FILE:$END_POS" 2>"$WORK/run.log"; then
    n=$(topic_messages "$BROKER" "sluice.$instance")
    read -r wall user sys rss <"$WORK/run.time"
    result sluice-capture-run "$n" "$wall" "$(python3 -c "print($user + $sys)")" "$rss"
else
    result sluice-capture-run error "$(tail -n 5 "$WORK/run.log" | tr '\n' ' ')"
fi

# -- capture: Debezium's MariaDB connector on Kafka Connect standalone, same range
prefix="peers_dbz_$RUN"
TOPICS+=("$prefix.$DB.orders" "$prefix" "$prefix-schema-history")
if line=$(run_debezium_capture "$DB" orders "$prefix" "$START_FILE" "$START_POS" "$ROWS" "$WORK/debezium" 2>"$WORK/debezium.err"); then
    read -r n wall cpu rss <<<"$line"
    result debezium "$n" "$wall" "$cpu" "$rss"
else
    result debezium error "$(tail -n 5 "$WORK/debezium.err" | tr '\n' ' ')"
fi

# -- decode: sluice-capture tail > /dev/null
if timed "$WORK/tail.time" "$BIN" tail --config "$WORK/capture.toml" --until "$END_FILE:$END_POS" >/dev/null 2>"$WORK/tail.log"; then
    read -r wall user sys rss <"$WORK/tail.time"
    result sluice-capture-tail "$ROWS" "$wall" "$(python3 -c "print($user + $sys)")" "$rss"
else
    result sluice-capture-tail error "$(tail -n 5 "$WORK/tail.log" | tr '\n' ' ')"
fi

# -- decode: go-mysql
if timed "$WORK/gomysql.time" "$GOMYSQL" -host "$MYSQL_HOST" -port "$MYSQL_PORT" -user "$MYSQL_USER" \
    -password "$MYSQL_PW" -server-id 7182 -db "$DB" -table orders -file "$START_FILE" -pos "$START_POS" \
    -until-file "$END_FILE" -until-pos "$END_POS" >"$WORK/gomysql.out" 2>"$WORK/gomysql.log"; then
    read -r n _ <"$WORK/gomysql.out"
    read -r wall user sys rss <"$WORK/gomysql.time"
    result go-mysql "$n" "$wall" "$(python3 -c "print($user + $sys)")" "$rss"
else
    result go-mysql error "$(tail -n 5 "$WORK/gomysql.log" | tr '\n' ' ')"
fi

# -- end-to-end: into a replica table. The topics are created untimed with 6 partitions before
# either pipeline starts, so neither sink subscribes to a topic that does not exist yet (a
# consumer can have the broker auto-create it with 1 partition before the producer side does).
RESULTS_E2E="$WORK/results-e2e"
: >"$RESULTS_E2E"
e2e_result() { echo "$*" >>"$RESULTS_E2E"; }
replica_db() {
    sql -e "DROP DATABASE IF EXISTS $1; CREATE DATABASE $1; CREATE TABLE $1.orders LIKE $DB.orders"
}
create_topic() {
    java -cp "$STATE/kafka/lib/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKER" \
        --create --if-not-exists --topic "$1" --partitions 6 --replication-factor 1 >/dev/null 2>&1
}
instance="peers-e2e-$RUN"
TOPICS+=("sluice.$instance" "sluice.$instance.dlq")
replica_db "${DB}_rep_sluice"
create_topic "sluice.$instance"
if line=$(run_sluice_e2e "$DB" orders "${DB}_rep_sluice" "$instance" "$START_FILE" "$START_POS" "$ROWS" "$WORK/sluice-e2e" 2>"$WORK/sluice-e2e.err"); then
    read -r n wall cpu rss <<<"$line"
    e2e_result sluice-capture+sink "$n" "$wall" "$cpu" "$rss"
else
    e2e_result sluice-capture+sink error "$(tail -n 5 "$WORK/sluice-e2e.err" | tr '\n' ' ')"
fi
prefix="peers_dbz_e2e_$RUN"
TOPICS+=("$prefix.$DB.orders" "$prefix")
replica_db "${DB}_rep_dbz"
create_topic "$prefix.$DB.orders"
if line=$(run_debezium_e2e "$DB" orders "${DB}_rep_dbz" "$prefix" "$START_FILE" "$START_POS" "$ROWS" "$WORK/debezium-e2e" 2>"$WORK/debezium-e2e.err"); then
    read -r n wall cpu rss <<<"$line"
    e2e_result debezium+jdbc-sink "$n" "$wall" "$cpu" "$rss"
else
    e2e_result debezium+jdbc-sink error "$(tail -n 5 "$WORK/debezium-e2e.err" | tr '\n' ' ')"
fi
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "== $ROWS rows of $DB.orders, binlog $START_FILE:$START_POS .. $END_FILE:$END_POS, Kafka $BROKER"
echo "== load average (1, 5, 15 min): before $LOAD0, after $LOAD1"
python3 - "$RESULTS" "$ROWS" "$RESULTS_E2E" "$DB" <<'PY'
import sys
path, want = sys.argv[1], int(sys.argv[2])
rows = {}
def table(path):
    print(f"{'peer':<22} {'rows':>9} {'seconds':>8} {'rows/s':>10} {'CPU s/1M rows':>14} {'peak RSS':>9}")
    for line in open(path):
        name, *rest = line.split()
        if rest and rest[0] == "error":
            print(f"{name:<22} error: {' '.join(rest[1:])}")
            continue
        n, wall, cpu, rss = int(rest[0]), float(rest[1]), float(rest[2]), int(rest[3])
        rate = n / wall if wall > 0 else 0
        per_m = cpu / n * 1e6 if n else 0
        rows[name] = (rate, per_m, n)
        note = "" if n == want else f"  (expected {want})"
        print(f"{name:<22} {n:>9} {wall:>8.2f} {rate:>10.0f} {per_m:>14.2f} {rss // 1024:>6} MB{note}")
table(path)
def ratio(a, b, i):
    if a in rows and b in rows and rows[b][i] > 0:
        return rows[a][i] / rows[b][i]
    return None
def show(text, value, target, higher=True):
    if value is None:
        print(f"{text}: n/a")
        return
    met = value >= target if higher else value <= target
    print(f"{text}: {value:.2f} (target {'>=' if higher else '<='} {target}: {'met' if met else 'MISSED'})")
show("capture rows/s, sluice / Debezium", ratio("sluice-capture-run", "debezium", 0), 5)
show("capture CPU per row, sluice / Debezium", ratio("sluice-capture-run", "debezium", 1), 0.25, higher=False)
show("decode rows/s, sluice tail / go-mysql", ratio("sluice-capture-tail", "go-mysql", 0), 3)
print()
db = sys.argv[4]
print(f"== end to end: {db}.orders -> Kafka -> replica table, seconds from process start until the")
print("== replica equals the source; CPU and peak RSS: sluice-capture + sluice-sink summed, Debezium's worker")
table(sys.argv[3])
show("end-to-end rows/s to convergence, sluice / Debezium", ratio("sluice-capture+sink", "debezium+jdbc-sink", 0), 5)
PY
