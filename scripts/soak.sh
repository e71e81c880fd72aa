#!/usr/bin/env bash
# Soak: `scripts/soak.sh [messages] [report]` (default 10,000,000 messages,
# report SOAK.md), then the crash-churn workload at full size (20,000
# rounds of each failure kind; its table is appended to the report).
# CI runs it with a small message count.
set -euo pipefail
cd "$(dirname "$0")/.."
report="${2:-SOAK.md}"
cargo run --release --features remote --quiet --example soak -- "${1:-10000000}" "$report"
{
    echo
    echo "## Crash churn (\`cargo run --release --example churn -- 20000\`)"
    echo
    cargo run --release --features remote --quiet --example churn -- 20000
} >> "$report"
