#!/usr/bin/env bash
# A reelnet testnet in network namespaces, so a test can cut a node off and heal it.
#
#   testnet/netns.sh up -n N [--release]   start (N: 1-200, default 3)
#   testnet/netns.sh down [--wipe]        stop everything, delete namespaces (and data)
#   testnet/netns.sh cut I                isolate node I (its link to the hub goes down)
#   testnet/netns.sh heal I               reconnect node I
#   testnet/netns.sh exec I CMD [ARG...]  run CMD inside node I's namespace (0 = the hub)
#   testnet/netns.sh status I             node I's /admin/v1/status JSON
#
# Layout: a hub namespace `$NETNS_PREFIX-hub` holds a Linux bridge `br0` (198.18.0.1/24,
# the tracker listens there on :7070); node i lives in `$NETNS_PREFIX-n<i>` with `eth0`
# = 198.18.0.<10+i>/24, the other end of a veth pair whose hub end `v<i>` is a bridge port.
# Each node listens on its own address: gateway :8080, libp2p tcp/4001, QUIC udp/4433, and
# joins through node 1. Addresses come from the benchmarking range 198.18.0.0/15; nothing is
# connected to the host's own namespace, so parallel testnets (different NETNS_PREFIX and
# TESTNET_DIR) cannot collide and no traffic leaves the namespaces. A node's admin API
# binds 127.0.0.1 inside its namespace: reach it with `exec`/`status`.
#
# NAT_NODES="4 5" puts those nodes (never node 1) behind a home router each, as in the WAN
# testnet (testnet/wan.sh): namespace `$NETNS_PREFIX-r<i>` holds `wan0` = 198.18.0.<10+i>
# (the hub end `v<i>` is its bridge port, so cut/heal and link shaping act on the router's
# uplink) and `lan0` = 198.18.<100+i>.1/24; the node's `eth0` = 198.18.<100+i>.10 with the
# router as default route. nftables on the router: masquerade out of wan0 (endpoint-
# independent mapping), forward what the LAN started, drop everything else inbound. Those
# nodes get the NAT traversal keys (AutoNAT on, node 1 as their relay; node 1 runs
# relay_server = "on"); the others keep the flat hub.
#
# Environment: TESTNET_DIR (default .testnet-netns/; data dirs node<i>/, tracker/, logs,
# the state file), NETNS_PREFIX (default "reelnet"; only read by `up`, the others read the
# state file), NODE_BIN / TRACKER_BIN (default $CARGO_TARGET_DIR/{debug,release}/...),
# MESH_WAIT_SECS (default 60 + 3 per node). Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN).
# `up` removes everything it made when it fails; `down` removes processes, namespaces and
# links.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. testnet/lib.sh

dir="${TESTNET_DIR:-$PWD/.testnet-netns}"
state="$dir/netns.state"
subnet=198.18.0
hub_ip="$subnet.1"
# A node's own address: its LAN address behind a router (NAT_NODES), else on the hub.
node_ip() {
  case " ${nat_nodes:-} " in
    *" $1 "*) echo "198.18.$((100 + $1)).10" ;;
    *) echo "$subnet.$((10 + $1))" ;;
  esac
}

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

