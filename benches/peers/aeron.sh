#!/usr/bin/env bash
# Aeron IPC beside shmq, single messages of 32 B, 64 B and 1 KiB, in one
# session (issue #36): Aeron's own EmbeddedIpcThroughput sample (a
# publisher and a subscriber thread on one IPC stream of an embedded media
# driver, from the pinned aeron-all jar, fetched through Maven) and
# `shmq bench throughput` (a producer process and a consumer process),
# alternating, --runs times each.
#
#   bash benches/peers/aeron.sh [--runs 3] [--seconds 8] [--sizes "32 64 1024"]
#
# Aeron's figure for a run is the median of its per-second reports after
# the first two (warm-up); shmq's is its median over --rounds 3.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
runs=3 seconds=8 sizes="32 64 1024"
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        --sizes) sizes="$2"; shift 2 ;;
        *) echo "usage: $0 [--runs N] [--seconds S] [--sizes \"32 64 1024\"]" >&2; exit 64 ;;
    esac
done

lib="$here/aeron/lib"
if ! ls "$lib"/aeron-all-*.jar >/dev/null 2>&1; then
    (cd "$here/aeron" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib)
fi
jar="$(ls "$lib"/aeron-all-*.jar | head -1)"
shmq="$root/target/release/shmq"
[ -x "$shmq" ] || cargo build --release -p shmq-cli --manifest-path "$root/Cargo.toml"

# Aeron's messages/s at payload size $1: the median of the per-second
# reports, the first two left out.
aeron() {
    timeout "$seconds" java -cp "$jar" \
        --add-opens java.base/jdk.internal.misc=ALL-UNNAMED \
        --add-opens java.base/sun.nio.ch=ALL-UNNAMED \
        -Daeron.sample.messageLength="$1" \
        -Daeron.dir="$(mktemp -d /dev/shm/shmq-aeron-XXXXXX)" \
        io.aeron.samples.EmbeddedIpcThroughput 2>/dev/null |
        python3 -c '
import re, statistics, sys
rates = []
for line in sys.stdin:
    m = re.match(r"Duration (\d+)ms - ([\d,]+) messages", line)
    if m:
        rates.append(int(m.group(2).replace(",", "")) * 1000 / int(m.group(1)))
print(statistics.median(rates[2:]) if len(rates) > 2 else 0)' || true
}

# shmq's messages/s at payload size $1.
shmq_tp() {
    "$shmq" bench throughput --size "$1" --rounds 3 --json |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["msgs_per_s"])'
}

echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1); aeron: $(basename "$jar")"
printf '%-6s %-4s %16s %16s %8s\n' size run "aeron msgs/s" "shmq msgs/s" "shmq/aeron"
for size in $sizes; do
    for run in $(seq 1 "$runs"); do
        a="$(aeron "$size")"
        s="$(shmq_tp "$size")"
        python3 -c "import sys; a, s = float('$a'), float('$s'); print('%-6s %-4s %16.0f %16.0f %8.2f' % ('$size', '$run', a, s, s / a if a else 0))"
    done
done
# Leave no Aeron directory behind.
rm -rf /dev/shm/shmq-aeron-* 2>/dev/null || true
