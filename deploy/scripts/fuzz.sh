#!/usr/bin/env bash
# Fuzzes ztgw's parsers with cargo fuzz (libFuzzer, nightly toolchain): every target in
# fuzz/fuzz_targets for SECONDS each (default 60), growing fuzz/corpus/TARGET. A crash
# leaves its input in fuzz/artifacts/TARGET: fix it, and commit the input there, where
# `cargo test -p ztgw-fuzz` (part of CI) replays it with the whole corpus for good.
#
#   bash deploy/scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Prints, per target, the executions run and the corpus size; the corpus is then
# minimised (cargo fuzz cmin) so that what is committed stays small.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
shift || true
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: cargo fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
targets=("$@")
if ((${#targets[@]} == 0)); then
    for f in fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi
cargo +nightly fuzz build --fuzz-dir fuzz --features libfuzzer -O
printf '%-18s %14s %10s %8s\n' target executions exec/s corpus
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log="$(mktemp)"
    if ! cargo +nightly fuzz run --fuzz-dir fuzz --features libfuzzer -O "$t" \
        "fuzz/corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1; then
        echo "fuzz.sh: $t found a crash; its input is in fuzz/artifacts/$t:" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    rate="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    cargo +nightly fuzz cmin --fuzz-dir fuzz --features libfuzzer -O "$t" "fuzz/corpus/$t" >"$log" 2>&1
    printf '%-18s %14s %10s %8s\n' "$t" "$runs" "$rate" "$(find "fuzz/corpus/$t" -type f | wc -l)"
    rm -f "$log"
done
