#!/usr/bin/env bash
# A real Apache Kafka (KRaft) on loopback, for shmq-bridge's tests, CI and
# benchmarks: fetched from Maven Central through Maven (pinned), 1 or 3
# nodes in combined broker+controller mode, small heaps.
#
#   scripts/kafka-local.sh fetch                 the jars, into the cache
#   scripts/kafka-local.sh start [--nodes N]     N = 1 or 3; prints the bootstrap servers
#   scripts/kafka-local.sh stop                  ends exactly what start started
#   scripts/kafka-local.sh kill-node I           SIGKILL node I (0-based)
#   scripts/kafka-local.sh restart-node I [J..]  start nodes again (same storage); waits until all serve
#   scripts/kafka-local.sh topics ARGS...        Kafka's topic tool on the cluster
#   scripts/kafka-local.sh tool CLASS ARGS...    any Kafka class, with the classpath
#   scripts/kafka-local.sh bootstrap             the bootstrap servers of the running cluster
#
# Cache: $SHMQ_KAFKA_CACHE (default ~/.cache/shmq-kafka). State (configs,
# logs, data, pids): $SHMQ_KAFKA_STATE (default target/kafka-local).
set -euo pipefail

# The pinned version (the bridge's tests and BENCHMARKS.md ran on it);
# SHMQ_KAFKA_VERSION tries another (4.0.1 to 4.4.0 are on Maven Central).
KAFKA_VERSION="${SHMQ_KAFKA_VERSION:-4.1.1}"
LOG4J_VERSION=2.24.3
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${SHMQ_KAFKA_CACHE:-$HOME/.cache/shmq-kafka}/$KAFKA_VERSION"
STATE="${SHMQ_KAFKA_STATE:-$ROOT/target/kafka-local}"
HEAP="${SHMQ_KAFKA_HEAP:--Xmx320m -Xms320m}"
CLUSTER=kafka-local
NODE_CONFIG=server.properties
# say, die, nodes, node_pid, free_ports, the common parts of start,
# kill_node, restart_nodes, stop_nodes, usage.
# shellcheck source=scripts/lib/local-cluster.sh
source "$ROOT/scripts/lib/local-cluster.sh"

# The pom that names what to fetch: Kafka (broker and tools), their runtime
# dependencies, and log4j2 with its binding for SLF4J 1.x (Kafka's
# slf4j-api is 1.7.x, as in Kafka's own distribution: the slf4j2 binding
# would leave the broker on SLF4J's no-op logger, logging nothing).
pom() {
    cat <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>shmq</groupId>
  <artifactId>kafka-local</artifactId>
  <version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
}

