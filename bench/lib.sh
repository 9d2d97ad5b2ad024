# Sourced by the bench scripts: the local MariaDB that scripts/services.sh starts, and the
# arithmetic bash cannot do (rows per second, ratios).
MYSQL_HOST=127.0.0.1 MYSQL_PORT=3307 MYSQL_USER=sluice MYSQL_PW=sluice
sql() { mariadb --no-defaults -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u"$MYSQL_USER" -p"$MYSQL_PW" "$@"; }
now() { date +%s.%N; }
# rate COUNT SECONDS: COUNT per second, as an integer (0 for no time).
rate() { python3 -c "import sys; n, s = float(sys.argv[1]), float(sys.argv[2]); print(int(n / s) if s > 0 else 0)" "$1" "$2"; }
# ratio A B: A / B with two decimals ("n/a" for B = 0).
ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f'{a / b:.2f}' if b > 0 else 'n/a')" "$1" "$2"; }
# drop_topics BROKER TOPIC...: deletes the run's topics when the script exits, with Kafka's own
# TopicCommand (one JVM for all of them; the jars are the ones scripts/services.sh fetched). A
# million-event run leaves about 0.5 GB in the broker's log otherwise.
drop_topics() {
    local broker="$1"
    shift
    local lib="${SLUICE_STATE_DIR:-$ROOT/.state}/kafka/lib" pattern
    pattern="$(printf '%s|' "$@" | sed 's/[.]/\\./g; s/|$//')"
    java -cp "$lib/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "$broker" \
        --delete --if-exists --topic "^($pattern)\$" >/dev/null 2>&1 || true
}
# topic_messages BROKER TOPIC: the messages on TOPIC, the sum of its partitions' end offsets
# (Kafka's GetOffsetShell prints topic:partition:offset).
topic_messages() {
    local lib="${SLUICE_STATE_DIR:-$ROOT/.state}/kafka/lib"
    java -cp "$lib/*" org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$1" --topic "$2" \
        --time -1 2>/dev/null | awk -F: '{ s += $NF } END { print s + 0 }'
}
# orders_binlog DB ROWS: (re)creates DB.orders, the capture benchmarks' row (BIGINT key, INT,
# DECIMAL, VARCHAR, TEXT, DATETIME(3), JSON), inserts ROWS rows in transactions of 1,000, and
# prints the binlog range they take: START_FILE START_POS END_FILE END_POS.
orders_binlog() {
    local db="$1" rows="$2" lo hi start end
    sql -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db; CREATE TABLE $db.orders (
      id BIGINT UNSIGNED PRIMARY KEY, user_id INT NOT NULL, amount DECIMAL(12,2) NOT NULL,
      status VARCHAR(20) NOT NULL, note TEXT, created_at DATETIME(3) NOT NULL, items JSON NOT NULL)"
    start="$(sql -N -e "SHOW MASTER STATUS" | awk '{print $1, $2}')"
    {
        for ((lo = 1; lo <= rows; lo += 1000)); do
            hi=$((lo + 999)); [ "$hi" -gt "$rows" ] && hi=$rows
            echo "INSERT INTO $db.orders SELECT seq, seq % 5000, (seq % 100000) / 100, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'cancelled'), CONCAT('note for order ', seq, ': leave at the door'), TIMESTAMPADD(SECOND, seq, '2026-01-01 00:00:00.123'), JSON_OBJECT('sku', CONCAT('A-', seq % 97), 'qty', seq % 7, 'tags', JSON_ARRAY('x', 'y')) FROM seq_${lo}_to_${hi};"
        done
    } | sql "$db"
    end="$(sql -N -e "SHOW MASTER STATUS" | awk '{print $1, $2}')"
    echo "$start $end"
}
# settle DB.TABLE: waits until MariaDB has written the table's pages (and the kernel its dirty
# pages) out. After 300k rows of inserts, InnoDB's page cleaner flushed ~70 MB over ~25 s, and
# what was timed meanwhile ran slower: six `sluice-capture run`s of the same binlog, started
# 0-25 s after the inserts, took 0.95, 0.84, 0.84, 0.79, 0.80 and 0.72 s.
settle() {
    sql -e "FLUSH TABLES $1 FOR EXPORT; UNLOCK TABLES;"
    local i dirty
    for ((i = 0; i < 60; i++)); do
        dirty="$(sql -N -e "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'" | awk '{print $2}')"
        [ "${dirty:-0}" -lt 50 ] && break
        sleep 0.5
    done
    sync
}
