# The end-to-end peers' finish line: a replica table that holds what its source table holds.
# Sourced (by bench/peers/debezium.sh and bench/peers/sluice_e2e.sh); defines
#
#   table_checksum DB TABLE [COLUMNS_OF_DB]
#       prints `<count> <bit_xor of crc32>` of DB.TABLE's rows, over the columns of
#       COLUMNS_OF_DB.TABLE (default DB), in their order.
#   wait_replica SRC_DB REP_DB TABLE TIMEOUT PID...
#       polls REP_DB.TABLE every 0.5 s until its checksum equals SRC_DB.TABLE's and prints the
#       epoch seconds it saw that. Returns 2 as soon as one of the PIDs has exited, 3 after
#       TIMEOUT seconds (the last checksums on stderr).
#
# The columns are the source's, so a replica column the source lacks cannot hide a difference.
# JSON columns (MariaDB keeps them as text under a json_valid CHECK) are compared as JSON_COMPACT:
# the source holds JSON_OBJECT's spaced text, each peer writes its own serialisation of the same
# document, and what a reader of the replica gets is the document, not its spacing.

_rep_sql() {
    mariadb --no-defaults -h "${MYSQL_HOST:-127.0.0.1}" -P "${MYSQL_PORT:-3307}" \
        -u"${MYSQL_USER:-sluice}" -p"${MYSQL_PW:-sluice}" "$@"
}

# _rep_columns DB TABLE: the checksum's column list of DB.TABLE.
_rep_columns() {
    local cols_db="$1" table="$2" cols
    cols="$(_rep_sql -N -e "
        SELECT GROUP_CONCAT(IF(cc.CHECK_CLAUSE IS NULL, CONCAT('\`', c.COLUMN_NAME, '\`'),
                               CONCAT('JSON_COMPACT(\`', c.COLUMN_NAME, '\`)'))
                            ORDER BY c.ORDINAL_POSITION SEPARATOR ', ')
        FROM information_schema.COLUMNS c
        LEFT JOIN information_schema.CHECK_CONSTRAINTS cc
          ON cc.CONSTRAINT_SCHEMA = c.TABLE_SCHEMA AND cc.TABLE_NAME = c.TABLE_NAME
         AND cc.CHECK_CLAUSE = CONCAT('json_valid(\`', c.COLUMN_NAME, '\`)')
        WHERE c.TABLE_SCHEMA = '$cols_db' AND c.TABLE_NAME = '$table'")" || return 1
    [ -n "$cols" ] && [ "$cols" != "NULL" ] || {
        echo "table_checksum: $cols_db.$table has no columns" >&2
        return 1
    }
    echo "$cols"
}

# _rep_sum DB TABLE COLUMNS
_rep_sum() {
    _rep_sql -N -e "SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('#', $3))), 0) FROM \`$1\`.\`$2\`" | tr '\t' ' '
}

table_checksum() {
    local cols
    cols="$(_rep_columns "${3:-$1}" "$2")" || return 1
    _rep_sum "$1" "$2" "$cols"
}

wait_replica() {
    local src="$1" rep="$2" table="$3" timeout="$4"
    shift 4
    local cols want got pid start=$SECONDS
    cols="$(_rep_columns "$src" "$table")" || return 1
    want="$(_rep_sum "$src" "$table" "$cols")" || return 1
    while :; do
        got="$(_rep_sum "$rep" "$table" "$cols" 2>/dev/null || true)"
        if [ "$got" = "$want" ]; then
            date +%s.%N
            return 0
        fi
        for pid in "$@"; do
            kill -0 "$pid" 2>/dev/null || {
                echo "process $pid exited before $rep.$table converged (replica: ${got:-unreadable}; source: $want)" >&2
                return 2
            }
        done
        if ((SECONDS - start >= timeout)); then
            echo "$rep.$table did not converge within $timeout s (replica: ${got:-unreadable}; source: $want)" >&2
            return 3
        fi
        sleep 0.5
    done
}

# proc_usage PID...: `<cpu_seconds> <peak_rss_kb>` summed over the processes, from /proc (utime +
# stime, fields 14 and 15 of stat, after the command name, which may hold spaces; VmHWM).
proc_usage() {
    local pid ticks=0 rss=0 t r
    for pid in "$@"; do
        t="$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')"
        r="$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")"
        ticks=$((ticks + t))
        rss=$((rss + r))
    done
    python3 -c 'import sys; print(f"{int(sys.argv[1]) / int(sys.argv[2]):.2f} {sys.argv[3]}")' "$ticks" "$(getconf CLK_TCK)" "$rss"
}
