#!/usr/bin/env bash
# Benchmark: the catalog under floods, and catalog queries on a large catalog (release
# build). Runs node/examples/catalog_bench.rs:
#   - flood: 10 000 manifests from one member and 100 from each of 100 members against a
#     catalog with a budget (BUDGET_MIB, default 64), beside the same flood with no budget
#     (the reference); prints process RSS before/after, evictions, honest movies listed;
#   - query: p50/p99 of /api/v1/catalog, a search, one movie and an image lookup on a
#     gateway listing MOVIES (default 10 000) movies, beside the same with 100 movies.
# Results: docs/benchmarks.md ("Movie authority and bounded catalogs").
#
# Environment overrides: BUDGET_MIB=64 MOVIES=10000, NO_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
if [[ -z "${NO_BUILD:-}" ]]; then
  echo "==> building (release)" >&2
  cargo build --release -p reelnet-node --example catalog_bench >&2
fi
bin="$CARGO_TARGET_DIR/release/examples/catalog_bench"
echo "== catalog bench ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
"$bin" flood "${BUDGET_MIB:-64}"
"$bin" flood 0
"$bin" query 100
"$bin" query "${MOVIES:-10000}"
