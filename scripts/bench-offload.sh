#!/usr/bin/env bash
# Benchmark (issue 19 item 5): origin offload. Starts a release testnet of a tracker and
# NODES nodes (testnet/up.sh), loads one demo movie on node 1 (testnet/demo.sh: node 1 is
# its origin; placement copies it to `replication` nodes), then five viewers on five
# different nodes (not the origin) watch it with staggered starts (scripts/bench-offload.mjs:
# plain HTTP players that sign in through their node like a browser and fetch the best
# rendition at PACE x real time). Every node's /metrics is read before and after: the
# script prints, per node, the bytes it served to viewers (from its disk or hot cache, or
# fetched from peers), uploaded to other nodes and fetched, and the origin's share of all
# bytes the viewers got. Target: <= 25 %. Results: docs/benchmarks.md ("Issue 19: the seven
# figures side by side", item 5).
#
# Environment overrides:
#   NODES=6 VIEWER_NODES="2 3 4 5 6" STAGGER_SECS=8 PACE=4 BUFFER_SECS=30
#   DEMO_SECONDS=120       length of the demo movie
#   BENCH_TMPDIR=/tmp      where the testnet's directory is created (removed at the end)
#   NO_BUILD=1             skip `cargo build` (release binaries must exist)
#   KEEP=1                 leave the testnet running (its directory is printed)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

export NODES="${NODES:-6}"
if [[ -z "${NO_BUILD:-}" ]]; then
  echo "==> building (release)" >&2
  cargo build --release --bins -p reelnet-node -p reelnet-tracker >&2
fi
TESTNET_DIR=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/reelnet-offload.XXXXXX")
export TESTNET_DIR
# The demo movie is encoded once and kept between runs.
export DEMO_MEDIA_DIR="${DEMO_MEDIA_DIR:-$HOME/.cache/reelnet/offload-media}"
cleanup() {
  if [[ -z "${KEEP:-}" ]]; then
    testnet/down.sh >/dev/null 2>&1 || true
    rm -rf "$TESTNET_DIR"
  else
    echo "testnet left running in $TESTNET_DIR (stop: TESTNET_DIR=$TESTNET_DIR testnet/down.sh)" >&2
  fi
}
trap cleanup EXIT

echo "==> machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
testnet/up.sh -n "$NODES" --release >&2
DEMO_SECONDS="${DEMO_SECONDS:-120}" testnet/demo.sh --release -n "$NODES" --movies 1 >&2
echo "==> viewing (load $(cut -d' ' -f1-3 /proc/loadavg))"
node scripts/bench-offload.mjs
echo "==> done (load $(cut -d' ' -f1-3 /proc/loadavg))"
