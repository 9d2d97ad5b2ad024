#!/usr/bin/env bash
# Private local services for Sluice's development, tests and demo, all on loopback:
#
#   MariaDB 10.11 (binlog ROW/FULL, GTIDs)   127.0.0.1:3307   mysql://sluice:sluice@127.0.0.1:3307
#   Apache Kafka 4.3 (KRaft, one node)       127.0.0.1:9092   PLAINTEXT
#                                            127.0.0.1:9093   SASL_SSL, SCRAM-SHA-512 user sluice / sluice-secret
#                                            127.0.0.1:9094   SSL with client certificates (mTLS)
#                                            127.0.0.1:9098   the KRaft controller (not for clients)
#   Redis, no persistence                     127.0.0.1:6380
#   Redis Cluster, 3 masters, no replicas     127.0.0.1:6390-6392
#   OpenSearch 2.19 node                      127.0.0.1:9200   (transport 9300)
#
# usage: scripts/services.sh up | down | status
#
# `up` installs whatever is missing (Debian packages; Kafka's and OpenSearch's jars from Maven
# Central, once per machine), then starts each service that is not already running. It is
# idempotent. All state (data, logs, pid files, jars, the test CA) lives under $SLUICE_STATE_DIR
# (default: <repo>/.state, git-ignored). `down` stops only the processes whose pid files `up`
# wrote; it never touches system services.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SLUICE_STATE_DIR:-$ROOT/.state}"
MARIADB_PORT=3307
KAFKA_PORT=9092
KAFKA_SASL_PORT=9093
KAFKA_MTLS_PORT=9094
KAFKA_CONTROLLER_PORT=9098
REDIS_PORT=6380
REDIS_CLUSTER_PORTS=(6390 6391 6392)
ES_PORT=9200
# chromium: the status page test; prometheus: promtool checks deploy/prometheus rules.
# Kerberos: libsasl2-dev to build librdkafka with GSSAPI (rdkafka's `gssapi` feature), its GSSAPI
# plugin and kinit (krb5-user) at run time, and a KDC (krb5-kdc, kadmin.local from
# krb5-admin-server) that the Kerberos end-to-end test runs on loopback.
DEBIAN_PACKAGES=(mariadb-server mariadb-client redis-server libssl-dev pkg-config make g++ curl procps openssl time
    chromium prometheus
    libsasl2-dev libsasl2-modules-gssapi-mit krb5-user krb5-kdc krb5-admin-server)

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

# maven_jars NAME [POM DIR]: copies the runtime jars of POM (default scripts/NAME/pom.xml) from
# Maven Central into $STATE/DIR/lib (default DIR: NAME), once per machine, and again whenever the
# pom changes (the marker holds a hash of the pom the jars came from; a fresh folder, so no older
# jar stays beside a newer one).
maven_jars() {
    local name="$1" pom="${2:-$ROOT/scripts/$1/pom.xml}" dir="$STATE/${3:-$1}" stamp
    local lib="$dir/lib"
    stamp="$(sha256sum "$pom" | cut -c1-16)"
    [ "$(cat "$lib/.pom-hash" 2>/dev/null || true)" = "$stamp" ] && return 0
    command -v mvn >/dev/null || die "$name needs Maven (mvn) and Java 17 to fetch its jars; install them (apt-get install maven openjdk-17-jre-headless)"
    log "fetching $name's jars from Maven Central into $lib (once per machine)"
    rm -rf "$lib"
    mkdir -p "$lib"
    mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$lib" >"$dir/maven.log" 2>&1 || {
        tail -n 30 "$dir/maven.log" >&2
        die "fetching $name's jars failed (full log: $dir/maven.log)"
    }
    echo "$stamp" >"$lib/.pom-hash"
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

# The test CA and the certificates of the TLS listeners, made once by openssl under
# $STATE/kafka/tls: ca.pem (what clients trust), broker.p12 (the broker's key and certificate for
# localhost and 127.0.0.1), client.pem / client.key (a client certificate for the mTLS listener).
KAFKA_KEYSTORE_PASSWORD=sluice-keystore
KAFKA_SCRAM_USER=sluice
KAFKA_SCRAM_PASSWORD=sluice-secret

make_kafka_tls() {
    local dir="$STATE/kafka/tls"
    [ -f "$dir/client.key" ] && return 0
    log "making the test CA and the broker's and a client's certificates in $dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    (
        cd "$dir"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Sluice test CA" \
            -keyout ca.key -out ca.pem
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >broker.ext
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout broker.key -out broker.csr
        openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile broker.ext -out broker.pem
        openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
            -passout "pass:$KAFKA_KEYSTORE_PASSWORD" -out broker.p12
        openssl req -newkey rsa:2048 -nodes -subj "/CN=sluice-client" -keyout client.key.tmp -out client.csr
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -out client.pem
        mv client.key.tmp client.key
    ) >"$STATE/kafka/tls.log" 2>&1 || {
        tail -n 20 "$STATE/kafka/tls.log" >&2
        die "making the Kafka test certificates failed (log: $STATE/kafka/tls.log)"
    }
}

