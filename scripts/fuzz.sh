#!/usr/bin/env bash
# Fuzzes every parser that reads outside input with cargo-fuzz (libFuzzer), one target after the
# other (fuzz/fuzz_targets/, docs/reliability.md):
#   binlog_events   binlog events through the capture's decoder (TABLE_MAP, rows of every type,
#                   values, DECIMAL, JSON, MariaDB's events); every row it writes must read back
#   binlog_json     MySQL's binary JSON          binlog_decimal  DECIMAL's binlog form
#   event_decode    the sink's event reader: fast path against serde_json, encode/decode round trip
#   rules_where     rules' `where` expressions   rules_template  rules' templates
#   config_load     capture and sink config files, with validation
#   input_formats   Canal, Maxwell and Debezium messages
#
# FUZZ_SECONDS per target (default 5, what CI runs) or FUZZ_RUNS executions per target (the long
# run: FUZZ_RUNS=10000000 FUZZ_RELEASE=1 scripts/fuzz.sh; with FUZZ_SECONDS too, whichever ends
# first); FUZZ_TARGETS="a b" picks targets.
# The corpus grows in $SLUICE_STATE_DIR/fuzz/corpus/<target> (kept between runs) from the seeds in
# fuzz/seeds/<target>; a crash stops the script with the input in fuzz/artifacts/<target>/, which
# `cargo fuzz run <target> <file>` replays. Each crash found is fixed with a regression test in the
# crate at fault, and its input kept in fuzz/seeds/<target>/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
STATE="${SLUICE_STATE_DIR:-$PWD/.state}"
SECONDS_PER="${FUZZ_SECONDS:-5}"
RUNS="${FUZZ_RUNS:-}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "[fuzz] installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
# Without a sanitizer (-s none) cargo-fuzz needs no nightly toolchain; the targets check their
# own invariants, and Rust's debug assertions catch overflows in the dev profile.
profile=(--dev)
[ -n "${FUZZ_RELEASE:-}" ] && profile=(-O)
cd fuzz
echo "[fuzz] building the targets" >&2
cargo fuzz build -s none "${profile[@]}"
targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
for t in $targets; do
    corpus="$STATE/fuzz/corpus/$t"
    mkdir -p "$corpus" "seeds/$t"
    # -runs for the long run, bounded in time too when FUZZ_SECONDS is also given.
    limit=()
    [ -n "$RUNS" ] && limit+=(-runs="$RUNS")
    if [ -z "$RUNS" ] || [ -n "${FUZZ_SECONDS:-}" ]; then limit+=(-max_total_time="$SECONDS_PER"); fi
    echo "[fuzz] $t: ${limit[*]}" >&2
    started=$SECONDS
    cargo fuzz run -s none "${profile[@]}" "$t" "$corpus" "seeds/$t" -- "${limit[@]}" \
        -max_len=65536 -print_final_stats=1 2>"$STATE/fuzz/$t.log" || {
        tail -n 40 "$STATE/fuzz/$t.log" >&2
        echo "[fuzz] $t FAILED: the input is in fuzz/artifacts/$t/" >&2
        exit 1
    }
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$STATE/fuzz/$t.log" | grep -o '[0-9]*$' || echo '?')"
    echo "[fuzz] $t: $runs executions in $((SECONDS - started)) s, corpus $(ls "$corpus" | wc -l) inputs" >&2
done
