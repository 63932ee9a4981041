#!/usr/bin/env bash
# The README's operating walk-through: list the queues, look at messages
# without a group, and serve every queue's metrics for Prometheus.
# Needs `shmq` and curl on PATH.
set -euo pipefail
export SHMQ_DIR=$(mktemp -d)          # a private place for this walk-through
cd "$SHMQ_DIR"
shmq create orders --slots 1024
shmq group-create orders billing
printf 'order-1\norder-2\norder-3\n' | shmq publish orders --correlation-id 7
shmq ls                               # every queue here: size, depth, groups, worst lag, DLQ, spill
shmq peek orders --last 2 --show-headers  # the newest two, with metadata; no cursor moves
shmq exporter --listen 127.0.0.1:9464 > exporter.log &
trap 'kill %1; cd /; rm -rf "$SHMQ_DIR"' EXIT
for _ in $(seq 50); do grep -q serving exporter.log && break; sleep 0.1; done
curl -s http://127.0.0.1:9464/metrics | grep -E '^shmq_(depth|group_lag)'
