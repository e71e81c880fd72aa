#!/usr/bin/env bash
# Soak: `scripts/soak.sh [messages] [report] [remote messages] [ordered
# messages]` (defaults 10,000,000 messages, SOAK.md, 1,000,000 remote
# messages, 1,000,000 ordered messages): the in-process soak, the
# crash-churn workload at full size (20,000 rounds of each failure kind),
# the remote soak (4 worker processes over Zenoh, killed and restarted at
# random), and ordered keys under chaos with the checker (10,000 keys);
# each appends its result to the report. CI runs it with small counts.
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
ordered="${4:-1000000}"
{
    echo
    echo "## Ordered keys under chaos (\`LIMINAL_ORDERING_CHAOS=$ordered,10000 cargo test --release --test ordering_chaos\`)"
    echo
    echo "8 consumers (max in flight 4) that ack, defer, release, crash and sit past a 20 ms lease; dead ones replaced, one leaves every 997 completions. The checker proves per key: every start after its predecessor completed, skips only by dead letter with its reason, none lost."
    echo
    LIMINAL_ORDERING_CHAOS="$ordered,10000" cargo test --release --features remote --quiet \
        --test ordering_chaos -- --nocapture chaos_least_loaded 2>&1 | grep -E "messages over|test result" | sed 's/^/    /'
} >> "$report"
