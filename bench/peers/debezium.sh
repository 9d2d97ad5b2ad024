# Debezium as a peer of sluice-capture: the MariaDB connector on a Kafka Connect standalone worker,
# reading a fixed binlog range into the local Kafka broker. Sourced (by bench/peers.sh); defines
#
#   install_debezium
#       copies the jars of bench/peers/debezium/pom.xml from Maven Central into
#       $SLUICE_STATE_DIR/peers/debezium/lib (default <repo>/.state), once per machine and again
#       when the pom changes, and compiles the row-count poller beside them.
#   run_debezium_capture DB TABLE TOPIC_PREFIX START_FILE START_POS EXPECTED_ROWS WORKDIR
#       streams DB.TABLE's row events from START_FILE:START_POS into the topic
#       TOPIC_PREFIX.DB.TABLE and prints `<rows> <seconds> <cpu_seconds> <peak_rss_kb>`: the
#       records the topic held, the seconds from the worker's start until it held EXPECTED_ROWS,
#       and the worker's CPU time and peak RSS then. On failure it prints Connect's error (the
#       connector status, the log's ERROR lines with their causes, the log's end) on stderr and
#       returns non-zero. The topic is left in the broker; the caller drops it (bench/lib.sh's
#       drop_topics). WORKDIR keeps the run's configs and connect.log.
#   run_debezium_e2e DB TABLE REPLICA_DB TOPIC_PREFIX START_FILE START_POS EXPECTED_ROWS WORKDIR
#       the same stream, plus Debezium's JDBC sink connector on the same worker writing the topic
#       into REPLICA_DB.TABLE, and prints `<rows> <seconds> <cpu_seconds> <peak_rss_kb>`: the
#       replica's rows, the seconds from the worker's start until the replica's checksum equals
#       the source's (bench/peers/replica.sh), the worker's CPU time and peak RSS then. The topic
#       TOPIC_PREFIX.DB.TABLE must exist before (the sink subscribes at the worker's start, and a
#       consumer that subscribes to a missing topic would have the broker auto-create it with
#       one partition before Debezium creates it with its own), and REPLICA_DB.TABLE too, empty,
#       with the source's DDL (the sink runs with schema.evolution=none).
#
# Settings from the environment: MYSQL_HOST/PORT/USER/PW (as bench/lib.sh sets them),
# SLUICE_BENCH_KAFKA (default 127.0.0.1:9092), DEBEZIUM_PARTITIONS (the row topic's partitions,
# default 6 like capture.sh's), DEBEZIUM_SERVER_ID (default 7091), DEBEZIUM_TIMEOUT (seconds,
# default 900), DEBEZIUM_SINK_TASKS (the JDBC sink's tasks.max, default DEBEZIUM_PARTITIONS),
# DEBEZIUM_JAVA_OPTS (default: the heap and GC flags of Kafka's own
# connect-standalone.sh and kafka-run-class.sh, so the worker runs as users run it).
#
# The start position. With snapshot.mode=no_data Debezium streams from the binlog's current end,
# which would leave the benchmark's rows behind it; writing the rows only after the worker streams
# would time the inserts too, not the reading of a binlog that is already there, which is what
# sluice-capture is timed on. So the worker starts with the connector created STOPPED
# (initial_state in connector.json), its offset is set through Connect's REST API
# (PATCH /connectors/NAME/offsets, KIP-875), then it is resumed. The offset is Debezium's own for
# the MariaDB connector: partition {"server": TOPIC_PREFIX}, offset {"file", "pos", "gtids"}. The
# GTIDs are needed because the MariaDB connector always asks the server for its binlog by GTID
# (MariaDbConnection.isGtidModeEnabled is always true; the binlog client then sends
# @slave_connect_state and an empty file name), so a file and position alone would stream from
# the oldest binlog; BINLOG_GTID_POS(file, pos) is the server's GTID state at that position.
# With an offset and no schema history Debezium refuses to start under no_data ("The db history
# topic is missing"); snapshot.mode=recovery is its documented way out: it records the tables'
# current schema (no rows) and then streams from the stored offset. That schema is the one the
# binlog range was written with as long as the range has no DDL, which holds for capture.sh's.
# All of this (JVM start, plugin scan, REST calls, schema read) is inside the timed span, as
# sluice-capture's own start-up is inside its; the seconds until the resume are printed on stderr.

