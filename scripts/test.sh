#!/usr/bin/env bash
# The whole test suite, as CI runs it (then scripts/lint.sh: formatting and
# clippy): Rust tests, header freshness, C tests (plain, ASan+UBSan, valgrind), the Python ctypes test,
# the remote consumers (feature remote: worker processes, TLS, a Python
# worker), the examples in-tree and against an installed prefix, and the
# benchmark in smoke mode. Needs the Rust toolchain; installs a C/C++ compiler, CMake,
# Python 3, valgrind and pkg-config when missing (scripts/ensure-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/ensure-tools.sh test
TARGET_DIR=$(scripts/cargo-target-dir.sh)
JOBS=$(nproc 2>/dev/null || echo 2)
PASSED=0

step() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }
ok() { PASSED=$((PASSED + 1)); }

step "CMake build (library via cargo, with the remote feature; C tests, examples) + ctest"
# Release with the remote feature, like the Rust tests below: cargo builds
# the library once for both.
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLIMINAL_REMOTE=ON
cmake --build build -j"$JOBS"
ctest --test-dir build --output-on-failure
ok

step "generated header is up to date (include/liminal.h)"
if ! git diff --exit-code -- include/; then
    echo "include/liminal.h changed when building: commit the regenerated header" >&2
    exit 1
fi
ok

step "cargo test --release --features remote: every Rust test, with the remote consumers over Zenoh (worker processes killed, frozen, cut off; TLS; the Python worker)"
# Release, with the features the CMake build just used: the dependencies
# are not built again. The Python worker speaks the protocol with
# eclipse-zenoh alone, from a venv of its own.
PYENV="$TARGET_DIR/py-remote"
[ -x "$PYENV/bin/python" ] || python3 -m venv "$PYENV"
"$PYENV/bin/python" -c 'import zenoh' 2>/dev/null ||
    "$PYENV/bin/pip" install --quiet --disable-pip-version-check eclipse-zenoh==1.10.2
LIMINAL_PYTHON="$PYENV/bin/python" cargo test --release --features remote
# The C host of the remote quickstart with Python worker processes.
PATH="$PYENV/bin:$PATH" LIMINAL_REMOTE_WORKER="$ROOT/tests/python/remote_worker.py" \
    ./build/examples-c/remote_quickstart > /dev/null
ok

step "C tests and examples under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLIMINAL_SANITIZE=ON -DLIMINAL_REMOTE=ON
cmake --build build-asan -j"$JOBS"
ctest --test-dir build-asan --output-on-failure
ok

step "C tests under valgrind (no errors, no definite leaks)"
for t in test_flows test_bad_input test_status_version test_contracts test_waiting_room test_free_user test_ordering test_durable test_sqlite_store; do
    # --fair-sched=yes: valgrind runs one thread at a time, and its default
    # lock lets threads that never block (test_free_user's racers, calling
    # in a loop while the runtime is freed) starve the one that must finish:
    # that test once took 7 minutes instead of seconds, stuck joining a
    # scheduler thread whose 5 ms park had long ended.
    LIMINAL_UNDER_VALGRIND=1 valgrind --fair-sched=yes --quiet --error-exitcode=1 --leak-check=full \
        --errors-for-leak-kinds=definite --show-leak-kinds=definite "build/tests/c/$t"
done
ok

step "Python ctypes test"
LIMINAL_LIB="$TARGET_DIR/release/libliminal.so" python3 tests/python/test_ctypes.py
ok

step "the Python package: pip install ./python into a fresh venv, then its pytest suite (scripts/python-test.sh)"
# The wheel's cargo build is the one CMake ran (release, remote, same
# target): nothing is built again.
scripts/python-test.sh
ok

step "install, then build the examples against the installed prefix"
PREFIX=$(mktemp -d)
trap 'rm -rf "$PREFIX"' EXIT
cmake --install build --prefix "$PREFIX"
test -L "$PREFIX/lib/libliminal.so" -a -L "$PREFIX/lib/libliminal.so.0"
# Stripped (at most 15 MB with the remote feature), its debug information
# installed apart under lib/debug/.build-id, found again by the build id.
INSTALLED=$(readlink -f "$PREFIX/lib/libliminal.so")
SIZE=$(stat -c %s "$INSTALLED")
echo "installed $(basename "$INSTALLED"): $SIZE bytes"
test "$SIZE" -le $((15 * 1024 * 1024))
BUILD_ID=$(readelf -n "$INSTALLED" | awk '/Build ID/ { print $3 }')
test -s "$PREFIX/lib/debug/.build-id/${BUILD_ID:0:2}/${BUILD_ID:2}.debug"
cmake -S examples-c -B build-installed -DCMAKE_PREFIX_PATH="$PREFIX"
cmake --build build-installed -j"$JOBS"
LD_LIBRARY_PATH="$PREFIX/lib" ./build-installed/quickstart >/dev/null
PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" cc -std=c11 -o build-installed/quickstart-pc \
    examples-c/quickstart.c $(PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" pkg-config --cflags --libs liminal)
LD_LIBRARY_PATH="$PREFIX/lib" ./build-installed/quickstart-pc >/dev/null
ok

step "API reference builds without a Doxygen warning (scripts/docs.sh)"
scripts/docs.sh
ok

step "soak, shortened (scripts/soak.sh runs the full 10M)"
mkdir -p build-bench
scripts/soak.sh 300000 build-bench/soak-ci.md 30000 20000 > /dev/null
tail -1 build-bench/soak-ci.md
ok

if [ -x bench/run.sh ]; then
    step "benchmark, smoke mode"
    bench/run.sh --smoke
ok
fi

step "summary"
echo "$PASSED passed, 0 failed"