load_state() {
  [ -f "$state" ] || { echo "no namespace testnet in $dir (testnet/netns.sh up first)" >&2; exit 1; }
  prefix=$(sed -n 's/^prefix=//p' "$state")
  nodes=$(sed -n 's/^nodes=//p' "$state")
  nat_nodes=$(sed -n 's/^nat_nodes=//p' "$state")
  hub="$prefix-hub"
}
is_nat() { case " ${nat_nodes:-} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
# The namespace whose interface is the other end of the hub's v<i>.
uplink_ns() { if is_nat "$1"; then echo "$prefix-r$1"; else echo "$prefix-n$1"; fi; }
uplink_dev() { if is_nat "$1"; then echo wan0; else echo eth0; fi; }

ns_of() { if [ "$1" -eq 0 ]; then echo "$hub"; else echo "$prefix-n$1"; fi; }
in_ns() { local i="$1"; shift; ip netns exec "$(ns_of "$i")" "$@"; }
TESTNET_RUN_IN=in_ns
data_of() { echo "$dir/node$1"; }

check_index() {
  if ! [[ "${1:-}" =~ ^[0-9]+$ ]] || [ "$1" -lt "${2:-1}" ] || [ "$1" -gt "$nodes" ]; then
    echo "node index must be ${2:-1}-$nodes, got '${1:-}'" >&2
    exit 2
  fi
}

# Stops our processes (the pids file, then anything still inside our namespaces) and
# deletes our namespaces; deleting a namespace deletes the veth ends and bridge in it.
teardown() {
  local pids="" p ns
  [ -f "$dir/pids" ] && pids=$(cat "$dir/pids")
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$prefix-(hub|[nr][0-9]+)$" || true); do
    pids="$pids $(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
  done
  if [ -n "${pids// /}" ]; then
    kill $pids 2>/dev/null || true
    for _ in $(seq 1 100); do
      local alive=0
      for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
      [ $alive -eq 0 ] && break
      sleep 0.1
    done
    kill -9 $pids 2>/dev/null || true
  fi
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$prefix-(hub|[nr][0-9]+)$" || true); do
    ip netns del "$ns" 2>/dev/null || echo "could not delete namespace $ns" >&2
  done
  rm -f "$dir/pids" "$state"
}

cmd_up() {
  nodes=3 profile=debug tracker=1
  while [ $# -gt 0 ]; do
    case "$1" in
      -n) nodes="${2:?-n needs a number}"; shift 2 ;;
      --release) profile=release; shift ;;
      --no-tracker)
        echo "--no-tracker is gone: nodes join the network with an invite from the tracker" >&2
        exit 2 ;;
      *) echo "unknown argument $1" >&2; usage ;;
    esac
  done
  if ! [[ "$nodes" =~ ^[0-9]+$ ]] || [ "$nodes" -lt 1 ] || [ "$nodes" -gt 200 ]; then
    echo "-n must be 1-200" >&2
    exit 2
  fi
  prefix="${NETNS_PREFIX:-reelnet}"
  [[ "$prefix" =~ ^[A-Za-z0-9_]{1,40}$ ]] || { echo "NETNS_PREFIX must be 1-40 of [A-Za-z0-9_]" >&2; exit 2; }
  hub="$prefix-hub"
  local node_bin="${NODE_BIN:-$CARGO_TARGET_DIR/$profile/reelnet-node}"
  local tracker_bin="${TRACKER_BIN:-$CARGO_TARGET_DIR/$profile/reelnet-tracker}"
  [ -x "$node_bin" ] || { echo "missing $node_bin (cargo build --bins first)" >&2; exit 1; }
  if [ $tracker -eq 1 ] && [ ! -x "$tracker_bin" ]; then
    echo "missing $tracker_bin (cargo build --bins first)" >&2
    exit 1
  fi
  if [ -f "$state" ]; then
    echo "a namespace testnet is already set up from $dir; testnet/netns.sh down first" >&2
    exit 1
  fi
  if ip netns list 2>/dev/null | awk '{print $1}' | grep -qE "^$prefix-(hub|[nr][0-9]+)$"; then
    echo "namespaces named $prefix-* already exist; pick another NETNS_PREFIX or delete them" >&2
    exit 1
  fi
  # Probe first, with a clear message: everything below needs these privileges.
  local err
  if ! err=$(ip netns add "$hub" 2>&1); then
    echo "cannot create network namespaces (ip netns add: ${err}); this needs root or" \
      "CAP_NET_ADMIN + CAP_SYS_ADMIN" >&2
    exit 1
  fi
  up_ok=0
  trap '[ $up_ok -eq 1 ] || { echo "netns testnet start failed; removing what was made (logs in $dir)" >&2; teardown; }' EXIT
  trap 'exit 130' INT TERM
  mkdir -p "$dir"
  nat_nodes="${NAT_NODES:-}"
  local k
  for k in $nat_nodes; do
    if ! [[ "$k" =~ ^[0-9]+$ ]] || [ "$k" -lt 2 ] || [ "$k" -gt "$nodes" ]; then
      echo "NAT_NODES: each must be 2-$nodes (node 1 is the relay), got '$k'" >&2
      exit 2
    fi
  done
  if [ -n "$nat_nodes" ] && ! command -v nft >/dev/null; then
    echo "NAT_NODES needs nft (scripts/setup.sh installs nftables)" >&2
    exit 1
  fi
  printf 'prefix=%s\nnodes=%s\nnat_nodes=%s\n' "$prefix" "$nodes" "$nat_nodes" > "$state"
  : > "$dir/pids"

  ip -n "$hub" link set lo up
  ip -n "$hub" link add br0 type bridge
  ip -n "$hub" addr add "$hub_ip/24" dev br0
  ip -n "$hub" link set br0 up
  local i ns
  for i in $(seq 1 "$nodes"); do
    ns="$prefix-n$i"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    if is_nat "$i"; then
      local r="$prefix-r$i" lan="198.18.$((100 + i))"
      ip netns add "$r"
      ip -n "$r" link set lo up
      ip -n "$hub" link add "v$i" type veth peer name wan0 netns "$r"
      ip -n "$r" addr add "$subnet.$((10 + i))/24" dev wan0
      ip -n "$r" link set wan0 up
      ip -n "$r" link add lan0 type veth peer name eth0 netns "$ns"
      ip -n "$r" addr add "$lan.1/24" dev lan0
      ip -n "$r" link set lan0 up
      ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1
      router_nft "$r" "$lan.0/24" ""
      ip -n "$ns" addr add "$lan.10/24" dev eth0
      ip -n "$ns" link set eth0 up
      ip -n "$ns" route add default via "$lan.1"
    else
      ip -n "$hub" link add "v$i" type veth peer name eth0 netns "$ns"
      ip -n "$ns" addr add "$(node_ip "$i")/24" dev eth0
      ip -n "$ns" link set eth0 up
    fi
    ip -n "$hub" link set "v$i" master br0
    ip -n "$hub" link set "v$i" up
  done

  # The tracker's public URL (sign-in pages, token issuer) is the hub's address here.
  sed "s#localhost:7070#$hub_ip:7070#g" configs/testnet/tracker.toml > "$dir/tracker.toml"
  sed "s#localhost:7070#$hub_ip:7070#g" configs/testnet/node.toml > "$dir/node.toml"
  grep -qx 'mdns = false' "$dir/node.toml" || { echo "configs/testnet/node.toml no longer turns mdns off" >&2; exit 1; }
  if [ -n "$nat_nodes" ]; then
    # Node 1 relays for the nodes behind routers (their config is written once node 1's
    # peer id is known).
    sed 's#^mdns = false$#mdns = false\nupnp = false\nautonat = true\nrelay_server = "on"#' \
      "$dir/node.toml" > "$dir/node-relay.toml"
  fi
  if [ $tracker -eq 1 ]; then
    ip netns exec "$hub" "$tracker_bin" --config "$dir/tracker.toml" \
      --data-dir "$dir/tracker" --listen "$hub_ip:7070" >"$dir/tracker.log" 2>&1 &
    echo $! >> "$dir/pids"
    wait_http "http://$hub_ip:7070/healthz" 30 0
    echo "tracker  http://$hub_ip:7070 in $hub   (log: $dir/tracker.log)"
  fi
  TESTNET_T0=$(date +%s.%N)
  declare -a pid_of=()
  local ip
  for i in $(seq 1 "$nodes"); do
    ip=$(node_ip "$i")
    local boot=()
    [ "$i" -gt 1 ] && boot=(--bootstrap "/ip4/$(node_ip 1)/tcp/4001")
    # Every node enrolls with its own invite, made through the running tracker.
    if [ ! -s "$dir/node$i/membership.cert" ]; then
      boot+=(--invite "$(ip netns exec "$hub" "$tracker_bin" --config "$dir/tracker.toml" \
        --data-dir "$dir/tracker" node invite --role replica --role ingest --ttl 1h | tail -n 1)")
    fi
    local config="$dir/node.toml"
    [ -n "$nat_nodes" ] && [ "$i" -eq 1 ] && config="$dir/node-relay.toml"
    if is_nat "$i"; then
      if [ ! -s "$dir/node-nat.toml" ]; then
        local id1
        id1=$(sed -n '/swarm listening/s/.*peer_id=\([1-9A-HJ-NP-Za-km-z]*\).*/\1/p' "$dir/node1.log" | head -n 1)
        [[ "$id1" == 12D3* || "$id1" == Qm* ]] || { echo "no libp2p peer id in $dir/node1.log" >&2; exit 1; }
        sed "s#^mdns = false\$#mdns = false\nupnp = false\nautonat = true\nrelay_server = \"off\"\nrelays = [\"/ip4/$(node_ip 1)/tcp/4001/p2p/$id1\"]#" \
          "$dir/node.toml" > "$dir/node-nat.toml"
      fi
      config="$dir/node-nat.toml"
    fi
    ip netns exec "$prefix-n$i" "$node_bin" --config "$config" \
      --data-dir "$dir/node$i" --listen "$ip:8080" --p2p "/ip4/$ip/tcp/4001" \
      --quic "$ip:4433" --tracker "http://$hub_ip:7070" "${boot[@]}" \
      >"$dir/node$i.log" 2>&1 &
    pid_of[$i]=$!
    echo $! >> "$dir/pids"
    [ "$i" -eq 1 ] && wait_http "http://$(node_ip 1):8080/healthz" 60 1
  done
  for i in $(seq 1 "$nodes"); do
    wait_http "http://$(node_ip "$i"):8080/healthz" 60 "$i"
    wait_admin "$dir/node$i" "${pid_of[$i]}" 30
    echo "node$i    http://$(node_ip "$i"):8080 in $prefix-n$i   (log: $dir/node$i.log)"
  done
  wait_mesh "$nodes" "${MESH_WAIT_SECS:-$((60 + 3 * nodes))}" data_of
  up_ok=1
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  up) cmd_up "$@" ;;
  down)
    if [ -f "$state" ]; then load_state; teardown; fi
    [ "${1:-}" = "--wipe" ] && rm -rf "$dir"
    echo "netns testnet stopped"
    ;;
  cut | heal)
    load_state
    check_index "${1:-}"
    if [ "$cmd" = cut ]; then
      ip -n "$hub" link set "v$1" down
    else
      ip -n "$hub" link set "v$1" up
      # Back when both ends have carrier and the bridge port forwards (a few ms to ~1 s).
      for _ in $(seq 1 100); do
        if ip -n "$(uplink_ns "$1")" link show "$(uplink_dev "$1")" | grep -q LOWER_UP \
          && ip -n "$hub" link show "v$1" | grep -q 'state UP' \
          && bridge -n "$hub" link show dev "v$1" | grep -q 'state forwarding'; then
          break
        fi
        sleep 0.05
      done
      # Forget the neighbour entries that failed while cut off, so the first packets after
      # the heal do not fail with "no route to host".
      ip -n "$(uplink_ns "$1")" neigh flush dev "$(uplink_dev "$1")" 2>/dev/null || true
      for j in $(seq 1 "$nodes"); do
        ip -n "$(uplink_ns "$j")" neigh flush to "$subnet.$((10 + $1))" 2>/dev/null || true
      done
      ip -n "$hub" neigh flush to "$subnet.$((10 + $1))" 2>/dev/null || true
    fi
    echo "node$1 ${cmd/heal/healed}"
    ;;
  exec)
    load_state
    check_index "${1:-}" 0
    i="$1"; shift
    [ $# -gt 0 ] || usage
    in_ns "$i" "$@"
    ;;
  status)
    load_state
    check_index "${1:-}"
    node_status "$(data_of "$1")" "$1"
    echo
    ;;
  *) usage ;;
esac
