#!/usr/bin/env bash
# The contributor's checks, run by CI after the test suite: formatting,
# clippy with and without the remote feature (warnings are errors), and the
# committed header against the one the build generates. Needs the Rust
# toolchain with rustfmt and clippy. These check the source, not the
# library's behaviour, so they are not part of scripts/test.sh: clippy
# checks every dependency again in its own mode (Zenoh included), about
# 3½ minutes of a cold 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings (without and with the remote feature)"
cargo clippy --all-targets -- -D warnings
cargo clippy --all-targets --features remote -- -D warnings

step "generated header is up to date (include/liminal.h; build.rs ran above)"
if ! git diff --exit-code -- include/; then
    echo "include/liminal.h changed when building: commit the regenerated header" >&2
    exit 1
fi
step "lint passed"
