#!/usr/bin/env bash
# Prints where cargo builds this crate (honours CARGO_TARGET_DIR and
# .cargo/config), as `cargo metadata` reports it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
