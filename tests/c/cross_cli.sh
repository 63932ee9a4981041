#!/usr/bin/env bash
# C <-> Rust through one queue, with the shmq CLI as the Rust side:
#   a C producer feeds `shmq consume`, and `shmq publish` feeds a C consumer.
# Usage: tests/c/cross_cli.sh SHMQ_BINARY CROSS_BINARY
set -euo pipefail
shmq=$1
cross=$2
dir=$(mktemp -d /tmp/shmq-cross-XXXXXX)
trap 'rm -rf "$dir"' EXIT
n=2000
name="cross-$$"

# C producer -> Rust consumer (the CLI), running at the same time.
"$shmq" --dir "$dir" create "$name" --slots 256 --slot-size 64
"$shmq" --dir "$dir" group-create "$name" rust --start earliest
timeout 60 "$shmq" --dir "$dir" consume "$name" --group rust --count "$n" --timeout 30 >"$dir/got1" &
consumer=$!
timeout 60 "$cross" produce "$dir" "$name" "$n"
wait "$consumer"
seq 0 $((n - 1)) | sed 's/^/c-msg-/' >"$dir/want1"
cmp "$dir/want1" "$dir/got1"
echo "C producer -> shmq consume: $n messages in order"

# Rust producer (the CLI) -> C consumer. Group rust is done: delete it, or
# it would hold the ring once it is full (nothing is dropped for it).
"$shmq" --dir "$dir" group-delete "$name" rust
"$shmq" --dir "$dir" group-create "$name" c --start latest
timeout 60 "$cross" consume "$dir" "$name" c "$n" >"$dir/got2" &
consumer=$!
seq 0 $((n - 1)) | sed 's/^/cli-msg-/' >"$dir/want2"
timeout 60 "$shmq" --dir "$dir" publish "$name" <"$dir/want2"
wait "$consumer"
cmp "$dir/want2" "$dir/got2"
echo "shmq publish -> C consumer: $n messages in order"
