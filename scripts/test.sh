#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script):
# local services up, formatting, lints, then every test of the workspace with cargo-nextest.
# Extra arguments go to `cargo nextest run` (e.g. `scripts/test.sh -E 'test(smoke)'`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/services.sh up
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
(cd fuzz && cargo fmt --check)
echo "[test] cargo clippy" >&2
cargo clippy --workspace --all-targets -- -D warnings
# End-to-end tests start sluice-capture / sluice-sink as processes: build them first.
echo "[test] cargo build (binaries for the end-to-end tests)" >&2
cargo build --workspace --bins
echo "[test] cargo nextest run" >&2
cargo nextest run --workspace --no-fail-fast "$@"
# A few seconds of fuzzing per parser (scripts/fuzz.sh; the long run is by hand, docs/reliability.md).
echo "[test] fuzzing every parser for ${FUZZ_SECONDS:-5} s each" >&2
FUZZ_SECONDS="${FUZZ_SECONDS:-5}" bash scripts/fuzz.sh
