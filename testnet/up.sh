#!/usr/bin/env bash
# Starts a local reelnet network on loopback: one tracker and N nodes, each with its own
# data directory under $TESTNET_DIR (default .testnet/), waits until all answer and until
# every node sees every other node (the `live_nodes` of each node's /admin/v1/status), and
# prints how long that took.
#
#   testnet/up.sh [-n NODES] [--release]        (NODES: 1-200, default 3 or $NODES)
#
# Ports: tracker 127.0.0.1:$BASE_PORT (default 7070); node i (1..N) gateway
# 127.0.0.1:$((8080+i)), libp2p tcp/$((4000+i)), QUIC udp/$((4400+i)). Every node joins
# through node 1. Stop with testnet/down.sh; a failed start stops what it started.
# Binaries come from $CARGO_TARGET_DIR/{debug,release} (or $NODE_BIN, $TRACKER_BIN). MESH_WAIT_SECS (default 60 + 3 per
# node) bounds the wait for the mesh. EDGE_NODES="3 5" starts those nodes as edge nodes
# (`--edge`: no share of the library, everything streamed from peers and cached).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. testnet/lib.sh

nodes=${NODES:-3}
profile=debug
while [ $# -gt 0 ]; do
  case "$1" in
    -n) nodes="${2:?-n needs a number}"; shift 2 ;;
    --release) profile=release; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if ! [[ "$nodes" =~ ^[0-9]+$ ]] || [ "$nodes" -lt 1 ] || [ "$nodes" -gt 200 ]; then
  echo "-n must be 1-200 (ports 8081.., 4001.., 4401.. per node)" >&2
  exit 2
fi
dir="${TESTNET_DIR:-$PWD/.testnet}"
node_bin="${NODE_BIN:-$CARGO_TARGET_DIR/$profile/reelnet-node}"
tracker_bin="${TRACKER_BIN:-$CARGO_TARGET_DIR/$profile/reelnet-tracker}"
tracker_port="${BASE_PORT:-7070}"
for b in "$tracker_bin" "$node_bin"; do
  [ -x "$b" ] || { echo "missing $b (build the binaries first: cargo build --bins, with --release for --release)" >&2; exit 1; }
done
mkdir -p "$dir"
if [ -s "$dir/pids" ]; then
  for p in $(cat "$dir/pids"); do
    if kill -0 "$p" 2>/dev/null; then
      echo "a testnet is already running from $dir (pid $p); stop it with testnet/down.sh" >&2
      exit 1
    fi
  done
fi
# Every port must be free before anything starts (a half-started net is worse than none).
busy=$(ss -Htlnu 2>/dev/null | awk '{print $5}' | sed 's/.*://' | sort -u)
want="$tracker_port"
for i in $(seq 1 "$nodes"); do want="$want $((8080 + i)) $((4000 + i)) $((4400 + i))"; done
for p in $want; do
  if grep -qx "$p" <<<"$busy"; then
    echo "port $p is already in use; is another testnet running?" >&2
    exit 1
  fi
done
: > "$dir/pids"

# Every node joins the network with an invite the tracker makes (`reelnet-tracker node
# invite`, through the running tracker) on its first start; its membership certificate is
# then kept in its data directory and renewed by the node itself. Replica nodes get the
# replica and ingest roles (they claim movie requests), edge nodes the edge role only.
(
  umask 077
  # The tracker's public URL (sign-in pages, token issuer) carries its port.
  sed "s#localhost:7070#localhost:$tracker_port#g" configs/testnet/tracker.toml > "$dir/tracker.toml"
  sed "s#localhost:7070#localhost:$tracker_port#g" configs/testnet/node.toml > "$dir/node-edge.toml"
  { cat "$dir/node-edge.toml"
    printf '\n[requests]\nenabled = true\nmin_headroom_bytes = 536870912\n'
    printf 'torrent_peers = ["127.0.0.1:%s"]\n' "${DEMO_SEED_PORT:-6881}"
  } > "$dir/node.toml"
)
# invite ROLE...: prints a fresh one-use invite token.
invite() {
  local args=()
  for r in "$@"; do args+=(--role "$r"); done
  "$tracker_bin" --config "$dir/tracker.toml" --data-dir "$dir/tracker" \
    node invite "${args[@]}" --ttl 1h | tail -n 1
}

