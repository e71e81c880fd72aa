#!/usr/bin/env bash
# Durable groups beside RabbitMQ and NATS JetStream, in one session on one
# machine. Not run in CI. See bench/durable/README.md for the method.
#
#   bench/durable/run.sh                 3 rounds + 1 traced round, prints the table
#   ROUNDS=1 N=20000 LAT_N=300 bench/durable/run.sh     a quick look
#
# It installs what is missing (apt: rabbitmq-server nats-server strace; a venv
# in bench/durable/.venv with pika and nats-py), builds examples/durable_bench,
# starts its own broker instances on non-default ports with their data under
# $WORK (default /var/tmp/liminal-peers), runs every system ROUNDS times
# (one system at a time, the other brokers stopped), then once more with each
# broker started under strace (fsync/fdatasync only, seccomp-filtered) to count
# its fsyncs, stops what it started and prints the table. Raw output goes to
# bench/durable/results/. It deletes nothing outside $WORK, $OURS_DIR and
# results/.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=${WORK:-/var/tmp/liminal-peers}
OURS_DIR=${OURS_DIR:-/var/tmp/liminal-durable-bench}
ROUNDS=${ROUNDS:-3}
N=${N:-200000}
LAT_N=${LAT_N:-2000}
RESULTS=$HERE/results
PY=$HERE/.venv/bin/python

RABBIT_NODE=liminal-bench@localhost
RABBIT_PORT=5679
NATS_PORT=4229

# --- what is missing ----------------------------------------------------------
need=()
command -v rabbitmq-server >/dev/null 2>&1 || need+=(rabbitmq-server)
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
command -v strace >/dev/null 2>&1 || need+=(strace)
if [ "${#need[@]}" -gt 0 ]; then
    echo "durable bench: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need[@]}"
fi
if ! "$PY" -c 'import pika, nats' 2>/dev/null; then
    python3 -m venv "$HERE/.venv"
    "$HERE/.venv/bin/pip" install -q pika nats-py
fi
(cd "$ROOT" && cargo build --release --example durable_bench --quiet)
OURS="$("$ROOT/scripts/cargo-target-dir.sh")/release/examples/durable_bench"

mkdir -p "$WORK" "$RESULTS"
rm -rf "$RESULTS/latest" && mkdir -p "$RESULTS/latest"
OUT=$RESULTS/latest
PEERS=$OUT/peers.jsonl

# --- brokers --------------------------------------------------------------------
epmd_was_running=no
pgrep -x epmd >/dev/null && epmd_was_running=yes
RABBIT_PID=
NATS_PID=

rabbit_env() {
    export RABBITMQ_NODENAME=$RABBIT_NODE RABBITMQ_NODE_PORT=$RABBIT_PORT \
        RABBITMQ_DIST_PORT=$((RABBIT_PORT + 20000)) \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_MNESIA_BASE=$WORK/rabbitmq/mnesia RABBITMQ_LOG_BASE=$WORK/rabbitmq/log
}

start_rabbit() { # [strace log]
    rm -rf "$WORK/rabbitmq"
    mkdir -p "$WORK/rabbitmq"
    # Packaged defaults (no config file); only node name, port and data dir differ.
    chown -R rabbitmq:rabbitmq "$WORK/rabbitmq"
    (
        rabbit_env
        cd /var/lib/rabbitmq
        if [ -n "${1:-}" ]; then
            exec strace -f --seccomp-bpf -ttt -e trace=fsync,fdatasync,sync_file_range,syncfs \
                -o "$1" rabbitmq-server >/dev/null 2>&1
        else
            exec rabbitmq-server >/dev/null 2>&1
        fi
    ) &
    RABBIT_PID=$!
    # await_startup needs the node to be reachable already: poll until it is.
    for _ in $(seq 120); do
        (rabbit_env; rabbitmqctl -q -n $RABBIT_NODE await_startup --timeout 60 >/dev/null 2>&1) && return 0
        sleep 1
    done
    echo "rabbitmq-server did not start (logs in $WORK/rabbitmq/log)" >&2
    return 1
}

stop_rabbit() {
    [ -n "$RABBIT_PID" ] || return 0
    (rabbit_env; rabbitmqctl -n $RABBIT_NODE shutdown >/dev/null 2>&1) || kill "$RABBIT_PID" 2>/dev/null || true
    wait "$RABBIT_PID" 2>/dev/null || true
    RABBIT_PID=
}

