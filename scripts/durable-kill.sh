#!/usr/bin/env bash
# The host kill -9 test, longer: a host process dispatching durable messages
# to four consumers is kill -9ed at random instants ROUNDS times (default
# 50; every fourth kill lands as it opens its store) and restarted on the
# same store each time; then every accepted message must have been handled,
# nothing handled may be a message never dispatched, and duplicates are
# counted. CI runs the same test with 12 rounds (tests/durable.rs).
#
#   scripts/durable-kill.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
LIMINAL_KILL_ROUNDS="${1:-50}" exec cargo test --release --test durable \
    a_host_killed_at_random_instants_loses_nothing_it_accepted -- --nocapture
