#!/usr/bin/env bash
# The README's at-least-once walk-through: two competing workers with
# manual acks; a poison job lands in the dead-letter queue; it is listed,
# redriven to its group, consumed, and the DLQ is empty again.
# Run from the repository root with `shmq` on PATH.
set -euo pipefail
export SHMQ_DIR=$(mktemp -d)
cargo run --release -q -p shmq --example worker
shmq dlq jobs list                    # the poison job, its group, attempts and reason
shmq dlq jobs redrive                 # back to group "work", and only to it
shmq consume jobs --group work --ack manual --count 1 --timeout 5
shmq dlq jobs list
shmq stat jobs
rm -rf "$SHMQ_DIR"