DEBEZIUM_PEER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/debezium"
# shellcheck source=bench/peers/replica.sh
source "$DEBEZIUM_PEER_DIR/../replica.sh"
DEBEZIUM_REPO="$(cd "$DEBEZIUM_PEER_DIR/../../.." && pwd)"

_dbz_state() { echo "${SLUICE_STATE_DIR:-$DEBEZIUM_REPO/.state}/peers/debezium"; }
_dbz_log() { printf '[debezium] %s\n' "$*" >&2; }
_dbz_sql() {
    mariadb --no-defaults -h "${MYSQL_HOST:-127.0.0.1}" -P "${MYSQL_PORT:-3307}" \
        -u"${MYSQL_USER:-sluice}" -p"${MYSQL_PW:-sluice}" "$@"
}

install_debezium() {
    local state pom lib classes stamp src_stamp
    state="$(_dbz_state)"
    pom="$DEBEZIUM_PEER_DIR/pom.xml"
    lib="$state/lib"
    classes="$state/classes"
    stamp="$(sha256sum "$pom" | cut -c1-16)"
    if [ "$(cat "$lib/.pom-hash" 2>/dev/null || true)" != "$stamp" ]; then
        command -v mvn >/dev/null || {
            _dbz_log "error: fetching Debezium's jars needs Maven (mvn) and Java 17"
            return 1
        }
        _dbz_log "fetching Debezium's jars from Maven Central into $lib (once per machine)"
        # A fresh folder: no jar of an older pom stays on the classpath beside a newer one.
        rm -rf "$lib" "$classes"
        mkdir -p "$lib"
        if ! mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
            -DoutputDirectory="$lib" >"$state/maven.log" 2>&1; then
            tail -n 30 "$state/maven.log" >&2
            _dbz_log "error: fetching Debezium's jars failed (full log: $state/maven.log)"
            return 1
        fi
        echo "$stamp" >"$lib/.pom-hash"
    fi
    src_stamp="$stamp-$(sha256sum "$DEBEZIUM_PEER_DIR/WaitForRows.java" | cut -c1-16)"
    if [ "$(cat "$classes/.src-hash" 2>/dev/null || true)" != "$src_stamp" ]; then
        rm -rf "$classes"
        mkdir -p "$classes"
        if ! javac -nowarn -d "$classes" -cp "$lib/*" "$DEBEZIUM_PEER_DIR/WaitForRows.java" >"$state/javac.log" 2>&1; then
            cat "$state/javac.log" >&2
            _dbz_log "error: compiling WaitForRows.java failed"
            return 1
        fi
        echo "$src_stamp" >"$classes/.src-hash"
    fi
}

