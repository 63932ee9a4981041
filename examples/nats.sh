#!/usr/bin/env bash
# The README's "Past one host" NATS walk-through: a queue out to a
# JetStream stream, natscli reads it, and the stream back into another
# queue. Uses the servers named by $SHMQ_NATS_SERVERS, or starts a local
# one (scripts/nats-local.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NATS_LOCAL="$ROOT/scripts/nats-local.sh"
# walk_through: the cluster, a fresh SHMQ_DIR, both cleaned up on exit.
# shellcheck source=scripts/lib/walk-through.sh
source "$ROOT/scripts/lib/walk-through.sh"
walk_through "$NATS_LOCAL" SHMQ_NATS_SERVERS

# --- as in the README ---
SERVERS="$SHMQ_NATS_SERVERS"
STREAM="ORDERS_$$"
shmq create orders --slots 4096
shmq group-create orders to-nats
printf 'customer-7::paid\ncustomer-9::paid\ncustomer-7::shipped\n' |
    shmq publish orders --key-separator :: --header source=shop
shmq-bridge to-nats --queue orders --group to-nats --server "$SERVERS" \
    --subject "orders.$$" --stream "$STREAM" --replicas "${SHMQ_NATS_REPLICAS:-1}" --exit-idle 3
bash "$NATS_LOCAL" cli stream get "$STREAM" 3 | tee nats.txt
shmq create mirror --slots 4096 --dedup-window 100000
shmq group-create mirror audit
shmq-bridge from-nats --server "$SERVERS" --stream "$STREAM" --durable mirror --queue mirror --exit-idle 3
shmq consume mirror --group audit --count 3 --show-headers | tee mirror.txt
# --- end ---

grep -q 'shmq-ordering-key: customer-7' nats.txt && grep -q 'shipped' nats.txt
grep -q 'Nats-Msg-Id: shmq:' nats.txt
grep -q 'paid' mirror.txt && grep -q 'shipped' mirror.txt
echo "examples/nats.sh: orders went out to JetStream and came back"
