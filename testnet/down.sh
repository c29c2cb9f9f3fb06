#!/usr/bin/env bash
# Stops what testnet/up.sh started (SIGTERM, then SIGKILL after 10 s). Keeps data dirs;
# pass --wipe to delete them too.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${TESTNET_DIR:-$PWD/.testnet}"
[ -f "$dir/pids" ] || exit 0
pids=$(cat "$dir/pids")
kill $pids 2>/dev/null || true
for _ in $(seq 1 100); do
  alive=0
  for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive -eq 0 ] && break
  sleep 0.1
done
kill -9 $pids 2>/dev/null || true
rm -f "$dir/pids"
[ "${1:-}" = "--wipe" ] && rm -rf "$dir"
echo "testnet stopped"
