# Shared by examples/kafka.sh and examples/nats.sh (sourced, not run): what
# a walk-through of the README runs in, around the part it shows.
#
#   walk_through SCRIPT VAR
#
# uses the cluster whose address is in $VAR, or starts one on loopback
# with `bash SCRIPT start` (a scripts/*-local.sh) into VAR and stops it on
# the way out; then moves into a fresh $SHMQ_DIR (exported), removed on
# the way out.

walk_through() {
    WALK_CLUSTER="$1"
    WALK_STARTED=""
    if [ -z "${!2:-}" ]; then
        local address
        address="$(bash "$WALK_CLUSTER" start)"
        printf -v "$2" '%s' "$address"
        WALK_STARTED=1
    fi
    export SHMQ_DIR
    SHMQ_DIR="$(mktemp -d)"
    trap walk_through_cleanup EXIT
    cd "$SHMQ_DIR"
}

walk_through_cleanup() {
    cd /
    rm -rf "$SHMQ_DIR"
    [ -z "$WALK_STARTED" ] || bash "$WALK_CLUSTER" stop
}
