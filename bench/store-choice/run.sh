#!/usr/bin/env bash
# Rounds of every measure for every engine, interleaved, plus liminal's own
# examples/durable_bench in the same round. Output: one log with RESULT
# lines tagged by round and engine; summarize.py reduces it.
#   run.sh [rounds] [store-dir] [liminal-repo]
# Before each measure it waits (up to 10 minutes) for the machine to have
# had no compiler or linker running for 5 s: another build's writes make
# every fdatasync wait on them (ext4 commits its journal for everyone), so
# a measure taken beside a build measures the build. Each RESULT line says
# the load average when it started and whether the wait ended quiet.
set -euo pipefail
rounds=${1:-3}
dir=${2:-/var/tmp/sc}
liminal=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
target=${CARGO_TARGET_DIR:-$here/target}
(cd "$here" && CARGO_TARGET_DIR=$target cargo build --release --features redb,fjall --bin storebench)
bin=$target/release/storebench
mkdir -p "$dir"
df -h "$dir"

busy() {
  local p
  for p in rustc cargo cc cc1 cc1plus ld ld.lld ld.gold; do
    pgrep -x "$p" >/dev/null && return 0
  done
  return 1
}
quiet() {
  local deadline=$((SECONDS + 600)) calm=0
  while [ $SECONDS -lt $deadline ]; do
    if busy; then calm=0; else calm=$((calm + 1)); fi
    [ $calm -ge 5 ] && { echo quiet; return; }
    sleep 1
  done
  echo busy
}
tag() { echo "gate=$(quiet) load=$(cut -d' ' -f1 /proc/loadavg)"; }

for round in $(seq 1 "$rounds"); do
  echo "ROUND $round load $(cut -d' ' -f1-3 /proc/loadavg) $(date +%T)"
  for engine in file redb fjall; do
    for test in w1 w2raw w2batch w2group recovery space churn; do
      case "$engine:$test" in file:space|file:churn) continue;; esac
      t=$(tag)
      out=$("$bin" "$engine" "$test" "$dir/$engine")
      echo "$out" | sed "s/^RESULT /RESULT round=$round engine=$engine $t test=/"
      rm -rf "$dir/$engine"
    done
  done
  if [ -n "$liminal" ]; then
    echo "LIMINAL round=$round $(tag) $(date +%T)"
    "$liminal/target/release/examples/durable_bench" "$dir/liminal" 200000 | sed "s/^/LIMINAL round=$round: /"
    rm -rf "$dir/liminal"
  fi
  echo "END ROUND $round load $(cut -d' ' -f1-3 /proc/loadavg) $(date +%T)"
done
rm -rf "$dir"
