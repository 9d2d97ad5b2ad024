# shellcheck shell=bash
# The OpenSearch 2.19 node of scripts/services.sh, sourced by it (not run on its own). It relies on
# services.sh's helpers (log, die, running, free_port, start_bg, wait_ready; maven_jars fetches
# the jars) and variables (ROOT, STATE, ES_PORT). Everything lives in $STATE/opensearch: lib/
# (the jars, from Maven Central once per machine), data/, opensearch.log, and the empty modules/
# and plugins/ folders the node wants.

OPENSEARCH_TRANSPORT_PORT=9300
# The distribution's default heap. Measured on the 2-core machine: ready in 10 to 11 s (about 2 s
# of that compiles Launcher.java), 0.4 GB of RSS idle and 0.6 GB after bulk-indexing 40,000
# documents, since the heap is reserved but only touched as it fills. A smaller heap risks circuit
# breaker rejections (HTTP 429) on large bulk requests; a larger one only takes memory from Kafka,
# MariaDB and the tests.
OPENSEARCH_HEAP="${OPENSEARCH_HEAP:-1g}"

# up_opensearch: starts the node unless it runs already, and waits until its cluster is yellow
# (a single node never assigns replicas, so green is out of reach for indexes that have some).
up_opensearch() {
    local dir="$STATE/opensearch" src="$ROOT/scripts/opensearch"
    if running opensearch "$src/Launcher.java"; then
        log "opensearch already running on 127.0.0.1:$ES_PORT"
        return 0
    fi
    [ -f "$dir/lib/.pom-hash" ] || die "OpenSearch's jars are missing from $dir/lib (maven_jars opensearch fetches them)"
    free_port opensearch "$ES_PORT"
    free_port "opensearch (transport)" "$OPENSEARCH_TRANSPORT_PORT"
    mkdir -p "$dir"
    log "starting OpenSearch 2.19 on 127.0.0.1:$ES_PORT (transport $OPENSEARCH_TRANSPORT_PORT)"
    : >"$dir/opensearch.log"
    # The flags follow the distribution's jvm.options where they matter here. Log4j's own shutdown
    # hook is off so that the launcher's hook can still log the node's close. An out-of-memory
    # node is killed rather than left half-working, since no OpenSearch bootstrap is there to do it.
    start_bg opensearch "$dir/opensearch.log" java \
        "-Xms$OPENSEARCH_HEAP" "-Xmx$OPENSEARCH_HEAP" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError \
        -Djava.locale.providers=SPI,COMPAT -Dfile.encoding=UTF-8 \
        -Dlog4j2.disable.jmx=true -Dlog4j.shutdownHookEnabled=false \
        "-Dlog4j2.configurationFile=$src/log4j2.properties" \
        -cp "$dir/lib/*" "$src/Launcher.java" "$dir" "$ES_PORT" "$OPENSEARCH_TRANSPORT_PORT"
    wait_ready opensearch "$dir/opensearch.log" \
        curl -sf "http://127.0.0.1:$ES_PORT/_cluster/health?wait_for_status=yellow&timeout=1s"
}
