#!/usr/bin/env bash
# The whole NoKV test suite: formatting, lints, and every test against
# the real components (holt on disk, real processes). CI (.ci/run) calls
# exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# One target dir for every step: build once.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (deny warnings)"
cargo clippy --workspace --all-targets -- -D warnings

if ! cargo nextest --version >/dev/null 2>&1; then
    step "installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

step "tests (cargo nextest)"
cargo nextest run --workspace --no-fail-fast --failure-output final

step "doc tests"
cargo test --workspace --doc --quiet
