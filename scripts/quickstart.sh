#!/usr/bin/env bash
# Builds the library (cargo, through CMake) and runs the C quickstart.
# Installs a C compiler and CMake first if the machine lacks them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-tools.sh quickstart
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLIMINAL_REMOTE="${LIMINAL_REMOTE:-ON}" >/dev/null
cmake --build build --target quickstart -j"$(nproc 2>/dev/null || echo 2)"
exec ./build/examples-c/quickstart
