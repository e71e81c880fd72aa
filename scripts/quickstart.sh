#!/usr/bin/env bash
# Builds the library (cargo, through CMake) and runs the C quickstart.
# Installs a C compiler and CMake first if the machine lacks them.
#
#   scripts/quickstart.sh            the local bus: three consumers, one crashes
#   scripts/quickstart.sh --remote   remote consumers over Zenoh: a host and two
#                                    worker processes, one kill -9ed mid-stream
#   scripts/quickstart.sh --durable  a durable group: its host is kill -9ed with
#                                    ten orders unfinished; a new one recovers them
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
    "") remote=OFF target=quickstart ;;
    --remote) remote=ON target=remote_quickstart ;;
    --durable) remote=OFF target=durable_quickstart ;;
    *) echo "usage: $0 [--remote | --durable]" >&2; exit 2 ;;
esac
scripts/ensure-tools.sh quickstart
# LIMINAL_REMOTE only ever turns on here: a build tree configured with the
# remote feature keeps it for the local quickstart too.
if [ "$remote" = ON ]; then
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLIMINAL_REMOTE=ON >/dev/null
else
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build build --target "$target" -j"$(nproc 2>/dev/null || echo 2)"
exec "./build/examples-c/$target"