# _dbz_stop PID: asks the worker to stop (Connect flushes and closes on SIGTERM), then kills it if
# it has not exited within 30 s.
_dbz_stop() {
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# _dbz_fail WORKDIR PID STATUS_URL MESSAGE: reports a failed run with Connect's own words.
_dbz_fail() {
    local work="$1" pid="$2" status_url="$3"
    shift 3
    _dbz_log "error: $*"
    if [ -n "$status_url" ] && kill -0 "$pid" 2>/dev/null; then
        # The states, and the start of a failed task's trace (the log below has all of it).
        _dbz_log "connector status: $(curl -s --max-time 2 "$status_url" 2>/dev/null | cut -c1-400 || true)"
    fi
    _dbz_stop "$pid"
    # Connect's ERROR lines with their exceptions' messages and causes (stack frames left out:
    # a failed start logs hundreds of lines, the shutdown's come last), then the log's end.
    _dbz_log "errors in $work/connect.log:"
    awk '/^[0-9][0-9]:[0-9][0-9]:[0-9][0-9][.][0-9]+ \[/ { err = / ERROR / }
         err && !/^\tat / && !/^\t[.][.][.] / { print; if (++n >= 40) exit }' "$work/connect.log" >&2 2>/dev/null || true
    _dbz_log "last lines of $work/connect.log:"
    tail -n 10 "$work/connect.log" >&2 2>/dev/null || true
    return 1
}

# _dbz_gtids START_FILE START_POS: MariaDB's GTID state at that binlog position (see the top).
_dbz_gtids() {
    local gtids
    if ! gtids="$(_dbz_sql -N -e "SELECT BINLOG_GTID_POS('$1', $2)")"; then
        _dbz_log "error: could not ask MariaDB for the GTID position of $1:$2"
        return 1
    fi
    # NULL: the file is not a binlog of this server, or the position is not an event boundary.
    # An empty string is the state before the first GTID ever written: stream from the start.
    if [ "$gtids" = "NULL" ]; then
        _dbz_log "error: MariaDB has no GTID position for $1:$2 (BINLOG_GTID_POS gave NULL)"
        return 1
    fi
    echo "$gtids"
}

# _dbz_worker WORKDIR SCHEMAS: writes WORKDIR/worker.properties for a worker on a free port, with
# the JSON converter's schemas.enable set to SCHEMAS, and prints the port.
_dbz_worker() {
    local work="$1" schemas="$2" port
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    # No plugin.path: the connectors are on the worker's classpath, and only_scan finds them
    # there (the worker logs them as "Registered loader: jdk.internal.loader.ClassLoaders$AppClassLoader").
    cat >"$work/worker.properties" <<EOF
bootstrap.servers=${SLUICE_BENCH_KAFKA:-127.0.0.1:9092}
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=$schemas
value.converter.schemas.enable=$schemas
offset.storage.file.filename=$work/offsets.dat
listeners=http://127.0.0.1:$port
plugin.discovery=only_scan
EOF
    echo "$port"
}

# _dbz_source_json FILE NAME PREFIX DB TABLE DECIMAL_MODE WORKDIR: the MariaDB connector's
# config, created STOPPED (see the top).
_dbz_source_json() {
    # include.schema.changes=false: sluice-capture publishes row events only, so Debezium's
    # schema-change topic would be extra work for it alone. The schema history is a file in
    # WORKDIR, so each run starts without one (which recovery mode then writes).
    cat >"$1" <<EOF
{
  "name": "$2",
  "initial_state": "STOPPED",
  "config": {
    "connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
    "tasks.max": "1",
    "database.hostname": "${MYSQL_HOST:-127.0.0.1}",
    "database.port": "${MYSQL_PORT:-3307}",
    "database.user": "${MYSQL_USER:-sluice}",
    "database.password": "${MYSQL_PW:-sluice}",
    "database.server.id": "${DEBEZIUM_SERVER_ID:-7091}",
    "topic.prefix": "$3",
    "database.include.list": "$4",
    "table.include.list": "$4\\\\.$5",
    "snapshot.mode": "recovery",
    "snapshot.locking.mode": "none",
    "include.schema.changes": "false",
    "decimal.handling.mode": "$6",
    "schema.history.internal": "io.debezium.storage.file.history.FileSchemaHistory",
    "schema.history.internal.file.filename": "$7/schema-history.dat",
    "schema.history.internal.store.only.captured.tables.ddl": "true",
    "topic.creation.default.partitions": "${DEBEZIUM_PARTITIONS:-6}",
    "topic.creation.default.replication.factor": "1"
  }
}
EOF
}

# _dbz_start WORKDIR PORT NAME PREFIX START_FILE START_POS GTIDS CONNECTOR_JSON...: starts the
# worker with the connectors' configs, sets the source connector NAME's offset to
# START_FILE:START_POS and resumes it. Sets _DBZ_PID and _DBZ_T0 (the worker's start, epoch s).
_dbz_start() {
    local work="$1" port="$2" name="$3" prefix="$4" start_file="$5" start_pos="$6" gtids="$7"
    shift 7
    local lib base body code i
    lib="$(_dbz_state)/lib"
    base="http://127.0.0.1:$port/connectors/$name"
    cat >"$work/offsets.json" <<EOF
{"offsets": [{"partition": {"server": "$prefix"}, "offset": {"file": "$start_file", "pos": $start_pos, "gtids": "$gtids"}}]}
EOF
    local -a java_opts
    read -r -a java_opts <<<"${DEBEZIUM_JAVA_OPTS:--Xms256M -Xmx2G -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}"
    _DBZ_T0="$(date +%s.%N)"
    java "${java_opts[@]}" \
        -Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS \
        -cp "$lib/*" org.apache.kafka.connect.cli.ConnectStandalone \
        "$work/worker.properties" "$@" >"$work/connect.log" 2>&1 &
    _DBZ_PID=$!

    # The connector exists, stopped, once its status answers STOPPED.
    for ((i = 0; ; i++)); do
        body="$(curl -s --max-time 2 "$base/status" 2>/dev/null || true)"
        case "$body" in *'"state":"STOPPED"'*) break ;; esac
        if ! kill -0 "$_DBZ_PID" 2>/dev/null; then
            wait "$_DBZ_PID" 2>/dev/null || true
            _dbz_fail "$work" "$_DBZ_PID" "" "the Connect worker exited before its connector was created"
            return 1
        fi
        if [ "$i" -ge 1200 ]; then
            _dbz_fail "$work" "$_DBZ_PID" "$base/status" "the connector was not created within 120 s"
            return 1
        fi
        sleep 0.1
    done
    body="$(curl -s -X PATCH -H 'Content-Type: application/json' --data @"$work/offsets.json" \
        -w '\n%{http_code}' "$base/offsets" 2>&1 || true)"
    code="${body##*$'\n'}"
    if [ "$code" != "200" ]; then
        _dbz_fail "$work" "$_DBZ_PID" "$base/status" "setting the start offset failed (HTTP $code): ${body%$'\n'*}"
        return 1
    fi
    code="$(curl -s -o /dev/null -X PUT -w '%{http_code}' "$base/resume" 2>/dev/null || true)"
    if [ "$code" != "202" ]; then
        _dbz_fail "$work" "$_DBZ_PID" "$base/status" "resuming the connector failed (HTTP $code)"
        return 1
    fi
    _dbz_log "streaming from $start_file:$start_pos (GTID ${gtids:-none}) $(python3 -c 'import sys, time; print(f"{time.time() - float(sys.argv[1]):.1f}")' "$_DBZ_T0") s after the worker's start"
}

