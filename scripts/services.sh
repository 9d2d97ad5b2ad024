#!/usr/bin/env bash
# Private local services for Sluice's development, tests and demo, all on loopback:
#
#   MariaDB 10.11 (binlog ROW/FULL, GTIDs)   127.0.0.1:3307   mysql://sluice:sluice@127.0.0.1:3307
#   tansu Kafka broker, sqlite storage        127.0.0.1:9092
#   tansu Kafka broker, memory storage        127.0.0.1:9095   only with `up --bench`
#   Redis, no persistence                     127.0.0.1:6380
#   Redis Cluster, 3 masters, no replicas     127.0.0.1:6390-6392
#   osmem (OpenSearch-compatible)             127.0.0.1:9200
#
# usage: scripts/services.sh up [--bench] | down | status
#
# `up` installs whatever is missing (Debian packages, tansu via cargo, osmem-server via pip into a
# venv), then starts each service that is not already running. It is idempotent. All state (data,
# logs, pid files, the venv) lives under $SLUICE_STATE_DIR (default: <repo>/.state, git-ignored).
# `down` stops only the processes whose pid files `up` wrote; it never touches system services.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SLUICE_STATE_DIR:-$ROOT/.state}"
TANSU_VERSION="0.6.0"
OSMEM_VERSION="0.1.6"
MARIADB_PORT=3307
KAFKA_PORT=9092
KAFKA_BENCH_PORT=9095
REDIS_PORT=6380
REDIS_CLUSTER_PORTS=(6390 6391 6392)
ES_PORT=9200
DEBIAN_PACKAGES=(mariadb-server mariadb-client redis-server libssl-dev pkg-config make g++ curl procps)

