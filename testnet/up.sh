#!/usr/bin/env bash
# Starts a local reelnet network on loopback: one tracker and N nodes, each with its own
# data directory under $TESTNET_DIR (default .testnet/), and waits until all answer.
#
#   testnet/up.sh [-n NODES] [--release]
#
# Ports: tracker 127.0.0.1:$BASE_PORT (default 7070); node i (1..N) gateway
# 127.0.0.1:$((8080+i)), libp2p tcp/$((4000+i)), QUIC udp/$((4400+i)).
# Stop with testnet/down.sh. Binaries come from $CARGO_TARGET_DIR/{debug,release}.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

nodes=${NODES:-1}
profile=debug
while [ $# -gt 0 ]; do
  case "$1" in
    -n) nodes="$2"; shift 2 ;;
    --release) profile=release; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
dir="${TESTNET_DIR:-$PWD/.testnet}"
bin="$CARGO_TARGET_DIR/$profile"
tracker_port="${BASE_PORT:-7070}"
mkdir -p "$dir"
: > "$dir/pids"

wait_http() { # url seconds
  for _ in $(seq 1 $(( $2 * 10 ))); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for $1" >&2
  return 1
}

"$bin/reelnet-tracker" --config configs/testnet/tracker.toml \
  --data-dir "$dir/tracker" --listen "127.0.0.1:$tracker_port" \
  >"$dir/tracker.log" 2>&1 &
echo $! >> "$dir/pids"
wait_http "http://127.0.0.1:$tracker_port/healthz" 30
echo "tracker  http://127.0.0.1:$tracker_port   (log: $dir/tracker.log)"

web_args=()
[ -f web/dist/index.html ] && web_args=(--web-dir "$PWD/web/dist")
for i in $(seq 1 "$nodes"); do
  boot=()
  [ "$i" -gt 1 ] && boot=(--bootstrap "/ip4/127.0.0.1/tcp/4001")
  "$bin/reelnet-node" --config configs/testnet/node.toml \
    --data-dir "$dir/node$i" --listen "127.0.0.1:$((8080 + i))" \
    --p2p "/ip4/127.0.0.1/tcp/$((4000 + i))" --quic "127.0.0.1:$((4400 + i))" \
    --tracker "http://127.0.0.1:$tracker_port" "${boot[@]}" "${web_args[@]}" \
    >"$dir/node$i.log" 2>&1 &
  echo $! >> "$dir/pids"
done
for i in $(seq 1 "$nodes"); do
  wait_http "http://127.0.0.1:$((8080 + i))/healthz" 30
  echo "node$i    http://127.0.0.1:$((8080 + i))   (log: $dir/node$i.log)"
done
