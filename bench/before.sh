#!/usr/bin/env bash
# Before/after the waiting room (issue 12): builds commit 0104e54, the last
# version before the waiting room, in a git worktree under build-bench/ (its
# own cargo target directory), builds that commit's bench/liminal_bench.c
# against it, and appends its W1 and W2 to RESULTS as system
# "liminal-0104e54". Any failure to set it up appends one row saying why
# ("before-skipped") and exits 0: the report shows the note instead.
#
#   bench/before.sh RESULTS N1 N2
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RESULTS=$1 N1=$2 N2=$3
COMMIT=0104e54
SYSTEM="liminal-$COMMIT"
OUT="$ROOT/build-bench"
TREE="$OUT/before-$COMMIT"
TARGET="$OUT/before-$COMMIT-target"
BIN="$OUT/liminal_bench-$COMMIT"

skip() {
    echo "bench/before.sh: skipped: $1" >&2
    printf '{"system":"%s","workload":"before-skipped","reason":"%s"}\n' "$SYSTEM" "$1" >> "$RESULTS"
    exit 0
}

if [ ! -e "$TREE/.git" ]; then
    git worktree prune
    git worktree add --detach "$TREE" "$COMMIT" >&2 || skip "git worktree add $COMMIT failed"
fi
[ "$(git -C "$TREE" rev-parse --short=7 HEAD 2>/dev/null)" = "$COMMIT" ] || skip "worktree $TREE is not at $COMMIT"
# Incremental after the first time: one cargo no-op per repetition.
(cd "$TREE" && CARGO_TARGET_DIR="$TARGET" cargo build --release --lib --quiet) || skip "cargo build of $COMMIT failed"
LIB="$TARGET/release"
soname=$(readelf -d "$LIB/libliminal.so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
[ -z "$soname" ] || [ -e "$LIB/$soname" ] || ln -s libliminal.so "$LIB/$soname" || skip "no $soname link"
if [ ! -x "$BIN" ] || [ "$TREE/bench/liminal_bench.c" -nt "$BIN" ] || [ "$LIB/libliminal.so" -nt "$BIN" ]; then
    cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -I "$TREE/include" -o "$BIN" "$TREE/bench/liminal_bench.c" \
        -L "$LIB" -Wl,-rpath,"$LIB" -lliminal -lpthread || skip "building $COMMIT's bench/liminal_bench.c failed"
fi

rename() { sed "s/\"system\":\"liminal\"/\"system\":\"$SYSTEM\"/"; }
"$BIN" w1 "$N1" | rename >> "$RESULTS" || skip "$COMMIT's w1 failed"
"$BIN" w2 "$N2" 1024 | rename >> "$RESULTS" || skip "$COMMIT's w2 failed"
