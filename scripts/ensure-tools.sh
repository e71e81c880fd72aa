#!/usr/bin/env bash
# Installs what the build and the tests need when it is missing, so the
# README's commands work on a fresh Debian/Ubuntu machine that has only the
# Rust toolchain: `scripts/ensure-tools.sh [quickstart|test]`.
#   quickstart: a C/C++ compiler, CMake >= 3.20
#   test:       the above, plus valgrind, python3 (with venv), pkg-config,
#               openssl, libsqlite3-dev
# Uses apt-get (as root, or through sudo when available).
set -euo pipefail
what="${1:-test}"

need=()
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
if command -v cmake >/dev/null 2>&1; then
    version=$(cmake --version | awk 'NR == 1 { print $3 }')
    if [ "$(printf '%s\n3.20\n' "$version" | sort -V | head -1)" != 3.20 ]; then
        need+=(cmake)
    fi
else
    need+=(cmake)
fi
if [ "$what" = test ]; then
    command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
    # The remote tests: certificates for mutual TLS, a venv for eclipse-zenoh.
    command -v openssl >/dev/null 2>&1 || need+=(openssl)
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
    # test_sqlite_store: a durable group kept in a SQLite database through
    # the store callbacks, built against the system's SQLite.
    [ -f /usr/include/sqlite3.h ] || need+=(libsqlite3-dev)
fi
[ "${#need[@]}" -eq 0 ] && exit 0

echo "ensure-tools: installing ${need[*]}" >&2
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "ensure-tools: need ${need[*]}; install them (apt-get install ${need[*]}) or run as root" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
