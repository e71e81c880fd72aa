#!/usr/bin/env bash
# Soak: `scripts/soak.sh [messages] [report] [remote messages]` (defaults
# 10,000,000 messages, SOAK.md, 1,000,000 remote messages): the in-process
# soak, the crash-churn workload at full size (20,000 rounds of each failure
# kind), and the remote soak (4 worker processes over Zenoh, killed and
# restarted at random); each appends its table to the report. CI runs it
# with small counts.
set -euo pipefail
cd "$(dirname "$0")/.."
report="${2:-SOAK.md}"
# The same features as the CMake build (remote on), so nothing rebuilds.
cargo run --release --features remote --quiet --example soak -- "${1:-10000000}" "$report"
{
    echo
    echo "## Crash churn (\`cargo run --release --example churn -- 20000\`)"
    echo
    cargo run --release --features remote --quiet --example churn -- 20000
} >> "$report"
cargo run --release --features remote --quiet --example remote_bench -- \
    soak "${3:-1000000}" "$report" > /dev/null
