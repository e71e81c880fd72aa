#!/usr/bin/env bash
# The Python package as a user gets it: a fresh virtual environment under the
# cargo target directory ($TARGET/py-package), `pip install ./python[test]`
# from this checkout (scikit-build-core builds libliminal.so with cargo, with
# the feature remote, into the wheel; it fetches the cmake wheel from PyPI
# when the machine has no CMake >= 3.20), then the pytest suite in
# python/tests, remote workers included.
# Needs: the Rust toolchain (and the C linker cargo uses), python3 with venv.
# Shares the cargo target directory with `cargo build` and the CMake build,
# so a library they built already is not built again.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

command -v cargo >/dev/null 2>&1 || { echo "python-test: cargo not found (install the Rust toolchain)" >&2; exit 1; }
command -v cc >/dev/null 2>&1 || { echo "python-test: no C linker (cc): apt-get install gcc" >&2; exit 1; }
python3 -c 'import ensurepip, venv' 2>/dev/null ||
    { echo "python-test: python3 cannot make a venv: apt-get install python3-venv" >&2; exit 1; }

TARGET_DIR=$(scripts/cargo-target-dir.sh)
VENV="$TARGET_DIR/py-package"
rm -rf "$VENV"
python3 -m venv "$VENV"
# The wheel's cargo build uses the same target directory as everything else.
export CARGO_TARGET_DIR="$TARGET_DIR"
unset LIMINAL_LIBRARY
echo "python-test: pip install ./python[test] into $VENV (builds libliminal.so: minutes when cold)"
"$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off --quiet "$ROOT/python[test]"
"$VENV/bin/python" -c 'import liminal; print("python-test: liminal", liminal.__version__, "from", liminal.LIBRARY_PATH)'

cd "$ROOT/python"
# The remote tests must run, not skip: the package is built with remote.
LIMINAL_REQUIRE_REMOTE=1 "$VENV/bin/python" -m pytest -p no:cacheprovider -q tests "$@"
