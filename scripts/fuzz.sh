#!/usr/bin/env bash
# API-sequence fuzzer over the C ABI (libFuzzer + AddressSanitizer), on as
# many cores as asked, with a report written into the tree.
#
#   scripts/fuzz.sh [seconds] [jobs]     defaults: 1800 seconds, every core
#
# Runs libFuzzer's fork mode (`-fork=jobs`: one child process per core,
# crashes and leaks stop the run) seeded with the committed corpus and the
# inputs that failed once (fuzz/regressions/). New inputs go to a scratch
# corpus, so the committed one changes only when you minimise into it
# (`cargo fuzz cmin`). At the end it writes fuzz/reports/<UTC time>.md:
# the command, the executions, the coverage, the corpus, and every finding
# with its first lines (a leak of a callback's `user` names its kind).
#
# cargo-fuzz needs nightly compiler flags; on the stable toolchain
# RUSTC_BOOTSTRAP=1 enables them.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-1800}
JOBS=${2:-$(nproc 2>/dev/null || echo 2)}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --version 0.13.2 --locked

STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/liminal-fuzz.XXXXXX")
ARTIFACTS="$WORK/artifacts/"
LOG="$WORK/fuzz.log"
mkdir -p "$ARTIFACTS" "$WORK/corpus" fuzz/reports

# Build first, so the run's time is all fuzzing.
RUSTC_BOOTSTRAP=1 cargo fuzz build api_sequence

START=$(date +%s)
set +e
RUSTC_BOOTSTRAP=1 cargo fuzz run api_sequence "$WORK/corpus" fuzz/corpus/api_sequence fuzz/regressions -- \
    -fork="$JOBS" -max_total_time="$SECONDS_TO_RUN" -max_len=512 -timeout=30 \
    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$ARTIFACTS" \
    >"$LOG" 2>&1
STATUS=$?
set -e
END=$(date +%s)

REPORT="fuzz/reports/$STAMP.md"
python3 - "$LOG" "$ARTIFACTS" "$REPORT" "$SECONDS_TO_RUN" "$JOBS" "$STATUS" "$((END - START))" <<'EOF'
import os, re, sys
log, artifacts, report, asked, jobs, status, took = sys.argv[1:]
text = open(log, errors="replace").read()
# fork mode: "#N: cov: C ft: F corp: K exec/s: E oom/timeout/crash: a/b/c time: Ts job: J ..."
stats = re.findall(r"#(\d+): cov: (\d+) ft: (\d+) corp: (\d+) exec/s: (\d+) "
                   r"oom/timeout/crash: (\d+)/(\d+)/(\d+) time: (\d+)s", text)
findings = sorted(os.listdir(artifacts)) if os.path.isdir(artifacts) else []
# A panic with the lines after it (the engine prints its trace there).
panics = re.findall(r"panicked at [^\n]*\n(?:(?!INFO:|==\d+==)[^\n]*\n){0,90}", text)
leaks = re.findall(r"ERROR: LeakSanitizer[^\n]*", text)
asan = re.findall(r"ERROR: AddressSanitizer[^\n]*", text)
with open(report, "w") as out:
    out.write(f"# Fuzz run {os.path.basename(report)[:-3]}\n\n")
    out.write(f"`scripts/fuzz.sh {asked} {jobs}`: libFuzzer fork mode, {jobs} jobs, "
              f"AddressSanitizer, {took} s of wall time, exit status {status}.\n\n")
    if stats:
        n, cov, ft, corp, eps, oom, tmo, crash, t = stats[-1]
        out.write("| executions | coverage (edges / features) | corpus | exec/s (last) | "
                  "ooms / timeouts / crashes | fuzzing time |\n|---|---|---|---|---|---|\n")
        out.write(f"| {int(n):,} | {int(cov):,} / {int(ft):,} | {int(corp):,} | {eps} | "
                  f"{oom} / {tmo} / {crash} | {t} s |\n\n")
    else:
        out.write("No progress line was printed (the run did not start fuzzing).\n\n")
    if findings or panics or leaks or asan:
        out.write(f"## Findings: {len(findings)} input(s) saved\n\n")
        for name in findings:
            out.write(f"- `{name}`\n")
        for line in panics + leaks + asan:
            out.write(f"\n```\n{line.strip()}\n```\n")
    else:
        out.write("## Findings: none\n")
    tail = "\n".join(text.splitlines()[-15:])
    out.write(f"\n## Last lines of the log\n\n```\n{tail}\n```\n")
EOF
echo "report: $REPORT"
cat "$REPORT"
if [ -n "$(ls -A "$ARTIFACTS")" ]; then
    mkdir -p fuzz/findings
    cp "$ARTIFACTS"* fuzz/findings/
    echo "findings copied to fuzz/findings/" >&2
fi
rm -rf "$WORK"
exit "$STATUS"
