#!/usr/bin/env bash
# The main job: installs what is missing, builds everything (web app and release
# binaries), starts a local reelnet network (a tracker and nodes on loopback) and prints
# the URL to open. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/setup.sh
echo "==> building the web app"
(cd web && npm ci --no-audit --no-fund --silent && npm run build --silent)
echo "==> building reelnet (release)"
cargo build --release --locked --bins
trap 'testnet/down.sh' EXIT
trap 'exit 0' INT TERM
testnet/down.sh >/dev/null
testnet/up.sh --release -n "${NODES:-1}"
cat <<MSG

reelnet is running. Open http://127.0.0.1:8081 in a browser.
Logs are in .testnet/. Press Ctrl-C to stop.
MSG
while sleep 3600; do :; done