started_ok=0
on_exit() {
  if [ $started_ok -eq 0 ]; then
    echo "testnet start failed; stopping what was started (logs in $dir)" >&2
    TESTNET_DIR="$dir" testnet/down.sh >/dev/null 2>&1 || true
  fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# The tracker's mail (verification and reset links) goes to a real SMTP server on loopback
# (aiosmtpd, port 2525 as in configs/testnet/tracker.toml) that stores it in $dir/mail (a
# Maildir: one file per message in mail/new).
if grep -q ':2525$' <<<"$(ss -Htln 2>/dev/null | awk '{print $4}')"; then
  echo "note: something already listens on 127.0.0.1:2525; the tracker's mail goes there" >&2
elif "$REELNET_PYTHON" -c 'import aiosmtpd' >/dev/null 2>&1; then
  "$REELNET_PYTHON" -m aiosmtpd -n -l 127.0.0.1:2525 -c aiosmtpd.handlers.Mailbox "$dir/mail" \
    >"$dir/smtp.log" 2>&1 &
  echo $! >> "$dir/pids"
  echo "mail     smtp://127.0.0.1:2525 -> $dir/mail/new"
else
  echo "note: no aiosmtpd for $REELNET_PYTHON (scripts/setup.sh installs it); the tracker's mail is not delivered" >&2
fi

"$tracker_bin" --config "$dir/tracker.toml" \
  --data-dir "$dir/tracker" --listen "127.0.0.1:$tracker_port" \
  >"$dir/tracker.log" 2>&1 &
echo $! >> "$dir/pids"
wait_http "http://127.0.0.1:$tracker_port/healthz" 30
echo "tracker  http://127.0.0.1:$tracker_port   (log: $dir/tracker.log)"

web_args=()
[ -f web/dist/index.html ] && web_args=(--web-dir "$PWD/web/dist")
TESTNET_T0=$(date +%s.%N)
declare -a pid_of=()
for i in $(seq 1 "$nodes"); do
  boot=()
  [ "$i" -gt 1 ] && boot=(--bootstrap "/ip4/127.0.0.1/tcp/4001")
  config="$dir/node.toml"
  roles=(replica ingest)
  if [[ " ${EDGE_NODES:-} " == *" $i "* ]]; then
    boot+=(--edge)
    config="$dir/node-edge.toml"
    roles=(edge)
  fi
  # First start: enroll with an invite; later starts use the stored certificate.
  [ -s "$dir/node$i/membership.cert" ] || boot+=(--invite "$(invite "${roles[@]}")")
  "$node_bin" --config "$config" \
    --data-dir "$dir/node$i" --listen "127.0.0.1:$((8080 + i))" \
    --p2p "/ip4/127.0.0.1/tcp/$((4000 + i))" --quic "127.0.0.1:$((4400 + i))" \
    --tracker "http://127.0.0.1:$tracker_port" "${boot[@]}" "${web_args[@]}" \
    >"$dir/node$i.log" 2>&1 &
  pid_of[$i]=$!
  echo $! >> "$dir/pids"
  # Node 1 is everyone's bootstrap peer: let it listen before the others dial it.
  [ "$i" -eq 1 ] && wait_http "http://127.0.0.1:8081/healthz" 60
done
for i in $(seq 1 "$nodes"); do
  wait_http "http://127.0.0.1:$((8080 + i))/healthz" 60
  wait_admin "$dir/node$i" "${pid_of[$i]}" 30
  echo "node$i    http://127.0.0.1:$((8080 + i))   (log: $dir/node$i.log)"
done
data_of() { echo "$dir/node$1"; }
wait_mesh "$nodes" "${MESH_WAIT_SECS:-$((60 + 3 * nodes))}" data_of
started_ok=1
