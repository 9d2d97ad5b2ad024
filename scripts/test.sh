#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script):
# local services up, formatting, lints, then every test of the workspace with cargo-nextest.
# Extra arguments go to `cargo nextest run` (e.g. `scripts/test.sh -E 'test(smoke)'`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# --bench also starts tansu's memory-storage broker on 9095: the end-to-end suite runs against it
# (docs/testing.md says why), except the tests that need record-timestamp lookups.
bash scripts/services.sh up --bench
# The end-to-end tests name their databases `prefix_<time>_<pid>_<n>` (integration::unique_name)
# and leave them for inspection; drop those of earlier runs, which otherwise pile up (~1 GB a run).
if [ -z "${SLUICE_TEST_MYSQL_URL:-}" ]; then
    sock="${SLUICE_STATE_DIR:-$PWD/.state}/mariadb/mysqld.sock"
    old="$(mariadb --no-defaults -S "$sock" -uroot -N -e "SELECT schema_name FROM information_schema.schemata
        WHERE schema_name RLIKE '^[a-z0-9_]+_[0-9]+_[0-9]+_[0-9]+(_rep)?$'")"
    [ -z "$old" ] || printf 'DROP DATABASE `%s`;\n' $old | mariadb --no-defaults -S "$sock" -uroot
    echo "[test] dropped $(echo $old | wc -w) databases of earlier test runs" >&2
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "[test] installing cargo-nextest" >&2
    cargo install cargo-nextest --locked
fi

echo "[test] cargo fmt --check" >&2
cargo fmt --all --check
echo "[test] cargo clippy" >&2
cargo clippy --workspace --all-targets -- -D warnings
# End-to-end tests start sluice-capture / sluice-sink as processes: build them first.
echo "[test] cargo build (binaries for the end-to-end tests)" >&2
cargo build --workspace --bins
# tansu's sqlite engine (9092) hangs under the parallel end-to-end suite (metadata requests time
# out, the database stops being written), so the suite uses the memory engine (9095) unless
# SLUICE_TEST_KAFKA points elsewhere. Tests that look offsets up by time need record timestamps,
# which only the sqlite engine answers by; they run against 9092 in a second, small pass.
TIMESTAMP_TESTS='test(start_at_a_time_between)'
echo "[test] cargo nextest run" >&2
SLUICE_TEST_KAFKA="${SLUICE_TEST_KAFKA:-127.0.0.1:9095}" \
    cargo nextest run --workspace --no-fail-fast -E "not ($TIMESTAMP_TESTS)" "$@"
echo "[test] cargo nextest run (offsets by time, sqlite broker)" >&2
SLUICE_TEST_KAFKA="${SLUICE_TEST_KAFKA:-127.0.0.1:9092}" \
    cargo nextest run --workspace --no-fail-fast --no-tests=warn -E "$TIMESTAMP_TESTS" "$@"
