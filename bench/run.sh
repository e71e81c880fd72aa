#!/usr/bin/env bash
# The benchmark suite: liminal through its C ABI beside Erlang/OTP and libzmq,
# in one invocation on one machine. Writes BENCHMARKS.md.
#
#   bench/run.sh            full run (a few minutes), writes BENCHMARKS.md
#   bench/run.sh --smoke    tiny counts, checks everything builds and runs
#
# W8 runs W1/W3 while bench/hog.c keeps one core busy; W9 is producers
# outrunning consumers 2:1; W10 is examples/churn.rs (consumer churn memory);
# in full mode bench/before.sh adds W1/W2 of the last version before the
# waiting room (system "liminal-0104e54").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=full
[ "${1:-}" = "--smoke" ] && MODE=smoke
OUT="$ROOT/build-bench"
mkdir -p "$OUT"

if [ "$MODE" = full ]; then
    need=()
    command -v erl >/dev/null 2>&1 || need+=(erlang-nox)
    [ -e /usr/include/zmq.h ] || need+=(libzmq3-dev)
    command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
    if [ "${#need[@]}" -gt 0 ]; then
        echo "bench: installing ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq "${need[@]}"
    fi
fi

# The same features as the CMake build (remote on), so neither rebuilds the other.
cargo build --release --lib --features remote --quiet
LIB="$(scripts/cargo-target-dir.sh)/release"
# The library's soname (libliminal.so.0) next to it, as CMake makes it:
# the bench binaries load it through their rpath.
soname=$(readelf -d "$LIB/libliminal.so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
[ -z "$soname" ] || [ -e "$LIB/$soname" ] || ln -s libliminal.so "$LIB/$soname"
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I include -o "$OUT/liminal_bench" bench/liminal_bench.c \
    -L "$LIB" -Wl,-rpath,"$LIB" -lliminal -lpthread
cc -O2 -std=c11 -Wall -Wextra -Werror -o "$OUT/hog" bench/hog.c
HAVE_ZMQ=0
if [ -e /usr/include/zmq.h ]; then
    cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -o "$OUT/zmq_bench" bench/zmq_bench.c -lzmq -lpthread
    HAVE_ZMQ=1
fi
HAVE_ERL=0
if command -v erlc >/dev/null 2>&1; then
    erlc -o "$OUT" bench/erlang/dispatch_bench.erl
    HAVE_ERL=1
fi

RESULTS="$OUT/results-$MODE.jsonl"
: > "$RESULTS"
L="$OUT/liminal_bench"
erl_run() { erl -noshell -pa "$OUT" -s dispatch_bench main "$@"; }

if [ "$MODE" = smoke ]; then
    REPEAT=1; N1=2000; N2=20000; N3=50; N5=500; W6="20000,40000"; N7=2; W9_MS=500
    SIZES="4 100"
else
    REPEAT=3; N1=100000; N2=2000000; N3=5000; N5=20000; W6="1000000,5000000,10000000"; N7=8; W9_MS=2000
    SIZES="4 100 1000 10000"
fi

# W8: one unrelated CPU-bound process with one busy thread, started before
# and killed after by its PID.
HOG_PID=""
start_hog() {
    "$OUT/hog" &
    HOG_PID=$!
    sleep 0.2 # let it take its core
}
stop_hog() {
    if [ -n "$HOG_PID" ]; then
        kill "$HOG_PID" 2>/dev/null || true
        wait "$HOG_PID" 2>/dev/null || true
        HOG_PID=""
    fi
}
trap stop_hog EXIT
as_w8() { sed -E 's/"workload":"(w[13])"/"workload":"w8-\1"/'; }

for rep in $(seq 1 "$REPEAT"); do
    echo "bench: repetition $rep/$REPEAT ($MODE)"
    "$L" w1 "$N1" >> "$RESULTS"
    "$L" w2 "$N2" 1024 >> "$RESULTS"
    "$L" w3 "$N3" >> "$RESULTS"
    "$L" w4 "$N1" >> "$RESULTS"
    # Before/after the waiting room (issue 12): W1/W2 of commit 0104e54.
    if [ "$MODE" = full ]; then bench/before.sh "$RESULTS" "$N1" "$N2"; fi
    if [ "$HAVE_ZMQ" = 1 ]; then
        "$OUT/zmq_bench" w1 "$N1" >> "$RESULTS"
        "$OUT/zmq_bench" w2 "$N2" 1024 >> "$RESULTS"
    fi
    if [ "$HAVE_ERL" = 1 ]; then
        erl_run w1 "$N1" >> "$RESULTS"
        erl_run w2 "$N2" 1024 >> "$RESULTS"
        erl_run w3 "$N3" >> "$RESULTS"
    fi
    # W8: W1 and W3 again, every system under the same unrelated load.
    start_hog
    "$L" w1 "$N1" | as_w8 >> "$RESULTS"
    "$L" w3 "$N3" | as_w8 >> "$RESULTS"
    if [ "$HAVE_ZMQ" = 1 ]; then "$OUT/zmq_bench" w1 "$N1" | as_w8 >> "$RESULTS"; fi
    if [ "$HAVE_ERL" = 1 ]; then
        erl_run w1 "$N1" | as_w8 >> "$RESULTS"
        erl_run w3 "$N3" | as_w8 >> "$RESULTS"
    fi
    stop_hog
    # W9: producers outrun consumers 2:1 (Erlang: RabbitMQ-style prefetch).
    "$L" w9 "$W9_MS" >> "$RESULTS"
    if [ "$HAVE_ERL" = 1 ]; then erl_run w9 "$W9_MS" >> "$RESULTS"; fi
done
# W5, every cell REPEAT times (median and spread).
for rep in $(seq 1 "$REPEAT"); do
    for size in $SIZES; do
        for router in first least affinity sticky callback; do
            n=$N5
            # A C routing callback sees every consumer per dispatch: fewer messages.
            [ "$router" = callback ] && [ "$size" -ge 1000 ] && n=$((N5 / 10))
            "$L" w5 "$n" "$size" "$router" >> "$RESULTS"
        done
    done
done
"$L" w6 "$W6" >> "$RESULTS"
"$L" w7 "$N7" 250 >> "$RESULTS"

# W10: consumer churn memory (examples/churn.rs prints a Markdown table,
# marks a cost ratio over its target and exits 1 when memory or threads grew
# past their limits; the table is kept and turned into result rows either way).
churn() {
    local label=$1
    shift
    local table="$OUT/churn-${label// /-}.md" rc=0
    cargo run --release --features remote --quiet --example churn -- "$@" > "$table" || rc=$?
    cat "$table" >&2
    python3 bench/churn_json.py "$table" --run "$label" --exit-code "$rc" >> "$RESULTS"
}
if [ "$MODE" = smoke ]; then
    churn "smoke" 2000
else
    churn "1M verdict" 1000000 verdict
    churn "all kinds" 20000
fi

# Remote consumers (feature remote): a bare Zenoh query round trip beside
# remote W1/W2/W3 with worker processes (examples/remote_bench.rs).
remote() {
    cargo run --release --features remote --quiet --example remote_bench -- bench "$@"
}
if [ "$MODE" = smoke ]; then
    remote 500 5000 2 >> "$RESULTS"
else
    for rep in $(seq 1 "$REPEAT"); do remote 20000 200000 20 >> "$RESULTS"; done
    start_hog
    remote 20000 200000 20 | sed -E 's/"workload":"(r[0-9a-z-]*|query-rtt)"/"workload":"busy-\1"/' >> "$RESULTS"
    stop_hog
fi

if [ "$MODE" = smoke ]; then
    python3 bench/report.py "$RESULTS" --check-only
    python3 bench/report.py "$RESULTS" --command "bench/run.sh --smoke" > "$OUT/smoke-report.md"
    echo "bench: smoke run ok ($(wc -l < "$RESULTS") results)"
    exit 0
fi

# Profiles of W1 and W2: instruction counts by function (callgrind).
PROFILE="$OUT/profile.txt"
: > "$PROFILE"
for w in "w1 20000" "w2 200000 1024"; do
    set -- $w
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$1" "$L" "$@" > /dev/null 2>&1
    {
        echo "### $1"
        callgrind_annotate --inclusive=no "$OUT/callgrind.$1" 2>/dev/null | awk '/^ *[0-9,]+ \(/ && n < 15 { print; n++ }'
    } >> "$PROFILE"
done

python3 bench/report.py "$RESULTS" --profile "$PROFILE" --command "bench/run.sh" > BENCHMARKS.md
echo "bench: wrote BENCHMARKS.md"
