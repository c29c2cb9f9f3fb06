# Shared by testnet/up.sh and testnet/netns.sh (sourced, not run): HTTP readiness checks
# and the "every node sees every other node" wait, through each node's admin API
# (`GET /admin/v1/status`, bearer token from `admin.json` in the node's data directory).
#
# Callers set TESTNET_RUN_IN to a function name that runs a command for node i (for
# example inside its network namespace), or leave it unset to run commands directly.

command -v jq >/dev/null || {
  echo "==> installing jq" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq jq >/dev/null
}

# node_run I CMD... : runs CMD for node I (in its namespace when TESTNET_RUN_IN is set).
node_run() {
  local i="$1"; shift
  if [ -n "${TESTNET_RUN_IN:-}" ]; then "$TESTNET_RUN_IN" "$i" "$@"; else "$@"; fi
}

# wait_http URL SECONDS [I] : waits until URL answers 2xx (from node I's side).
wait_http() {
  local url="$1" secs="$2" i="${3:-0}"
  local deadline=$(( $(date +%s) + secs ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    node_run "$i" curl -fsS -m 2 -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out after ${secs}s waiting for $url" >&2
  return 1
}

# node_status DATA_DIR I : prints node I's /admin/v1/status JSON (fails when unavailable).
node_status() {
  local data="$1" i="$2" url token
  [ -f "$data/admin.json" ] || return 1
  url=$(jq -r .url "$data/admin.json") && token=$(jq -r .token "$data/admin.json") || return 1
  node_run "$i" curl -fsS -m 2 -H "Authorization: Bearer $token" "$url/admin/v1/status"
}

# status_endpoint_code DATA_DIR I : the HTTP status code of node I's status route.
status_endpoint_code() {
  local data="$1" i="$2" url token
  url=$(jq -r .url "$data/admin.json") && token=$(jq -r .token "$data/admin.json") || return 1
  node_run "$i" curl -sS -m 2 -o /dev/null -w '%{http_code}' \
    -H "Authorization: Bearer $token" "$url/admin/v1/status" || echo 000
}

# peers_seen DATA_DIR I : how many *other* live nodes node I knows (-1 when unknown).
peers_seen() {
  node_status "$1" "$2" 2>/dev/null \
    | jq -r '.node_id as $me | [.live_nodes[]? | select(.node_id != $me)] | length' 2>/dev/null \
    || echo -1
}

# wait_admin DATA_DIR PID SECONDS : waits until the node with PID has written its admin.json.
wait_admin() {
  local data="$1" pid="$2" secs="$3"
  local deadline=$(( $(date +%s) + secs ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if [ -f "$data/admin.json" ] && [ "$(jq -r .pid "$data/admin.json" 2>/dev/null)" = "$pid" ]; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "node (pid $pid) exited; see its log" >&2; return 1; }
    sleep 0.1
  done
  echo "timed out waiting for $data/admin.json" >&2
  return 1
}

# wait_mesh N SECONDS DATA_DIR_OF_FN : waits until each of nodes 1..N sees the N-1 others,
# polling their status every 200 ms; prints how long it took since $TESTNET_T0 (date +%s.%N
# when the nodes were started; default: now). DATA_DIR_OF_FN is a function
# printing node i's data directory. Returns 0 (with a note) when the status route is absent.
wait_mesh() {
  local n="$1" secs="$2" data_of="$3"
  local code
  code=$(status_endpoint_code "$("$data_of" 1)" 1)
  if [ "$code" = "404" ]; then
    echo "note: this node build has no /admin/v1/status; not waiting for the mesh" >&2
    return 0
  fi
  local start="${TESTNET_T0:-$(date +%s.%N)}" now i seen ok
  local deadline=$(( $(date +%s) + secs ))
  declare -A done_=()
  while :; do
    ok=1
    for i in $(seq 1 "$n"); do
      [ -n "${done_[$i]:-}" ] && continue
      seen=$(peers_seen "$("$data_of" "$i")" "$i")
      if [ "$seen" -ge $(( n - 1 )) ]; then done_[$i]=1; else ok=0; fi
    done
    [ $ok -eq 1 ] && break
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "timed out after ${secs}s: nodes not yet seeing all $((n - 1)) others:" >&2
      for i in $(seq 1 "$n"); do
        [ -z "${done_[$i]:-}" ] && echo "  node$i sees $(peers_seen "$("$data_of" "$i")" "$i")" >&2
      done
      return 1
    fi
    sleep 0.2
  done
  now=$(date +%s.%N)
  awk -v n="$n" -v a="$start" -v b="$now" \
    'BEGIN { printf "all %d nodes see each other %.2f s after the first node started\n", n, b - a }'

}

# A home router's nftables (testnet/wan.sh; testnet/netns.sh NAT_NODES): NAT for its LAN,
# and a NAT's filtering (only what the LAN started comes back in). $3: "" (endpoint-
# independent mapping) or "fully-random" (symmetric).
router_nft() {
  local ns="$1" lan="$2" flags="$3"
  ip netns exec "$ns" nft -f - <<EOF
table ip wan {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" ip saddr $lan masquerade $flags
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "lan0" oifname "wan0" ip saddr $lan accept
  }
  chain input {
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    iifname { "lo", "lan0" } accept
  }
}
EOF
}