log() { printf '[services] %s\n' "$*" >&2; }
die() {
    printf '[services] error: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------- install

install_debian_packages() {
    local missing=()
    for p in "${DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The package starts a system MariaDB/Redis on the default ports; ours use other ports and
    # leave those alone.
}

tansu_bin() {
    local candidate
    for candidate in "$(command -v tansu 2>/dev/null || true)" "${CARGO_HOME:-$HOME/.cargo}/bin/tansu"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

install_tansu() {
    tansu_bin >/dev/null && return 0
    log "building tansu $TANSU_VERSION from crates.io (about 10 minutes, once per machine)"
    # --locked matters: without it the build picks up newer dependencies and fails.
    cargo install tansu --locked --version "$TANSU_VERSION" --features dynostore,libsql \
        >"$STATE/tansu-build.log" 2>&1 || {
        tail -n 30 "$STATE/tansu-build.log" >&2
        die "building tansu failed (full log: $STATE/tansu-build.log)"
    }
}

osmem_bin() {
    local bin="$STATE/venv/lib/python3*/site-packages/osmem_server/bin/osmem-server"
    # shellcheck disable=SC2086
    ls $bin 2>/dev/null | head -n 1
}

install_osmem() {
    [ -n "$(osmem_bin)" ] && return 0
    log "installing osmem-server $OSMEM_VERSION into $STATE/venv"
    python3 -m venv "$STATE/venv"
    "$STATE/venv/bin/pip" install -q "osmem-server==$OSMEM_VERSION" || die "pip install osmem-server failed"
    chmod +x "$(osmem_bin)"
}

# ---------------------------------------------------------------- process helpers

# running NAME: true when the pid file's process is alive and still the program we started.
running() {
    local pidfile="$STATE/$1.pid" pid
    [ -f "$pidfile" ] || return 1
    pid="$(cat "$pidfile")"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$2"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_ready NAME LOGFILE CHECK...: runs CHECK until it succeeds (60 s), else prints the log tail.
# Gives up at once when the process has exited.
wait_ready() {
    local name="$1" logfile="$2"
    shift 2
    local i pid
    pid="$(cat "$STATE/$name.pid" 2>/dev/null || true)"
    for i in $(seq 1 120); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$STATE/$name.pid"
            break
        fi
        sleep 0.5
    done
    log "$name did not become ready; last lines of $logfile:"
    tail -n 40 "$logfile" >&2 || true
    die "$name failed to start"
}

# free_port NAME PORT: fails clearly when something we did not start already listens on PORT.
free_port() {
    if port_open "$2"; then
        die "$1 cannot start: 127.0.0.1:$2 is already in use by a process services.sh did not start (see: ss -ltnp 'sport = :$2'); stop it, then run 'scripts/services.sh up' again"
    fi
}

# start_bg NAME LOGFILE CMD...: starts CMD detached from this shell, writes its pid file.
start_bg() {
    local name="$1" logfile="$2"
    shift 2
    setsid nohup "$@" >>"$logfile" 2>&1 </dev/null &
    echo $! >"$STATE/$name.pid"
}

# ---------------------------------------------------------------- services

mariadb_sql() { mariadb --no-defaults -S "$STATE/mariadb/mysqld.sock" -uroot "$@"; }

up_mariadb() {
    if running mariadb mariadbd; then
        log "mariadb already running on 127.0.0.1:$MARIADB_PORT"
        return 0
    fi
    local dir="$STATE/mariadb"
    free_port mariadb "$MARIADB_PORT"
    mkdir -p "$dir"
    if [ ! -d "$dir/data/mysql" ]; then
        log "initialising MariaDB data directory $dir/data"
        mariadb-install-db --no-defaults --datadir="$dir/data" --user="$(id -un)" \
            --auth-root-authentication-method=socket --skip-test-db >"$dir/install.log" 2>&1 || {
            tail -n 30 "$dir/install.log" >&2
            die "mariadb-install-db failed"
        }
    fi
    log "starting MariaDB on 127.0.0.1:$MARIADB_PORT"
    start_bg mariadb "$dir/mariadbd.log" mariadbd --no-defaults \
        --datadir="$dir/data" --socket="$dir/mysqld.sock" --pid-file="$dir/mariadbd.pid" \
        --port="$MARIADB_PORT" --bind-address=127.0.0.1 --user="$(id -un)" \
        --skip-name-resolve --log-error="$dir/mariadbd.log" \
        --server-id=1 --log-bin="$dir/data/binlog" --binlog-format=ROW \
        --binlog-row-image=FULL --binlog-row-metadata=FULL --log-slave-updates \
        --gtid-domain-id=0 --gtid-strict-mode=ON --expire-logs-days=2 \
        --max-allowed-packet=1073741824 --innodb-buffer-pool-size=512M \
        --innodb-flush-log-at-trx-commit=2 --sync-binlog=0 \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
        --max-connections=500
    wait_ready mariadb "$dir/mariadbd.log" mariadb_sql -e "SELECT 1"
    mariadb_sql <<'SQL'
CREATE USER IF NOT EXISTS 'sluice'@'%' IDENTIFIED BY 'sluice';
GRANT ALL PRIVILEGES ON *.* TO 'sluice'@'%' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'sluice'@'localhost' IDENTIFIED BY 'sluice';
GRANT ALL PRIVILEGES ON *.* TO 'sluice'@'localhost' WITH GRANT OPTION;
SQL
}

up_tansu() {
    local name="$1" port="$2" storage="$3"
    if running "$name" "127.0.0.1:$port"; then
        log "$name already running on 127.0.0.1:$port"
        return 0
    fi
    local bin
    bin="$(tansu_bin)" || die "tansu $TANSU_VERSION is not installed"
    free_port "$name" "$port"
    mkdir -p "$STATE/$name"
    log "starting $name (tansu, $storage) on 127.0.0.1:$port"
    # tansu resolves a sqlite:// path against its working directory, so it runs from `/`.
    (cd / && RUST_LOG="${TANSU_LOG:-warn}" start_bg "$name" "$STATE/$name/tansu.log" "$bin" broker \
        --cluster-id sluice --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine "$storage")
    wait_ready "$name" "$STATE/$name/tansu.log" port_open "$port"
}

up_redis() {
    if running redis "127.0.0.1:$REDIS_PORT"; then
        log "redis already running on 127.0.0.1:$REDIS_PORT"
        return 0
    fi
    free_port redis "$REDIS_PORT"
    mkdir -p "$STATE/redis"
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    start_bg redis "$STATE/redis/redis.log" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir "$STATE/redis" --daemonize no --protected-mode no
    wait_ready redis "$STATE/redis/redis.log" redis-cli -p "$REDIS_PORT" ping
}

# A Redis Cluster of three masters (no replicas, no persistence), one process per port, state in
# .state/redis-cluster/. Slots are assigned once, by `redis-cli --cluster create`, when no node
# has a cluster yet; nodes started again later rejoin through their nodes-<port>.conf.
up_redis_cluster() {
    local dir="$STATE/redis-cluster" port name started=false nodes=()
    mkdir -p "$dir"
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do
        name="redis-cluster/$port"
        nodes+=("127.0.0.1:$port")
        if running "$name" "127.0.0.1:$port"; then
            continue
        fi
        free_port "$name" "$port"
        free_port "$name (cluster bus)" "$((port + 10000))"
        log "starting Redis Cluster node on 127.0.0.1:$port"
        mkdir -p "$dir/$port"
        start_bg "$name" "$dir/$port/redis.log" redis-server --bind 127.0.0.1 --port "$port" \
            --cluster-enabled yes --cluster-config-file "nodes-$port.conf" \
            --cluster-node-timeout 5000 --save "" --appendonly no --dir "$dir/$port" \
            --daemonize no --protected-mode no
        wait_ready "$name" "$dir/$port/redis.log" redis-cli -p "$port" ping
        started=true
    done
    if ! redis_cluster_ok; then
        if [ "$(redis-cli -p "${REDIS_CLUSTER_PORTS[0]}" cluster info | tr -d '\r' | sed -n 's/^cluster_slots_assigned://p')" = "0" ]; then
            log "creating the Redis Cluster (3 masters, slots split evenly)"
            redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
                >"$dir/create.log" 2>&1 || {
                tail -n 30 "$dir/create.log" >&2
                die "redis-cli --cluster create failed (log: $dir/create.log)"
            }
        fi
        local i
        for i in $(seq 1 60); do
            redis_cluster_ok && break
            sleep 0.5
        done
        redis_cluster_ok || die "the Redis Cluster on ports ${REDIS_CLUSTER_PORTS[*]} is not ok (redis-cli -p ${REDIS_CLUSTER_PORTS[0]} cluster info); to start afresh: scripts/services.sh down && rm -rf $dir && scripts/services.sh up"
    elif ! $started; then
        log "redis-cluster already running on 127.0.0.1:${REDIS_CLUSTER_PORTS[0]}-${REDIS_CLUSTER_PORTS[2]}"
    fi
}

# redis_cluster_ok: every node reports cluster_state:ok and knows all the others.
redis_cluster_ok() {
    local port info
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do
        info="$(redis-cli -p "$port" cluster info 2>/dev/null | tr -d '\r')" || return 1
        grep -q '^cluster_state:ok$' <<<"$info" || return 1
        grep -q "^cluster_known_nodes:${#REDIS_CLUSTER_PORTS[@]}\$" <<<"$info" || return 1
    done
}

up_osmem() {
    if running osmem "127.0.0.1:$ES_PORT"; then
        log "osmem already running on 127.0.0.1:$ES_PORT"
        return 0
    fi
    free_port osmem "$ES_PORT"
    mkdir -p "$STATE/osmem"
    log "starting osmem (OpenSearch-compatible) on 127.0.0.1:$ES_PORT"
    start_bg osmem "$STATE/osmem/osmem.log" "$(osmem_bin)" -addr "127.0.0.1:$ES_PORT" -no-stdin-watch -no-ja
    wait_ready osmem "$STATE/osmem/osmem.log" curl -sf "http://127.0.0.1:$ES_PORT/"
}

stop() {
    local name="$1" pidfile="$STATE/$1.pid" pid i
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        log "stopping $name (pid $pid)"
        kill "$pid" 2>/dev/null || true
        for i in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

status_line() {
    local name="$1" pattern="$2" addr="$3"
    if running "$name" "$pattern"; then
        printf '%-19s up     %s (pid %s)\n' "$name" "$addr" "$(cat "$STATE/$name.pid")"
    else
        printf '%-19s down   %s\n' "$name" "$addr"
    fi
}

# ---------------------------------------------------------------- main

cmd="${1:-}"
bench=false
[ "${2:-}" = "--bench" ] && bench=true
mkdir -p "$STATE"

case "$cmd" in
up)
    install_debian_packages
    install_tansu
    install_osmem
    up_mariadb
    up_tansu kafka "$KAFKA_PORT" "sqlite://$STATE/kafka/tansu.db"
    $bench && up_tansu kafka-bench "$KAFKA_BENCH_PORT" "memory://tansu/"
    up_redis
    up_redis_cluster
    up_osmem
    log "all services up (state in $STATE)"
    ;;
down)
    for s in kafka-bench osmem redis kafka mariadb; do stop "$s"; done
    for p in "${REDIS_CLUSTER_PORTS[@]}"; do stop "redis-cluster/$p"; done
    ;;
status)
    status_line mariadb mariadbd "127.0.0.1:$MARIADB_PORT"
    status_line kafka "127.0.0.1:$KAFKA_PORT" "127.0.0.1:$KAFKA_PORT"
    status_line kafka-bench "127.0.0.1:$KAFKA_BENCH_PORT" "127.0.0.1:$KAFKA_BENCH_PORT"
    status_line redis "127.0.0.1:$REDIS_PORT" "127.0.0.1:$REDIS_PORT"
    for p in "${REDIS_CLUSTER_PORTS[@]}"; do
        status_line "redis-cluster/$p" "127.0.0.1:$p" "127.0.0.1:$p"
    done
    status_line osmem "127.0.0.1:$ES_PORT" "127.0.0.1:$ES_PORT"
    ;;
*)
    echo "usage: $0 up [--bench] | down | status" >&2
    exit 2
    ;;
esac
