#!/usr/bin/env bash
# Clean release builds of this crate with no engine, with redb only, with
# fjall only (rounds of each, interleaved), and the size of the minimal
# binary (src/bin/minimal.rs) each way, as built and stripped.
#   build_cost.sh [rounds]
set -euo pipefail
rounds=${1:-3}
here=$(cd "$(dirname "$0")" && pwd)
for round in $(seq 1 "$rounds"); do
  for engine in none redb fjall; do
    target=/tmp/storebench-build-$engine
    rm -rf "$target"
    features=()
    [ "$engine" != none ] && features=(--features "$engine")
    load=$(cut -d' ' -f1 /proc/loadavg)
    start=$(date +%s.%N)
    (cd "$here" && CARGO_TARGET_DIR=$target cargo build --release --offline "${features[@]}" 2>/dev/null)
    end=$(date +%s.%N)
    crates=$(cd "$here" && cargo tree --offline -e normal,build --prefix none "${features[@]}" 2>/dev/null | sed 's/ (\*)//; s/ (proc-macro)//' | sort -u | wc -l)
    bin=$target/release/minimal
    strip -o "$target/minimal.stripped" "$bin"
    echo "BUILD round=$round engine=$engine load=$load secs=$(echo "$end - $start" | bc) crates=$crates minimal_bytes=$(stat -c %s "$bin") minimal_stripped_bytes=$(stat -c %s "$target/minimal.stripped")"
    rm -rf "$target"
  done
done
