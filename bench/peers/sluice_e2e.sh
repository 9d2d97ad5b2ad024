# Sluice's side of the end-to-end peers benchmark: sluice-capture run into Kafka and sluice-sink run
# from Kafka into a MariaDB replica table, the pipeline Debezium's source + JDBC sink connectors
# are compared with (run_debezium_e2e in bench/peers/debezium.sh). Sourced (by bench/peers.sh);
# defines
#
#   run_sluice_e2e DB TABLE REPLICA_DB INSTANCE START_FILE START_POS EXPECTED_ROWS WORKDIR
#       starts sluice-capture (instance INSTANCE, so topic sluice.INSTANCE, streaming DB.TABLE
#       from START_FILE:START_POS) and sluice-sink (a fresh group, a mysql target on
#       REPLICA_DB, a rule for DB.TABLE) at once, and prints
#       `<rows> <seconds> <cpu_seconds> <peak_rss_kb>`: the replica's rows, the seconds from
#       their start until the replica's checksum equals the source's (bench/peers/replica.sh),
#       and the CPU time and peak RSS of both processes together then. The topic must exist
#       before, and REPLICA_DB.TABLE too, empty, with the source's DDL (sluice-sink runs no DDL).
#       On failure the logs' ends go to stderr and it returns non-zero.
#
# Settings from the environment: MYSQL_HOST/PORT/USER/PW, SLUICE_BENCH_KAFKA, SLUICE_CAPTURE_BIN
# and SLUICE_SINK_BIN (default target/release/...), SLUICE_E2E_TIMEOUT (seconds, default 900).
#
# The capture has no --until here: the sink cannot know where the range ends, so both run until
# the replica has converged and are stopped then, the way the Debezium worker is.

SLUICE_E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/peers/replica.sh
source "$SLUICE_E2E_DIR/replica.sh"

# _sluice_stop PID...: SIGTERM (both binaries drain and commit on it), SIGKILL after 30 s.
_sluice_stop() {
    local pid i
    for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for ((i = 0; i < 60; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

run_sluice_e2e() {
    if [ $# -ne 8 ]; then
        echo "usage: run_sluice_e2e DB TABLE REPLICA_DB INSTANCE START_FILE START_POS EXPECTED_ROWS WORKDIR" >&2
        return 2
    fi
    local db="$1" table="$2" rep_db="$3" instance="$4" start_file="$5" start_pos="$6" expected="$7" work="$8"
    local broker="${SLUICE_BENCH_KAFKA:-127.0.0.1:9092}" root
    root="$(cd "$SLUICE_E2E_DIR/../.." && pwd)"
    local capture="${SLUICE_CAPTURE_BIN:-$root/target/release/sluice-capture}"
    local sink="${SLUICE_SINK_BIN:-$root/target/release/sluice-sink}"
    local url="mysql://${MYSQL_USER:-sluice}:${MYSQL_PW:-sluice}@${MYSQL_HOST:-127.0.0.1}:${MYSQL_PORT:-3307}"
    mkdir -p "$work"
    rm -rf "$work/state"
    cat >"$work/capture.toml" <<TOML
instance = "$instance"
[source]
url = "$url"
server_id = 7183
start = "$start_file:$start_pos"
[kafka]
brokers = ["$broker"]
[publish]
create_topics = true
partitions = ${DEBEZIUM_PARTITIONS:-6}
[checkpoint]
dir = "$work/state"
[filter]
include = ["^$db\\\\.$table\$"]
[metrics]
listen = "127.0.0.1:0"
[log]
level = "warn"
TOML
    # Defaults everywhere a user would leave them (batch, pool, in-flight bounds). tls disabled:
    # the JDBC sink's MariaDB driver connects without TLS too, and the server is on loopback.
    cat >"$work/sink.toml" <<TOML
[kafka]
brokers = ["$broker"]
[consumer]
group_id = "$instance-replica"
topics = ["sluice.$instance"]
[targets.replica]
type = "mysql"
url = "$url/$rep_db"
tls = "disabled"
[metrics]
listen = "127.0.0.1:0"
[log]
level = "warn"
[[rules]]
name = "replica"
target = "replica"
match = { tables = ["$db.$table"] }
TOML
    local t0 t1 cpid spid usage rows
    t0="$(date +%s.%N)"
    "$capture" run --config "$work/capture.toml" 2>"$work/capture.log" &
    cpid=$!
    "$sink" run --config "$work/sink.toml" 2>"$work/sink.log" &
    spid=$!
    if ! t1="$(wait_replica "$db" "$rep_db" "$table" "${SLUICE_E2E_TIMEOUT:-900}" "$cpid" "$spid" 2>"$work/wait.log")"; then
        cat "$work/wait.log" >&2
        _sluice_stop "$cpid" "$spid"
        echo "sluice-capture log:" >&2
        tail -n 5 "$work/capture.log" >&2
        echo "sluice-sink log:" >&2
        tail -n 5 "$work/sink.log" >&2
        return 1
    fi
    # Sampled before the stop, so the shutdown's drain and commit are not counted.
    usage="$(proc_usage "$cpid" "$spid")"
    rows="$(_rep_sql -N -e "SELECT COUNT(*) FROM \`$rep_db\`.\`$table\`")"
    _sluice_stop "$cpid" "$spid"
    [ "$rows" = "$expected" ] || echo "the replica converged at $rows rows, not $expected" >&2
    printf '%s %s %s\n' "$rows" \
        "$(python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.3f}")' "$t0" "$t1")" \
        "$usage"
}
