#!/usr/bin/env bash
# The main job: installs what is missing, builds everything (web app and release
# binaries), starts a local reelnet network on loopback (a tracker, an SMTP sink and
# $NODES nodes, default 3), loads the demo library (testnet/demo.sh: three short movies
# ingested on node 1 from a local torrent seed, and a demo account), and prints the URL of a
# node that does not hold the movies with the demo credentials. Ctrl-C stops everything.
#
# The last node runs as an edge node (`--edge`: it takes no share of the library), so
# placement keeps every movie on node 1 and node 2 and the printed URL is the edge node's,
# which holds none of them and streams everything from its peers (caching what it serves).
#
# Safe to run again: each run stops the previous network and starts a fresh one in
# $TESTNET_DIR (default .testnet/), keeping only the encoded demo media (demo-media/).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
t0=$(date +%s)
nodes="${NODES:-3}"
export TESTNET_DIR="${TESTNET_DIR:-$PWD/.testnet}"

scripts/setup.sh
# Again, now that setup may have installed mold: every build of this run then uses the same
# linker flags, so the cache is not rebuilt by the next run.
. scripts/env.sh
echo "==> building the web app"
(cd web && npm ci --no-audit --no-fund --silent && npm run build --silent)
echo "==> building reelnet (release)"
cargo build --release --locked --bins

testnet/down.sh >/dev/null
if [ -d "$TESTNET_DIR" ]; then
  find "$TESTNET_DIR" -mindepth 1 -maxdepth 1 ! -name demo-media -exec rm -rf {} +
fi
trap 'testnet/down.sh' EXIT
trap 'exit 0' INT TERM
export EDGE_NODES="${EDGE_NODES:-$nodes}"
testnet/up.sh --release -n "$nodes"
if ! testnet/demo.sh --release -n "$nodes"; then
  echo "loading the demo library failed; logs are in $TESTNET_DIR (node1.log, seed.log, tracker.log)" >&2
  exit 1
fi
. "$TESTNET_DIR/demo.env"
# Nobody becomes admin by registering first: a single-use link makes the network's admin.
admin_link=$("$CARGO_TARGET_DIR/release/reelnet-tracker" --config "$TESTNET_DIR/tracker.toml" \
  --data-dir "$TESTNET_DIR/tracker" admin bootstrap --ttl 24h 2>/dev/null | tail -n 1 || true)
cat <<MSG

reelnet is running ($(( $(date +%s) - t0 )) s). Open $DEMO_URL in a browser
(node $DEMO_NODE, $([ "$DEMO_NODE_HOLDS_NONE" = yes ] && echo "which holds none of the movies and streams them from its peers" || echo "which holds the fewest of the movies and streams the rest from its peers")).

Sign in on the tracker's page the site sends you to (${DEMO_TRACKER:-the tracker}; passwords
are only typed there, never on a node's page), and allow the node the first time:

  email:    $DEMO_EMAIL
  password: $DEMO_PASSWORD

To administer the network (requests, nodes, movie bindings), create its admin account
with this single-use link: ${admin_link:-(reelnet-tracker admin bootstrap)}

New accounts get their verification mail in $TESTNET_DIR/mail/new (a local SMTP sink).
Every node serves the same site: http://127.0.0.1:8081 … http://127.0.0.1:$((8080 + nodes)).
Logs are in $TESTNET_DIR/. Press Ctrl-C to stop.
MSG
while sleep 3600; do :; done
