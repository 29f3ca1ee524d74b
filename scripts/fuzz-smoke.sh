#!/usr/bin/env bash
# Fuzz smoke run: builds every cargo-fuzz target in fuzz/ once, then
# runs each for NOKV_FUZZ_SECS seconds (default 8) and prints how many
# inputs each executed. Fails on the first crash (the input is left in
# fuzz/artifacts/<target>/). Long runs: see docs/reliability.md.
#
# Works on stable Rust: cargo-fuzz passes nightly-only flags to rustc,
# which RUSTC_BOOTSTRAP=1 allows. Without a sanitizer (-s none): the
# decoders are safe Rust, and this keeps the build short; long runs may
# add AddressSanitizer (the cargo-fuzz default).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${NOKV_FUZZ_SECS:-8}"
export RUSTC_BOOTSTRAP=1
export PATH="$HOME/.cargo/bin:$PATH"
# The fuzz workspace has its own target dir (instrumented builds).
unset CARGO_TARGET_DIR

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

cargo fuzz build -s none --debug-assertions
total=0
for target in $(cargo fuzz list); do
    log="$(mktemp)"
    if ! cargo fuzz run -s none --debug-assertions "$target" -- -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz target $target FAILED (see fuzz/artifacts/$target/)"
        rm -f "$log"
        exit 1
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)"
    rm -f "$log"
    total=$((total + runs))
    printf 'fuzz %-20s %12s executions in %ss\n' "$target" "$runs" "$secs"
done
printf 'fuzz total %s executions, no crash\n' "$total"