# kafka_properties DIR PLAINTEXT SASL_SSL SSL CONTROLLER: a single-node KRaft config with its data
# in DIR/data. Internal topics have one replica and one partition (a faster first group join);
# two network and two I/O threads suit a 2-core machine that also runs everything else.
kafka_properties() {
    local dir="$1" plain="$2" sasl="$3" mtls="$4" ctl="$5" tls="$STATE/kafka/tls"
    cat <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$ctl
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$plain,SASL_SSL://127.0.0.1:$sasl,SSL://127.0.0.1:$mtls,CONTROLLER://127.0.0.1:$ctl
advertised.listeners=PLAINTEXT://127.0.0.1:$plain,SASL_SSL://127.0.0.1:$sasl,SSL://127.0.0.1:$mtls
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.network.threads=2
num.io.threads=2
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$tls/broker.p12
ssl.keystore.password=$KAFKA_KEYSTORE_PASSWORD
ssl.key.password=$KAFKA_KEYSTORE_PASSWORD
ssl.truststore.type=PEM
ssl.truststore.location=$tls/ca.pem
listener.name.ssl.ssl.client.auth=required
EOF
}

up_kafka() {
    local dir="$STATE/kafka"
    if running kafka "$dir/server.properties"; then
        log "kafka already running on 127.0.0.1:$KAFKA_PORT (SASL_SSL $KAFKA_SASL_PORT, mTLS $KAFKA_MTLS_PORT)"
        return 0
    fi
    for port in "$KAFKA_PORT" "$KAFKA_SASL_PORT" "$KAFKA_MTLS_PORT" "$KAFKA_CONTROLLER_PORT"; do
        free_port kafka "$port"
    done
    make_kafka_tls
    kafka_properties "$dir" "$KAFKA_PORT" "$KAFKA_SASL_PORT" "$KAFKA_MTLS_PORT" "$KAFKA_CONTROLLER_PORT" \
        >"$dir/server.properties"
    if [ ! -f "$dir/data/meta.properties" ]; then
        log "formatting Kafka's data directory $dir/data (SCRAM user $KAFKA_SCRAM_USER)"
        local id
        id="$(java -cp "$dir/lib/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
        java -cp "$dir/lib/*" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" \
            --ignore-formatted \
            --add-scram "SCRAM-SHA-512=[name=$KAFKA_SCRAM_USER,password=$KAFKA_SCRAM_PASSWORD]" \
            >"$dir/format.log" 2>&1 || {
            tail -n 30 "$dir/format.log" >&2
            die "formatting Kafka's storage failed (log: $dir/format.log)"
        }
    fi
    log "starting Apache Kafka on 127.0.0.1:$KAFKA_PORT (SASL_SSL $KAFKA_SASL_PORT, mTLS $KAFKA_MTLS_PORT)"
    : >"$dir/kafka.log"
    start_bg kafka "$dir/kafka.log" java -Xms512m -Xmx1g -XX:+UseG1GC \
        -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
        -Dorg.slf4j.simpleLogger.showDateTime=true \
        -cp "$dir/lib/*" kafka.Kafka "$dir/server.properties"
    wait_ready kafka "$dir/kafka.log" grep -q 'Kafka Server started' "$dir/kafka.log"
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

# The OpenSearch node: up_opensearch.
# shellcheck source=scripts/opensearch/opensearch.sh
source "$ROOT/scripts/opensearch/opensearch.sh"

# ---------------------------------------------------------------- main

cmd="${1:-}"
mkdir -p "$STATE/kafka" "$STATE/opensearch"

case "$cmd" in
up)
    install_debian_packages
    maven_jars kafka
    maven_jars opensearch
    # Debezium's MariaDB connector on Kafka Connect, for the e2e test `debezium::` and the
    # benchmark's peer; the same folder and marker as bench/peers/debezium.sh's install_debezium.
    maven_jars debezium "$ROOT/bench/peers/debezium/pom.xml" peers/debezium
    up_mariadb
    up_kafka
    up_redis
    up_redis_cluster
    up_opensearch
    log "all services up (state in $STATE)"
    ;;
down)
    for s in opensearch redis kafka mariadb; do stop "$s"; done
    for p in "${REDIS_CLUSTER_PORTS[@]}"; do stop "redis-cluster/$p"; done
    ;;
status)
    status_line mariadb mariadbd "127.0.0.1:$MARIADB_PORT"
    status_line kafka "$STATE/kafka/server.properties" "127.0.0.1:$KAFKA_PORT (SASL_SSL $KAFKA_SASL_PORT, mTLS $KAFKA_MTLS_PORT)"
    status_line redis "127.0.0.1:$REDIS_PORT" "127.0.0.1:$REDIS_PORT"
    for p in "${REDIS_CLUSTER_PORTS[@]}"; do
        status_line "redis-cluster/$p" "127.0.0.1:$p" "127.0.0.1:$p"
    done
    status_line opensearch Launcher.java "http://127.0.0.1:$ES_PORT"
    ;;
*)
    echo "usage: $0 up | down | status" >&2
    exit 2
    ;;
esac
