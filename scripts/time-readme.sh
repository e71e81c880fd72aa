#!/usr/bin/env bash
# Times the README's commands from a fresh clone of this checkout's HEAD,
# with a cold target directory:
#
#   scripts/time-readme.sh [--cold-registry] [--remote] [--tests]
#
#   --cold-registry  an empty CARGO_HOME too (every crate downloaded again)
#   --remote         also time `scripts/quickstart.sh --remote` after it
#   --tests          also time `scripts/test.sh` after the quickstart(s)
#
# Prints one line per command with its wall time; the clone is removed.
set -euo pipefail
cd "$(dirname "$0")/.."
cold=0 remote=0 tests=0
for arg in "$@"; do
    case "$arg" in
        --cold-registry) cold=1 ;;
        --remote) remote=1 ;;
        --tests) tests=1 ;;
        *) echo "usage: $0 [--cold-registry] [--remote] [--tests]" >&2; exit 2 ;;
    esac
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/liminal-time.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
git clone --quiet "$PWD" "$WORK/liminal"
unset CARGO_TARGET_DIR
if [ "$cold" = 1 ]; then
    export CARGO_HOME="$WORK/cargo-home"
    mkdir -p "$CARGO_HOME"
fi

timed() {
    local started=$(date +%s)
    if ! (cd "$WORK/liminal" && "$@") >"$WORK/log" 2>&1; then
        tail -30 "$WORK/log" >&2
        echo "time-readme: '$*' failed" >&2
        exit 1
    fi
    local took=$(($(date +%s) - started))
    printf '%-36s %d min %02d s\n' "$*" $((took / 60)) $((took % 60))
}
echo "fresh clone of $(git rev-parse --short HEAD), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
    "cargo registry $([ "$cold" = 1 ] && echo empty || echo warm)"
timed scripts/quickstart.sh
[ "$remote" = 0 ] || timed scripts/quickstart.sh --remote
[ "$tests" = 0 ] || timed scripts/test.sh