run_debezium_capture() {
    if [ $# -ne 7 ]; then
        _dbz_log "usage: run_debezium_capture DB TABLE TOPIC_PREFIX START_FILE START_POS EXPECTED_ROWS WORKDIR"
        return 2
    fi
    local db="$1" table="$2" prefix="$3" start_file="$4" start_pos="$5" expected="$6" work="$7"
    local broker="${SLUICE_BENCH_KAFKA:-127.0.0.1:9092}"
    local name="sluice-peer-debezium" state lib classes gtids port base pid t1
    install_debezium || return 1
    state="$(_dbz_state)"
    lib="$state/lib"
    classes="$state/classes"
    mkdir -p "$work"
    rm -f "$work/offsets.dat" "$work/schema-history.dat" "$work/connect.log"
    gtids="$(_dbz_gtids "$start_file" "$start_pos")" || return 1
    # With schemas.enable=false the default decimal mode (precise) writes a DECIMAL as the base64
    # of its unscaled bytes ("AQ==" for 0.01), which no consumer can read without the schema; as
    # a string it is what sluice-capture writes ("0.01").
    port="$(_dbz_worker "$work" false)"
    base="http://127.0.0.1:$port/connectors/$name"
    _dbz_source_json "$work/connector.json" "$name" "$prefix" "$db" "$table" string "$work"
    _dbz_start "$work" "$port" "$name" "$prefix" "$start_file" "$start_pos" "$gtids" "$work/connector.json" || return 1
    pid="$_DBZ_PID"

    local out
    if ! out="$(java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$classes:$lib/*" WaitForRows "$broker" "$prefix.$db.$table" "$expected" "$pid" \
        "$base/status" "${DEBEZIUM_TIMEOUT:-900}" 2>"$work/wait.log")"; then
        _dbz_fail "$work" "$pid" "$base/status" "$(cat "$work/wait.log")"
        return 1
    fi
    local rows usage
    read -r t1 rows <<<"$out"
    # Sampled before the stop, so the shutdown's own work is not counted.
    usage="$(proc_usage "$pid")"
    _dbz_stop "$pid"
    printf '%s %s %s\n' "$rows" \
        "$(python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.3f}")' "$_DBZ_T0" "$t1")" \
        "$usage"
}

