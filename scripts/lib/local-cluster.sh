# Shared by scripts/kafka-local.sh and scripts/nats-local.sh (sourced, not
# run): what a local cluster of N nodes on loopback needs whatever the
# server. The sourcing script sets $CLUSTER (its name: kafka-local), $STATE
# (the state directory: a `nodes` file, node<I>/ for each node) and
# $NODE_CONFIG (the file in node<I>/ that names node I on its command
# line), and defines fetch (the server, into the cache), start_node I
# (starts node I, its pid into node<I>/pid), serving (succeeds once every
# node serves) and node_log I LINES (the end of node I's log, on stderr).

say() { printf '%s: %s\n' "$CLUSTER" "$*" >&2; }
die() { say "$*"; exit 1; }

# The number of nodes of the cluster start made.
nodes() { cat "$STATE/nodes"; }

# The pid of node I if it runs (and is ours: its config on its command line).
node_pid() {
    local f="$STATE/node$1/pid" pid
    [ -f "$f" ] || return 1
    pid="$(cat "$f")"
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$STATE/node$1/$NODE_CONFIG" || return 1
    echo "$pid"
}

# N distinct free loopback ports, below the kernel's ephemeral range: a port
# from that range could be taken by some outgoing connection (the nodes'
# own, to each other) between being chosen and being bound, and again
# before restart-node binds it anew.
free_ports() {
    python3 - "$1" <<'PY'
import random, socket, sys
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
held, ports = [], []
while len(ports) < int(sys.argv[1]):
    port = random.randrange(20000, low if low > 21000 else 32768)
    if port in ports:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        continue
    held.append(s)
    ports.append(port)
print(" ".join(map(str, ports)))
PY
}

# The first half of `start [--nodes N]`: sets NODES (1 or 3), refuses to
# start over a running cluster, fetches the server and clears $STATE for
# a new cluster of NODES nodes.
begin_start() {
    local n
    NODES=1
    while [ $# -gt 0 ]; do
        case "$1" in
            --nodes) NODES="${2:?--nodes N}"; shift 2 ;;
            *) die "start: unknown argument $1" ;;
        esac
    done
    [ "$NODES" = 1 ] || [ "$NODES" = 3 ] || die "--nodes is 1 or 3"
    if [ -f "$STATE/nodes" ]; then
        for n in $(seq 0 $(($(nodes) - 1))); do
            node_pid "$n" >/dev/null && die "a cluster runs already (scripts/$CLUSTER.sh stop)"
        done
    fi
    fetch
    # Cleared on each start, so it has to be ours (or empty).
    if [ -d "$STATE" ] && [ -n "$(ls -A "$STATE")" ] && [ ! -f "$STATE/nodes" ]; then
        die "$STATE is not empty and not a $CLUSTER state directory: not clearing it"
    fi
    rm -rf "$STATE"
    mkdir -p "$STATE"
    echo "$NODES" >"$STATE/nodes"
}

# The end of `start`, once every node was started: waits until they serve
# and prints their address $1 (on stdout, the one thing start prints there).
end_start() {
    say "started $NODES node(s); waiting until they serve"
    wait_serving
    say "serving at $1 (state in $STATE)"
    echo "$1"
}

# Waits until `serving`, for at most $1 seconds, trying every $2; dies when
# a node exits, or at the deadline, with the end of the nodes' logs.
await_serving() {
    local deadline=$((SECONDS + $1)) n
    until serving; do
        for n in $(seq 0 $(($(nodes) - 1))); do
            node_pid "$n" >/dev/null || { node_log "$n" 20; die "node $n exited"; }
        done
        if [ "$SECONDS" -ge "$deadline" ]; then
            for n in $(seq 0 $(($(nodes) - 1))); do node_log "$n" 10; done
            die "the cluster did not serve in $1 s"
        fi
        sleep "$2"
    done
}

# SIGKILLs node I and waits until it is gone.
kill_node() {
    local pid
    pid="$(node_pid "${1:?node}")" || die "node $1 is not running"
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

# Starts nodes I [J...] again (same storage) and waits until all serve.
restart_nodes() {
    [ $# -gt 0 ] || die "restart-node I [J...]"
    local n
    for n in "$@"; do
        node_pid "$n" >/dev/null && die "node $n runs"
    done
    for n in "$@"; do start_node "$n"; done
    wait_serving
}

# Ends exactly the nodes that start started: SIGTERM, then SIGKILL for any
# still running after $1 seconds.
stop_nodes() {
    [ -f "$STATE/nodes" ] || return 0
    local pids=() n pid
    for n in $(seq 0 $(($(nodes) - 1))); do
        if pid="$(node_pid "$n")"; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    local deadline=$((SECONDS + $1))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -f "$STATE"/node*/pid
    say "stopped ${#pids[@]} node(s)"
}

# The script's usage: its opening comment, on stderr; exit 64.
usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 64
}
