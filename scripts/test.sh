#!/usr/bin/env bash
# The whole NoKV test suite: formatting, lints, and every test against
# the real components — holt on disk, real processes, and a real S3
# server (Garage) for every object-store test. CI (.ci/run) calls
# exactly this script.
#
# Installs what it needs when missing (garage via `cargo install`, about
# 8 minutes on 2 cores, once per machine; cargo-nextest), starts Garage
# on 127.0.0.1 with its data in a temp dir, and stops and removes it at
# the end, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# One target dir for every step: build once.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export PATH="$HOME/.cargo/bin:$PATH"

GARAGE_VERSION=2.5.0

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

if ! command -v garage >/dev/null 2>&1; then
    step "installing garage $GARAGE_VERSION (S3 server for the tests; once per machine)"
    cargo install garage --locked --version "$GARAGE_VERSION"
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    step "installing cargo-nextest"
    cargo install cargo-nextest --locked
fi
if ! command -v python3 >/dev/null 2>&1; then
    step "installing python3 (picks free ports for Garage)"
    apt-get update -qq && apt-get install -y -qq python3
fi

# FUSE mount tests (crates/nokv-cli/tests/fuse.rs) need fusermount3
# and the tools they drive; they run whenever /dev/fuse exists.
need_pkgs=()
command -v fusermount3 >/dev/null 2>&1 || need_pkgs+=(fuse3)
command -v rsync >/dev/null 2>&1 || need_pkgs+=(rsync)
command -v git >/dev/null 2>&1 || need_pkgs+=(git)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    step "installing ${need_pkgs[*]} (for the FUSE mount tests)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
fi
if [ ! -e /dev/fuse ]; then
    echo
    echo "!!!!!!!! SKIPPED: fuse (/dev/fuse does not exist: the FUSE mount tests will not mount anything) !!!!!!!!"
    echo
fi

step "cargo clippy (deny warnings)"
cargo clippy --workspace --all-targets -- -D warnings

step "building tests"
cargo nextest run --workspace --no-run

step "starting Garage on 127.0.0.1"
garage_dir="$(mktemp -d /tmp/nokv-test-garage.XXXXXX)"
cleanup() { bash "$root/scripts/garage-env.sh" cleanup "$garage_dir" || true; }
trap cleanup EXIT INT TERM
bash "$root/scripts/garage-env.sh" start "$garage_dir" >/dev/null
# shellcheck disable=SC1091
source "$garage_dir/env"
export NOKV_TEST_GARAGE_SCRIPT="$root/scripts/garage-env.sh"
echo "Garage S3 API at $NOKV_TEST_S3_ENDPOINT, bucket $NOKV_TEST_S3_BUCKET"

step "tests (cargo nextest)"
cargo nextest run --workspace --no-fail-fast --failure-output final

step "doc tests"
cargo test --workspace --doc --quiet

step "fuzz smoke (every cargo-fuzz target for a few seconds)"
NOKV_FUZZ_SECS="${NOKV_FUZZ_SECS:-4}" bash "$root/scripts/fuzz-smoke.sh"
