# Sourced by the bench scripts (with ROOT set to the repository): build_gomysql builds the Go peer
# of the capture benchmark, bench/peers/go-mysql, and prints the binary's path. It builds once per
# machine and again only when the peer's sources change, so a benchmark run does not pay for (or
# get slowed by) a Go build it has already done.
build_gomysql() {
    local src="$ROOT/bench/peers/go-mysql"
    local out="${SLUICE_STATE_DIR:-$ROOT/.state}/peers/go-mysql"
    local bin="$out/gomysql" go sum
    go="$(command -v go || echo /usr/local/go/bin/go)"
    if [ ! -x "$go" ]; then
        echo "build_gomysql: no Go toolchain (neither on PATH nor /usr/local/go/bin/go)" >&2
        return 1
    fi
    # go.sum is in the hash too: a dependency bump changes it, not always main.go or go.mod.
    sum="$(cat "$src/main.go" "$src/go.mod" "$src/go.sum" | sha256sum | cut -d' ' -f1)"
    if [ -x "$bin" ] && [ "$(cat "$bin.src-sha256" 2>/dev/null)" = "$sum" ]; then
        echo "$bin"
        return 0
    fi
    mkdir -p "$out"
    # -C: the repository root has no go.mod, the peer is its own module. -mod=readonly: the
    # committed go.sum is the whole truth, a build never edits it. -buildvcs=false: the Rust
    # repository's git state is nothing to stamp into a Go binary.
    if ! GOFLAGS="-mod=readonly -buildvcs=false" "$go" -C "$src" build -trimpath -o "$bin.tmp" . >"$out/build.log" 2>&1; then
        echo "build_gomysql: go build of $src failed; the end of $out/build.log:" >&2
        tail -n 20 "$out/build.log" >&2
        rm -f "$bin.tmp"
        return 1
    fi
    if [ -s "$out/build.log" ]; then tail -n 5 "$out/build.log" >&2; fi
    mv "$bin.tmp" "$bin"
    echo "$sum" >"$bin.src-sha256"
    echo "$bin"
}
