#!/usr/bin/env bash
# Benchmark: what network membership costs (release build). Runs
# node/examples/membership_bench.rs, which measures in one process:
#   - enrollment on loopback: a real tracker and N fresh nodes enrolling with invites
#     (network document, proof of possession, certificate, verification);
#   - catalog gossip validation: records/s offered to a catalog without and with the
#     membership check (each record carries its node's certificate);
#   - QUIC connection set-up: connect + first 16 KiB segment, without and with the
#     certificate checked in both TLS verifiers.
# Prints each figure beside its reference (the same path without membership). Results:
# docs/benchmarks.md ("Membership").
#
# Environment overrides: ENROLL=20 RECORDS=20000 CONNECTIONS=50, NO_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
if [[ -z "${NO_BUILD:-}" ]]; then
  echo "==> building (release)" >&2
  cargo build --release -p reelnet-node --example membership_bench >&2
fi
echo "== membership bench ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
"$CARGO_TARGET_DIR/release/examples/membership_bench" \
  --enroll "${ENROLL:-20}" --records "${RECORDS:-20000}" --connections "${CONNECTIONS:-50}"
