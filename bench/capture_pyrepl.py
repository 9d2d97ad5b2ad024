"""Baseline for bench/capture.sh: python-mysql-replication decoding the same row events and
json.dumps-ing each row, as many Python teams do. Prints "<rows> <seconds>"."""
import json
import sys
import time

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

host, port, user, password, db, log_file, log_pos, want = sys.argv[1:9]
stream = BinLogStreamReader(
    connection_settings={"host": host, "port": int(port), "user": user, "passwd": password},
    server_id=7077,
    log_file=log_file,
    log_pos=int(log_pos),
    resume_stream=True,
    blocking=False,
    is_mariadb=True,
    only_schemas=[db],
    only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
)
rows = 0
# Timed from the first row event: the library spends a fixed ~15 s connecting on this server,
# which is not decoding.
started = None
for event in stream:
    if started is None:
        started = time.time()
    for row in event.rows:
        json.dumps(row.get("values") or row.get("after_values"), default=str)
        rows += 1
    if rows >= int(want):
        break
stream.close()
print(rows, round(time.time() - (started or time.time()), 3))
