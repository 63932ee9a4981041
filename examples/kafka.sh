#!/usr/bin/env bash
# The README's "Past one host" walk-through: a queue out to Kafka, kcat
# reads it, and Kafka back into another queue. Uses the cluster named by
# $SHMQ_KAFKA_BOOTSTRAP, or starts a local one (scripts/kafka-local.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KAFKA_LOCAL="$ROOT/scripts/kafka-local.sh"
# walk_through: the cluster, a fresh SHMQ_DIR, both cleaned up on exit.
# shellcheck source=scripts/lib/walk-through.sh
source "$ROOT/scripts/lib/walk-through.sh"
walk_through "$KAFKA_LOCAL" SHMQ_KAFKA_BOOTSTRAP

# --- as in the README ---
BROKERS="$SHMQ_KAFKA_BOOTSTRAP"
TOPIC="orders-$$"
bash "$KAFKA_LOCAL" topics --create --topic "$TOPIC" --partitions 3 \
    --replication-factor "${SHMQ_KAFKA_REPLICAS:-1}"
shmq create orders --slots 4096
shmq group-create orders to-kafka
printf 'customer-7::paid\ncustomer-9::paid\ncustomer-7::shipped\n' |
    shmq publish orders --key-separator :: --header source=shop
shmq-bridge to-kafka --queue orders --group to-kafka --brokers "$BROKERS" --topic "$TOPIC" --exit-idle 3
kcat -C -b "$BROKERS" -t "$TOPIC" -e -q -f '%k %s %h\n' | sort | tee kcat.txt
shmq create mirror --slots 4096 --dedup-window 100000
shmq group-create mirror audit
shmq-bridge from-kafka --brokers "$BROKERS" --topic "$TOPIC" --kafka-group mirror --queue mirror --exit-idle 5
shmq consume mirror --group audit --count 3 --show-headers | tee mirror.txt
# --- end ---

grep -q '^customer-7 paid source=shop,shmq-seq=0,' kcat.txt
grep -q '^customer-7 shipped source=shop,shmq-seq=2,' kcat.txt
[ "$(grep -c . kcat.txt)" -eq 3 ]
grep -q 'paid' mirror.txt && grep -q 'shipped' mirror.txt
echo "examples/kafka.sh: orders went out to Kafka and came back"
