#!/usr/bin/env bash
# API-sequence fuzzer over the C ABI (libFuzzer + AddressSanitizer).
#   scripts/fuzz.sh [seconds]     default 1800
# cargo-fuzz needs nightly compiler flags; on the stable toolchain
# RUSTC_BOOTSTRAP=1 enables them. The corpus lives in fuzz/corpus/.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --version 0.13.2 --locked
mkdir -p fuzz/corpus/api_sequence
LSAN_OPTIONS="suppressions=$PWD/tests/c/lsan.supp" RUSTC_BOOTSTRAP=1 exec cargo fuzz run api_sequence fuzz/corpus/api_sequence -- \
    -max_total_time="${1:-1800}" -max_len=512 -timeout=30 -rss_limit_mb=4096 -print_final_stats=1
