#!/usr/bin/env bash
# Runs a command with one core kept busy, as on a server that embeds the
# library: the tests must hold there, not only on an idle machine.
#
#   scripts/hog.sh [--repeat N] [command ...]    default: 1 run of scripts/test.sh
#
# The hog is one busy shell loop at normal priority, started before the
# first run and stopped after the last (also on failure or Ctrl-C). Each run
# is logged to $TMPDIR/liminal-hog.<run>.log; the script stops at the first
# failing run and exits with its status.
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=1
if [ "${1:-}" = --repeat ]; then
    repeat=${2:?--repeat needs a count}
    shift 2
fi
[ "$#" -gt 0 ] || set -- scripts/test.sh

bash -c 'while :; do :; done' &
hog=$!
trap 'kill "$hog" 2>/dev/null || true' EXIT INT TERM

for run in $(seq 1 "$repeat"); do
    log="${TMPDIR:-/tmp}/liminal-hog.$run.log"
    started=$(date +%s)
    if "$@" >"$log" 2>&1; then
        echo "hog run $run/$repeat: passed in $(($(date +%s) - started)) s ($log)"
    else
        status=$?
        echo "hog run $run/$repeat: FAILED with status $status after $(($(date +%s) - started)) s; last lines of $log:" >&2
        tail -30 "$log" >&2
        exit "$status"
    fi
done
echo "hog: $repeat of $repeat runs passed with one core busy"
