#!/usr/bin/env bash
# The API reference: Doxygen over include/liminal.h and include/liminal.hpp
# into build-docs/html/index.html. Installs doxygen (Debian's package) when
# missing. Fails on any Doxygen warning (listed from build-docs/warnings.log).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v doxygen >/dev/null 2>&1; then
    as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo)
    echo "docs: installing doxygen" >&2
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq doxygen >/dev/null ||
        { "${as_root[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq doxygen >/dev/null; }
fi
rm -rf build-docs
mkdir -p build-docs
if ! doxygen docs/Doxyfile || [ -s build-docs/warnings.log ]; then
    echo "docs: doxygen warnings:" >&2
    cat build-docs/warnings.log >&2
    exit 1
fi
echo "API reference: $PWD/build-docs/html/index.html"
