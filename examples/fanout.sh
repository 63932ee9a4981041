#!/usr/bin/env bash
# The README's CLI walk-through: two groups each receive 1..100000 in
# order while the publisher blocks whenever the 1024-slot ring is full.
# Needs `shmq` on PATH (cargo install --path cli).
set -euo pipefail
export SHMQ_DIR=$(mktemp -d)          # a private place for this walk-through
cd "$SHMQ_DIR"
shmq create q --slots 1024
shmq group-create q a
shmq group-create q b
shmq consume q --group a --count 100000 --timeout 60 > a.txt &
shmq consume q --group b --count 100000 --timeout 60 > b.txt &
seq 1 100000 | shmq publish q         # blocks whenever the ring is full
wait
seq 1 100000 | cmp - a.txt && seq 1 100000 | cmp - b.txt && echo "both groups got 1..100000 in order"
shmq stat q
shmq rm q
rm -rf "$SHMQ_DIR"
