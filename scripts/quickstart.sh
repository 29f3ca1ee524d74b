#!/usr/bin/env bash
# NoKV's main job on the embedded default: build `nokv-fs`, create a
# volume (metadata in holt, blocks in a local directory; no server, no
# S3, no root), then publish, list, read, move and remove files.
#
# The volume lives in $NOKV_HOME (default: a fresh temp dir, printed).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p nokv-cli
NOKV=("$PWD/target/release/nokv-fs")
export NOKV_HOME="${NOKV_HOME:-$(mktemp -d /tmp/nokv-quickstart.XXXXXX)/volume}"
work="$(mktemp -d /tmp/nokv-quickstart-data.XXXXXX)"
trap 'rm -rf "$work"' EXIT

run() { printf '\n$ nokv-fs %s\n' "$*"; "${NOKV[@]}" "$@"; }

run init
head -c $((24 * 1024 * 1024)) /dev/urandom > "$work/model.safetensors"
run mkdir -p /runs/exp1
run put /runs/exp1/step-100.ckpt "$work/model.safetensors"
# a new checkpoint that appends 1 MiB: unchanged blocks are reused
head -c $((1024 * 1024)) /dev/urandom >> "$work/model.safetensors"
run put /runs/exp1/step-100.ckpt "$work/model.safetensors" --if-generation 1
echo "loss=0.42" | "${NOKV[@]}" put /runs/exp1/metrics.txt - && echo "(stdin published)"
run ls -l /runs/exp1
run cat /runs/exp1/metrics.txt
run stat /runs/exp1/step-100.ckpt
run get /runs/exp1/step-100.ckpt "$work/restored.bin"
cmp "$work/model.safetensors" "$work/restored.bin" && echo "restored bytes are identical"
# pin this version, then change the live file: the snapshot keeps the old bytes
run snapshot create /runs/exp1 --name exp1-v1
echo "loss=0.40" | "${NOKV[@]}" put /runs/exp1/metrics.txt - >/dev/null
run cat --snapshot exp1-v1 /metrics.txt
run cat /runs/exp1/metrics.txt
run mv /runs/exp1 /runs/exp1-final
run ln -s /runs/exp1-final/step-100.ckpt /latest
run ls -l /
run watch / --from 0 --no-follow
run rm -r /runs
run rm /latest
run gc
run snapshot list
run snapshot retire exp1-v1
run gc
run fsck
run status
printf '\nvolume kept at %s\n' "$NOKV_HOME"
