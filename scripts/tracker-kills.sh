#!/usr/bin/env bash
# A hundred tracker kills (issue 20, item 2): 64 clients write progress, watch-later
# entries and watch-party rooms while the real reelnet-tracker process is killed with
# SIGKILL at random moments (200-1500 ms after each restart) and restarted, a hundred times
# in a row. After every restart each acknowledged write is looked up: the test prints
# "acknowledged N, found N" per kind, the restart time, and a summary line
# `tracker_kills kills=… acknowledged_progress=… found_progress=… …` at the end; any loss
# fails it. The suite runs the same loop with 5 kills (tracker/tests/kills.rs). Loopback
# only; every tracker lives in a temporary directory that is removed at the end.
#
# Environment overrides:
#   TRACKER_KILLS=100          kills in a row
#   TRACKER_KILL_CLIENTS=64    concurrent writing clients
#   TRACKER_KILL_USERS=8       accounts they write as
#   TRACKER_KILL_MIN_MS=200    shortest uptime before a kill, ms
#   TRACKER_KILL_MAX_MS=1500   longest uptime before a kill, ms
#   TRACKER_KILL_SEED=…        the schedule's seed (printed; default: the clock)
#   RELEASE=1                  build and run the test (and so the tracker) in release mode
# Results: docs/benchmarks.md, "Tracker: a hundred kills".
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

profile=()
[[ -n "${RELEASE:-}" ]] && profile=(--release)
echo "==> $(date -u +%FT%TZ) load: $(uptime | sed 's/.*load average: //')" >&2
cargo test "${profile[@]}" -p reelnet-tracker --test kills -- \
  --ignored --exact hundred_kills --nocapture --test-threads 1
echo "==> $(date -u +%FT%TZ) load: $(uptime | sed 's/.*load average: //')" >&2