# Idempotent: lib/.complete holds the pom it was fetched with; while it
# matches, nothing runs (no Maven, no network). A changed pom fetches anew
# into lib.tmp and swaps it in whole.
fetch() {
    local want
    want="$(pom)"
    if [ -f "$CACHE/lib/.complete" ] && [ "$(cat "$CACHE/lib/.complete")" = "$want" ]; then
        return
    fi
    command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Kafka"
    command -v java >/dev/null || die "Java 17+ is needed to run Kafka"
    say "fetching Apache Kafka $KAFKA_VERSION through Maven into $CACHE"
    mkdir -p "$CACHE"
    printf '%s\n' "$want" >"$CACHE/pom.xml"
    rm -rf "$CACHE/lib.tmp"
    if ! mvn -B -Dstyle.color=never -f "$CACHE/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$CACHE/lib.tmp" -DincludeScope=runtime >"$CACHE/mvn.log" 2>&1; then
        grep -E 'ERROR|FAIL' "$CACHE/mvn.log" | head -20 >&2
        die "Maven failed (all of its output: $CACHE/mvn.log)"
    fi
    [ -f "$CACHE/lib.tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || die "Maven did not fetch kafka_2.13 $KAFKA_VERSION"
    printf '%s\n' "$want" >"$CACHE/lib.tmp/.complete"
    rm -rf "$CACHE/lib.old"
    [ ! -d "$CACHE/lib" ] || mv "$CACHE/lib" "$CACHE/lib.old"
    mv "$CACHE/lib.tmp" "$CACHE/lib"
    rm -rf "$CACHE/lib.old"
}

classpath() { printf '%s/lib/*' "$CACHE"; }

run_class() {
    java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dlog4j2.configurationFile="$STATE/log4j2-tools.properties" \
        -cp "$(classpath)" "$@"
}

start_node() {
    local dir="$STATE/node$1"
    # shellcheck disable=SC2086
    nohup java $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$STATE/log4j2.properties" -Dkafka.logs.dir="$dir" \
        -cp "$(classpath)" kafka.Kafka "$dir/server.properties" \
        >"$dir/stdout.log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
}

# The end of node I's logs (the JVM's own output, then log4j's, 25 lines
# each), on stderr.
node_log() {
    local f
    for f in "$STATE/node$1/stdout.log" "$STATE/node$1/server.log"; do
        [ -s "$f" ] || continue
        say "--- the end of $f"
        tail -25 "$f" >&2
    done
}

# Every node is a broker the topic tool reaches.
serving() {
    local boot
    boot="$(cat "$STATE/bootstrap")"
    run_class org.apache.kafka.tools.TopicCommand --bootstrap-server "$boot" --list >/dev/null 2>&1 \
        && [ "$(run_class org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$boot" 2>/dev/null | grep -c '(id:')" -ge "$(nodes)" ]
}

wait_serving() { await_serving "${SHMQ_KAFKA_START_TIMEOUT:-120}" 1; }

start() {
    begin_start "$@"
    cat >"$STATE/log4j2.properties" <<'L4J'
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
L4J
    cat >"$STATE/log4j2-tools.properties" <<'L4J'
status = error
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = err
L4J
    local ports=() cports=() all=() voters="" boot="" rf=1 isr=1
    [ "$NODES" -eq 3 ] && { rf=3; isr=2; }
    read -r -a all <<<"$(free_ports $((2 * NODES)))"
    for n in $(seq 0 $((NODES - 1))); do
        ports+=("${all[$((2 * n))]}")
        cports+=("${all[$((2 * n + 1))]}")
        voters+="${voters:+,}$n@127.0.0.1:${cports[$n]}"
        boot+="${boot:+,}127.0.0.1:${ports[$n]}"
    done
    echo "$boot" >"$STATE/bootstrap"
    local cluster
    cluster="$(run_class kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    for n in $(seq 0 $((NODES - 1))); do
        local dir="$STATE/node$n"
        mkdir -p "$dir/data"
        cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:${ports[$n]},CONTROLLER://127.0.0.1:${cports[$n]}
advertised.listeners=PLAINTEXT://127.0.0.1:${ports[$n]}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=3
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=2
background.threads=2
log.segment.bytes=67108864
log.retention.hours=4
PROPS
        run_class kafka.tools.StorageTool format --config "$dir/server.properties" \
            --cluster-id "$cluster" --ignore-formatted >/dev/null
        start_node "$n"
    done
    end_start "$boot"
}

stop() { stop_nodes 30; }

cmd="${1:-}"
shift || true
case "$cmd" in
    fetch) fetch ;;
    start) start "$@" ;;
    stop) stop ;;
    bootstrap) cat "$STATE/bootstrap" ;;
    kill-node) kill_node "$@" ;;
    restart-node) restart_nodes "$@" ;;
    topics) run_class org.apache.kafka.tools.TopicCommand --bootstrap-server "$(cat "$STATE/bootstrap")" "$@" ;;
    tool)
        # Full JIT and a larger heap: the tools measure Kafka's speed.
        java -Xmx1g -Dlog4j2.configurationFile="$STATE/log4j2-tools.properties" \
            -cp "$(classpath)" "$@"
        ;;
    *) usage ;;
esac
