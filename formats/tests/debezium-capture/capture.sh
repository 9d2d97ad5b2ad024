#!/usr/bin/env bash
# Captures real Debezium (MariaDB connector) messages for formats/tests/fixtures/debezium:
#   formats/tests/debezium-capture/capture.sh SCHEMAS(true|false) DECIMAL_MODE(precise|string) OUT.jsonl
# Writes a table with every column type, inserts/updates/key-changes/deletes rows, streams them
# through bench/peers/debezium.sh's worker and prints each record as {"key":…,"value":…}.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=bench/peers/debezium.sh
source "$here/../../../bench/peers/debezium.sh"
schemas="$1" mode="$2" out="$3"
db=dbz_fx table=all_types prefix="fx_${schemas}_${mode}_$$"
work="$(_dbz_state)/fixtures-$prefix"
mkdir -p "$work"
install_debezium
_dbz_sql -e "CREATE DATABASE IF NOT EXISTS $db; DROP TABLE IF EXISTS $db.$table;
CREATE TABLE $db.$table (id INT PRIMARY KEY, dec_c DECIMAL(10,2), d DATE, dt DATETIME(6), dt0 DATETIME,
 dt3 DATETIME(3), ts TIMESTAMP(3) NULL, t TIME(6), y YEAR, b BIT(10), b1 BIT(1), e ENUM('new','paid'),
 s SET('red','green','blue'), j JSON, bin VARBINARY(8), g GEOMETRY, big BIGINT UNSIGNED, f FLOAT,
 dbl DOUBLE, txt VARCHAR(20)) DEFAULT CHARSET=utf8mb4"
read -r file pos _ <<<"$(_dbz_sql -N -e 'SHOW MASTER STATUS')"
_dbz_sql --default-character-set=utf8mb4 "$db" -e "SET time_zone='+00:00';
INSERT INTO $table VALUES (1, -12.30, '2026-11-21', '2026-11-21 09:15:02.123456', '2026-11-21 09:15:02',
 '2026-11-21 09:15:02.000', '2026-11-21 09:15:02.120', '-838:59:59.000000', 2026, b'1011', b'1', 'paid',
 'red,blue', '{\"tags\": [\"a\", \"b\"], \"n\": 1.50}', x'000102', ST_GeomFromText('POINT(1 2)'),
 18446744073709551615, 3.14, 2.718281828459045, 'naïve 🌊');
UPDATE $table SET e='new', dec_c=0.01, s='' WHERE id=1;
UPDATE $table SET id=2 WHERE id=1;
DELETE FROM $table WHERE id=2;"
gtids="$(_dbz_gtids "$file" "$pos")"
port="$(_dbz_worker "$work" "$schemas")"
_dbz_source_json "$work/connector.json" fx-dump "$prefix" "$db" "$table" "$mode" "$work"
python3 - "$work/connector.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["config"]["column.propagate.source.type"] = ".*"
c["config"]["topic.creation.default.partitions"] = "1"
json.dump(c, open(sys.argv[1], "w"))
PY
_dbz_start "$work" "$port" fx-dump "$prefix" "$file" "$pos" "$gtids" "$work/connector.json"
trap '_dbz_stop "$_DBZ_PID"' EXIT
# 1 insert + 1 update + (delete + tombstone + insert) + (delete + tombstone) = 7 records.
java -cp "$here:$(_dbz_state)/lib/*" "$here/Dump.java" "${SLUICE_BENCH_KAFKA:-127.0.0.1:9092}" "$prefix.$db.$table" 7 120 >"$out"