start_nats() { # [strace log]
    rm -rf "$WORK/nats"
    mkdir -p "$WORK/nats"
    local cmd=(nats-server -js -sd "$WORK/nats/store" -a 127.0.0.1 -p $NATS_PORT -l "$WORK/nats/server.log")
    if [ -n "${1:-}" ]; then
        strace -f --seccomp-bpf -ttt -e trace=fsync,fdatasync,sync_file_range,syncfs -o "$1" "${cmd[@]}" &
    else
        "${cmd[@]}" &
    fi
    NATS_PID=$!
    for _ in $(seq 50); do
        (echo >/dev/tcp/127.0.0.1/$NATS_PORT) 2>/dev/null && return 0
        sleep 0.2
    done
    echo "nats-server did not start" >&2
    return 1
}

stop_nats() {
    [ -n "$NATS_PID" ] || return 0
    # Under strace, $NATS_PID is strace: stop its child (the server), by pid.
    local child
    child=$(pgrep -P "$NATS_PID" || true)
    kill -TERM ${child:-$NATS_PID} 2>/dev/null || true
    wait "$NATS_PID" 2>/dev/null || true
    NATS_PID=
}

cleanup() {
    stop_rabbit
    stop_nats
    [ "$epmd_was_running" = yes ] || epmd -kill >/dev/null 2>&1 || true
}
trap cleanup EXIT

rabbit() { "$PY" "$HERE/rabbit_bench.py" --port $RABBIT_PORT "$@" | tee -a "$PEERS"; }
natsb() { "$PY" "$HERE/nats_bench.py" --url nats://127.0.0.1:$NATS_PORT "$@" | tee -a "$PEERS"; }

rabbit_round() { # tag
    rabbit latency --queue-type classic -n "$LAT_N" --tag "$1"
    rabbit pipelined --queue-type classic -n "$N" --tag "$1"
    rabbit backlog --queue-type classic -n "$N" --tag "$1"
    rabbit pipelined --queue-type transient -n "$N" --tag "$1"
    rabbit latency --queue-type classic-v1 -n "$LAT_N" --tag "$1"
    rabbit pipelined --queue-type classic-v1 -n "$N" --tag "$1"
    rabbit latency --queue-type quorum -n "$LAT_N" --tag "$1"
    rabbit pipelined --queue-type quorum -n "$N" --tag "$1"
    rabbit backlog --queue-type quorum -n "$N" --tag "$1"
}

nats_round() { # tag
    natsb latency --storage file -n "$LAT_N" --tag "$1"
    natsb pipelined --storage file -n "$N" --tag "$1"
    natsb backlog --storage file -n "$N" --tag "$1"
    natsb pipelined --storage memory -n "$N" --tag "$1"
}

{
    echo "date: $(date -u +%FT%TZ)"
    echo "kernel: $(uname -r); cpus: $(nproc)"
    echo "rabbitmq-server: $(dpkg-query -W -f '${Version}' rabbitmq-server)"
    echo "erlang-base: $(dpkg-query -W -f '${Version}' erlang-base)"
    echo "nats-server: $(dpkg-query -W -f '${Version}' nats-server)"
    echo "pika: $("$PY" -c 'import pika; print(pika.__version__)')"
    echo "nats-py: $("$PY" -c 'import nats.aio.client as c; print(c.__version__)')"
    echo "python: $("$PY" -c 'import sys; print(sys.version.split()[0])')"
    echo "liminal: $(git -C "$ROOT" rev-parse --short HEAD)"
    echo "filesystems:"
    mkdir -p "$OURS_DIR"
    df -hT "$OURS_DIR" "$WORK" | sed 's/^/  /'
} | tee "$OUT/env.txt"

for round in $(seq "$ROUNDS"); do
    echo "== round $round, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.txt"
    echo "ours round $round: load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/load.txt"
    "$OURS" "$OURS_DIR" "$N" | tee "$OUT/ours-$round.txt"
    echo "rabbitmq round $round: load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/load.txt"
    start_rabbit
    rabbit_round "round$round"
    stop_rabbit
    echo "nats round $round: load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/load.txt"
    start_nats
    nats_round "round$round"
    stop_nats
done

echo "== traced round (fsync counts), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.txt"
start_rabbit "$OUT/rabbitmq.strace"
rabbit_round strace
stop_rabbit
start_nats "$OUT/nats.strace"
nats_round strace
stop_nats

"$PY" "$HERE/report.py" "$OUT" | tee "$OUT/table.md"
