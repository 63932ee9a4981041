#!/usr/bin/env bash
# shmq-bridge to-nats / from-nats beside natscli's `nats bench` on the
# cluster scripts/nats-local.sh runs, round by round (BENCHMARKS.md):
#   scripts/nats-bench.sh [ROUNDS]      (default 3; needs a release build:
#   cargo build --release -p shmq-cli -p shmq-bridge)
# Each round prints the benchmark's rate, the bridge's rate (from its
# --stats-json lines: first message to the 100,000th) and their ratio.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
N=(bash "$ROOT/scripts/nats-local.sh" cli)
S="$(bash "$ROOT/scripts/nats-local.sh" servers)"
export PATH="$ROOT/target/release:$PATH"
export SHMQ_DIR; SHMQ_DIR="$(mktemp -d)"
trap 'rm -rf "$SHMQ_DIR"' EXIT
MSGS=100000
rate() { # the bridge's msgs/s from its stats lines in $1
    python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
a = next(r for r in rows if r["moved"] > 0)
b = next(r for r in rows if r["moved"] >= int(sys.argv[2]))
print(round((b["moved"] - a["moved"]) / (b["elapsed_s"] - a["elapsed_s"])))' "$1" "$MSGS"
}
bench_rate() { grep -o '[0-9,]* msgs/sec' | head -1 | tr -d ', msgs/ec'; }
for r in $(seq 1 "${1:-3}"); do
    "${N[@]}" stream rm -f BENCHN >/dev/null 2>&1 || true
    "${N[@]}" stream rm -f BENCHTO >/dev/null 2>&1 || true
    "${N[@]}" stream add BENCHN --subjects benchn --replicas 3 --storage file --max-bytes 400MB --defaults >/dev/null
    pub=$("${N[@]}" bench js pub async benchn --stream BENCHN --msgs $MSGS --size 1024 --batch 500 --purge --no-progress 2>&1 | bench_rate)
    shmq create out --slots 131072 --slot-size 1280 >/dev/null 2>&1 && shmq group-create out bridge >/dev/null 2>&1
    shmq publish out --count $MSGS --size 1024 >/dev/null 2>&1
    shmq-bridge to-nats --queue out --group bridge --server "$S" --subject benchto --stream BENCHTO \
        --replicas 3 --exit-idle 2 --stats-json --stats-interval 0.1 2>/dev/null >"$SHMQ_DIR/to.json"
    to=$(rate "$SHMQ_DIR/to.json")
    shmq rm out >/dev/null 2>&1
    con=$("${N[@]}" bench js consume --stream BENCHN --msgs $MSGS --size 1024 --batch 500 --acks explicit --no-progress 2>&1 | bench_rate)
    shmq create in --slots 16384 --slot-size 1536 --dedup-window $MSGS >/dev/null 2>&1 && shmq group-create in g >/dev/null 2>&1
    shmq consume in --group g >/dev/null & reader=$!
    shmq-bridge from-nats --queue in --server "$S" --stream BENCHN --durable "br$r" --exit-idle 2 \
        --stats-json --stats-interval 0.1 2>/dev/null >"$SHMQ_DIR/from.json"
    kill "$reader"; wait "$reader" 2>/dev/null || true
    from=$(rate "$SHMQ_DIR/from.json")
    shmq rm in >/dev/null 2>&1
    python3 -c "print(f'round $r: js pub async {$pub:,} to-nats {$to:,} ({$to/$pub:.2f}x); js consume {$con:,} from-nats {$from:,} ({$from/$con:.2f}x)')"
done
