#!/usr/bin/env bash
# shmq -> Kafka -> shmq end-to-end latency beside Kafka's own EndToEndLatency
# tool, on the same cluster, in one run (BENCHMARKS.md):
#
#   scripts/bridge-latency.sh BOOTSTRAP [COUNT] [SIZE]
#
# BOOTSTRAP is a running cluster (scripts/kafka-local.sh start --nodes 3).
# Both measure one message at a time, acks=all, linger.ms=0 on both
# producers, topics of 1 partition with the cluster's replication factor.
# Needs target/release/shmq, target/release/shmq-bridge and the
# e2e_latency example (cargo build --release -p shmq-cli -p shmq-bridge
# --example e2e_latency).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
B="${1:?usage: bridge-latency.sh BOOTSTRAP [COUNT] [SIZE]}"
COUNT="${2:-2000}"
SIZE="${3:-1024}"
RF="${SHMQ_KAFKA_REPLICAS:-3}"
BIN="$ROOT/target/release"
WORK="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

run_id="lat-$$-$(date +%s)"
topics() { bash "$ROOT/scripts/kafka-local.sh" topics "$@"; }
topics --create --topic "$run_id-k" --partitions 1 --replication-factor "$RF" >/dev/null
topics --create --topic "$run_id-s" --partitions 1 --replication-factor "$RF" >/dev/null

echo "== Kafka's EndToEndLatency ($COUNT messages of $SIZE B, acks=all, linger.ms=0)"
printf 'linger.ms=0\n' >"$WORK/producer.properties"
bash "$ROOT/scripts/kafka-local.sh" tool org.apache.kafka.tools.EndToEndLatency \
    "$B" "$run_id-k" "$COUNT" all "$SIZE" "$WORK/producer.properties" 2>&1 |
    grep -E "Avg latency|Percentiles" || true

echo "== shmq -> to-kafka -> topic -> from-kafka -> shmq ($COUNT messages of $SIZE B)"
"$BIN/shmq" create a --dir "$WORK" --slots 4096 --slot-size $((SIZE + 512)) >/dev/null 2>&1
"$BIN/shmq" create b --dir "$WORK" --slots 4096 --slot-size $((SIZE + 512)) >/dev/null 2>&1
"$BIN/shmq" group-create a bridge --dir "$WORK" >/dev/null 2>&1
"$BIN/shmq" group-create b check --dir "$WORK" >/dev/null 2>&1
"$BIN/shmq-bridge" to-kafka --dir "$WORK" --queue a --group bridge --brokers "$B" \
    --topic "$run_id-s" -X linger.ms=0 --stats-interval 3600 2>"$WORK/to.log" &
pids+=($!)
"$BIN/shmq-bridge" from-kafka --dir "$WORK" --queue b --kafka-group "$run_id-g" --brokers "$B" \
    --topic "$run_id-s" -X fetch.wait.max.ms=100 --stats-interval 3600 2>"$WORK/from.log" &
pids+=($!)
"$BIN/examples/e2e_latency" --dir "$WORK" --from a --to b --group check \
    --count "$COUNT" --size "$SIZE"