run_debezium_e2e() {
    if [ $# -ne 8 ]; then
        _dbz_log "usage: run_debezium_e2e DB TABLE REPLICA_DB TOPIC_PREFIX START_FILE START_POS EXPECTED_ROWS WORKDIR"
        return 2
    fi
    local db="$1" table="$2" rep_db="$3" prefix="$4" start_file="$5" start_pos="$6" expected="$7" work="$8"
    local name="sluice-peer-debezium" sink="sluice-peer-debezium-jdbc" gtids port pid t1 usage rows
    install_debezium || return 1
    mkdir -p "$work"
    rm -f "$work/offsets.dat" "$work/schema-history.dat" "$work/connect.log"
    gtids="$(_dbz_gtids "$start_file" "$start_pos")" || return 1
    # The JDBC sink builds its statements from the records' Connect schemas, so the converter
    # carries them (schemas.enable=true) on both sides, as a user of this pipeline runs it; with
    # the schema at hand the default decimal mode (precise) round-trips DECIMAL exactly.
    port="$(_dbz_worker "$work" true)"
    _dbz_source_json "$work/connector.json" "$name" "$prefix" "$db" "$table" precise "$work"
    # The sink consumes Debezium's envelope as it is (no ExtractNewRecordState). upsert with the
    # record key as primary key: the replica converges whatever a replay re-sends, like
    # sluice-sink's INSERT .. ON DUPLICATE KEY UPDATE; delete.enabled applies DELETEs (and skips
    # their tombstones). collection.name.format "${source.table}": the topic is
    # PREFIX.DB.TABLE, the replica table is TABLE in the url's database. schema.evolution=none:
    # the replica table exists with the source's DDL, as sluice-sink requires too (it runs no
    # DDL), so both write into the same table definition. tasks.max: one task per partition of
    # the topic, the parallelism sluice-sink gets from its per-partition workers.
    cat >"$work/sink.json" <<EOF
{
  "name": "$sink",
  "config": {
    "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
    "tasks.max": "${DEBEZIUM_SINK_TASKS:-${DEBEZIUM_PARTITIONS:-6}}",
    "topics": "$prefix.$db.$table",
    "connection.url": "jdbc:mariadb://${MYSQL_HOST:-127.0.0.1}:${MYSQL_PORT:-3307}/$rep_db",
    "connection.username": "${MYSQL_USER:-sluice}",
    "connection.password": "${MYSQL_PW:-sluice}",
    "insert.mode": "upsert",
    "primary.key.mode": "record_key",
    "delete.enabled": "true",
    "schema.evolution": "none",
    "collection.name.format": "\${source.table}"
  }
}
EOF
    _dbz_start "$work" "$port" "$name" "$prefix" "$start_file" "$start_pos" "$gtids" \
        "$work/connector.json" "$work/sink.json" || return 1
    pid="$_DBZ_PID"
    if ! t1="$(wait_replica "$db" "$rep_db" "$table" "${DEBEZIUM_TIMEOUT:-900}" "$pid" 2>"$work/wait.log")"; then
        _dbz_fail "$work" "$pid" "http://127.0.0.1:$port/connectors/$sink/status" "$(cat "$work/wait.log")"
        return 1
    fi
    usage="$(proc_usage "$pid")"
    rows="$(_dbz_sql -N -e "SELECT COUNT(*) FROM \`$rep_db\`.\`$table\`")"
    _dbz_stop "$pid"
    [ "$rows" = "$expected" ] || _dbz_log "the replica converged at $rows rows, not $expected"
    printf '%s %s %s\n' "$rows" \
        "$(python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.3f}")' "$_DBZ_T0" "$t1")" \
        "$usage"
}
