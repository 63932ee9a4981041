# Shared by scripts/kafka-local.sh and scripts/nats-local.sh (sourced, not
# run): what a local cluster of N nodes on loopback needs whatever the
# server. The sourcing script defines $STATE (with a `nodes` file), say and
# node_pid I (the pid of node I if it runs and is ours).

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

# Ends exactly the nodes that start started: SIGTERM, then SIGKILL for any
# still running after $1 seconds.
stop_nodes() {
    [ -f "$STATE/nodes" ] || return 0
    local pids=() n pid
    for n in $(seq 0 $(($(cat "$STATE/nodes") - 1))); do
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
