#!/usr/bin/env bash
# Soak: `scripts/soak.sh [messages] [report]` (default 10,000,000 messages,
# report SOAK.md). CI runs it with a small count.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --quiet --example soak -- "${1:-10000000}" "${2:-SOAK.md}"
