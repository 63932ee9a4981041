#!/usr/bin/env bash
# The README's spill walk-through: the consumer is stopped, the producer
# publishes 50 times what the ring holds (it never blocks: the rest goes to
# segment files on disk), then the consumer starts and gets every message,
# in order. Needs `shmq` on PATH (cargo install --path cli).
set -euo pipefail
export SHMQ_DIR=$(mktemp -d)          # a private place for this walk-through
cd "$SHMQ_DIR"
shmq create orders --slots 1024 --overflow spill --spill-dir "$SHMQ_DIR/spill"
shmq group-create orders billing      # retains from now on, consumer or not
seq 1 51200 | shmq publish orders     # no consumer running: 50,176 go to disk
shmq stat orders | grep -E 'depth|spill'
ls "$SHMQ_DIR/spill"                  # the segment files
shmq consume orders --group billing --count 51200 --timeout 10 > got.txt
seq 1 51200 | cmp - got.txt && echo "billing got 1..51200 in order"
shmq stat orders | grep -E 'depth|spill'   # the spill is empty again
shmq rm orders
rm -rf "$SHMQ_DIR"
