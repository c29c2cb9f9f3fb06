#!/usr/bin/env bash
# A reelnet testnet that looks like the internet: a public segment, home routers doing NAT,
# and a viewer on a shaped link, all in network namespaces (issue 17, docs/testnets.md).
#
#   testnet/wan.sh up [--release]          start everything (tracker, 2 public, 3 home nodes)
#   testnet/wan.sh down [--wipe]           stop and remove everything (and the data)
#   testnet/wan.sh exec NAME CMD [ARG...]  run CMD in NAME's namespace
#   testnet/wan.sh status NAME             node NAME's /admin/v1/status JSON
#   testnet/wan.sh info                    addresses, gateways and namespaces as JSON
#   testnet/wan.sh demo                    ingest a demo movie on home1 only, make an account
#   testnet/wan.sh punch [--attempts N]    bare-UDP hole punching between home nodes (JSON)
#
# NAME: tracker, pub1, pub2, home1, home2, home3, viewer, r1, r2, r3.
#
# Layout (addresses from the benchmarking range 198.18.0.0/15; nothing touches the host's
# own namespace, so nothing leaves the namespaces):
#
#   $P-pub     the "internet": bridge br0 198.18.0.1/24; the tracker listens on :7070, an
#              SMTP sink on 127.0.0.1:2525 takes its mail ($TESTNET_DIR/mail)
#   $P-pub1/2  public nodes, eth0 198.18.0.11 / .12 on br0 (edge role: they hold no share
#              of the library, so a movie ingested at home stays at home)
#   $P-r1..3   home routers: wan0 198.18.0.2k on br0, LAN bridge lan0 198.18.1k.1/24;
#              ip_forward=1, nftables table `wan`: masquerade LAN traffic out of wan0,
#              forward LAN->WAN and established/related back, drop everything else inbound.
#              r1, r2: `masquerade` (keeps the source port when free: endpoint-independent
#              mapping); r3: `masquerade fully-random` (a new port per destination: symmetric).
#              Filtering is address-and-port dependent everywhere (conntrack).
#   $P-home1..3 home nodes, eth0 198.18.1k.10/24 behind router k (default route via it);
#              their explicit addresses are these LAN addresses; they join through pub1
#   $P-viewer  a viewer, eth0 198.18.0.31/24 on br0 through a shaped link: WAN_DELAY_MS
#              (default 20) each way, WAN_LOSS percent (default 0.5) and WAN_RATE (default
#              20mbit) in each direction. With sch_netem: tc netem on both veth ends. Without
#              it (WAN_SHAPER=auto picks; =netem/=user force one): TAP devices and
#              testnet/wanlink.py doing the same in user space.
#
# Every node: gateway :8080, libp2p tcp/4001, QUIC udp/4433 on its own address; mDNS off.
# The generated node config ($TESTNET_DIR/node-{pub,home}.toml) carries the NAT traversal
# keys ([p2p] autonat/upnp/relay_server/relays) unless WAN_NAT_KEYS=0: public nodes serve as
# relays (relay_server = "on", their explicit public address), home nodes name pub1 and
# pub2 (with their peer ids) as relays; AutoNAT on, UPnP off (no UPnP gateway here).
#
# Environment: TESTNET_DIR (default .testnet-wan/), NETNS_PREFIX (default "rwan"; read by
# `up`, the rest reads the state file), NODE_BIN / TRACKER_BIN (default
# $CARGO_TARGET_DIR/{debug,release}/...), WAN_RATE, WAN_DELAY_MS, WAN_LOSS, WAN_SHAPER,
# WAN_NAT_KEYS (default 1), WAN_REPLICATION (copies of each movie; default the
# testnet config's 2: home1 and one other home node), WAN_PUBLIC_ROLES (default "edge"; "replica ingest" makes the public nodes
# full members, for a control run with DEMO_NODE=pub2), MESH_WAIT_SECS (default 60),
# DEMO_NODE (the node that ingests the demo movie, default home1), DEMO_MEDIA_DIR (default
# ~/.cache/reelnet/wan-media), DEMO_SECONDS (default 60), DEMO_SIZE (default 1920x1080, so
# the movie gets the whole ladder, 1080p to 360p). Needs root (CAP_NET_ADMIN,
# CAP_SYS_ADMIN) and nft (scripts/setup.sh installs nftables). `up` removes everything it
# made when it fails; `down` is idempotent and removes processes, namespaces (with their
# veths, bridges, TAPs and nft tables) and the state file.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. testnet/lib.sh

dir="${TESTNET_DIR:-$PWD/.testnet-wan}"
state="$dir/wan.state"
hub_ip=198.18.0.1
viewer_ip=198.18.0.31
names="tracker pub1 pub2 home1 home2 home3 viewer r1 r2 r3"
# wanlink.py and punch.py need only the standard library.
py="$REELNET_PYTHON"
[ -x "$py" ] || py=python3
nodes_list="pub1 pub2 home1 home2 home3"

usage() { sed -n '5,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "wan: $*" >&2; exit 1; }

load_state() {
  [ -f "$state" ] || die "no WAN testnet in $dir (testnet/wan.sh up first)"
  prefix=$(sed -n 's/^prefix=//p' "$state")
  shaper=$(sed -n 's/^shaper=//p' "$state")
  rate=$(sed -n 's/^rate=//p' "$state")
  delay_ms=$(sed -n 's/^delay_ms=//p' "$state")
  loss=$(sed -n 's/^loss=//p' "$state")
  profile=$(sed -n 's/^profile=//p' "$state")
}

ns_of() {
  case "$1" in
    tracker) echo "$prefix-pub" ;;
    pub1 | pub2 | home1 | home2 | home3 | viewer | r1 | r2 | r3) echo "$prefix-$1" ;;
    *) die "unknown name '$1' (one of: $names)" ;;
  esac
}
addr_of() {
  case "$1" in
    tracker) echo "$hub_ip" ;;
    pub[12]) echo "198.18.0.$((10 + ${1#pub}))" ;;
    home[1-3]) echo "198.18.$((10 + ${1#home})).10" ;;
    r[1-3]) echo "198.18.0.$((20 + ${1#r}))" ;;
    viewer) echo "$viewer_ip" ;;
  esac
}
# lib.sh's helpers address nodes by index: 1, 2 = pub1, pub2; 3..5 = home1..3.
name_of_index() { set -- $nodes_list "$1"; local i="${!#}"; shift "$((i - 1))"; echo "$1"; }
in_ns() { local n="$1"; shift; [[ "$n" =~ ^[0-9]+$ ]] && n=$(name_of_index "$n"); ip netns exec "$(ns_of "$n")" "$@"; }
TESTNET_RUN_IN=in_ns
data_of() { [[ "$1" =~ ^[0-9]+$ ]] && set -- "$(name_of_index "$1")"; echo "$dir/$1"; }
our_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' \
    | grep -E "^$prefix-(pub|pub[12]|r[1-3]|home[1-3]|viewer)$" || true
}

# Stops our processes (the pids file, then anything still inside our namespaces) and
# deletes our namespaces: their veths, bridges, TAPs and nft tables go with them.
teardown() {
  local pids="" p ns alive
  [ -f "$dir/pids" ] && pids=$(cat "$dir/pids")
  for ns in $(our_namespaces); do pids="$pids $(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"; done
  if [ -n "${pids// /}" ]; then
    kill $pids 2>/dev/null || true
    for _ in $(seq 1 100); do
      alive=0
      for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
      [ $alive -eq 0 ] && break
      sleep 0.1
    done
    kill -9 $pids 2>/dev/null || true
  fi
  for ns in $(our_namespaces); do
    ip netns del "$ns" 2>/dev/null || echo "could not delete namespace $ns" >&2
  done
  rm -f "$dir/pids" "$state"
}

# rate_kbit 20mbit -> 20000 (tc's units: bit, kbit, mbit, gbit).
rate_kbit() {
  local v="$1" n u
  [[ "$v" =~ ^([0-9]+(\.[0-9]+)?)(bit|kbit|mbit|gbit)$ ]] || die "WAN_RATE must look like 20mbit, got '$v'"
  n="${BASH_REMATCH[1]}" u="${BASH_REMATCH[3]}"
  case "$u" in
    bit) awk -v n="$n" 'BEGIN { printf "%.3f", n / 1000 }' ;;
    kbit) echo "$n" ;;
    mbit) awk -v n="$n" 'BEGIN { printf "%.3f", n * 1000 }' ;;
    gbit) awk -v n="$n" 'BEGIN { printf "%.3f", n * 1000000 }' ;;
  esac
}

has_netem() {
  local probe="$prefix-netemprobe" ok=1
  ip netns add "$probe" 2>/dev/null || return 1
  ip -n "$probe" link add a type veth peer name b 2>/dev/null \
    && ip netns exec "$probe" tc qdisc add dev a root netem delay 1ms 2>/dev/null && ok=0
  ip netns del "$probe" 2>/dev/null || true
  return $ok
}

# link NS_A DEV_A NS_B DEV_B: a veth pair (DEV_A in NS_A, DEV_B in NS_B), both ends up.
link() {
  ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}

node_config() {
  # $1: pub|home. The testnet's node config with the tracker on the hub; mDNS stays off.
  local kind="$1" out="$dir/node-$1.toml"
  sed "s#localhost:7070#$hub_ip:7070#g" configs/testnet/node.toml > "$out"
  grep -qx 'mdns = false' "$out" || die "configs/testnet/node.toml no longer turns mdns off"
  if [ -n "${WAN_REPLICATION:-}" ]; then
    [[ "$WAN_REPLICATION" =~ ^[1-9]$ ]] || die "WAN_REPLICATION must be 1-9"
    grep -q '^replication = ' "$out" || die "configs/testnet/node.toml has no replication key"
    sed -i "s#^replication = .*#replication = $WAN_REPLICATION#" "$out"
  fi
  if [ "${WAN_NAT_KEYS:-1}" = 1 ]; then
    local keys
    if [ "$kind" = pub ]; then
      keys='upnp = false\nautonat = true\nrelay_server = "on"'
    else
      keys="upnp = false\nautonat = true\nrelay_server = \"off\"\nrelays = [$2]"
    fi
    sed -i "s#^mdns = false\$#mdns = false\n$keys#" "$out"
  fi
  echo "$out"
}

start_node() {
  # start_node NAME CONFIG ROLE... : starts node NAME (enrolling with an invite on its first
  # start), joining through pub1 unless it is pub1.
  local name="$1" config="$2"; shift 2
  local ip args=() roles=()
  ip=$(addr_of "$name")
  for r in "$@"; do roles+=(--role "$r"); done
  [ "$name" != pub1 ] && args+=(--bootstrap "/ip4/$(addr_of pub1)/tcp/4001")
  [[ " $* " == *" edge "* ]] && args+=(--edge)
  if [ ! -s "$dir/$name/membership.cert" ]; then
    args+=(--invite "$(ip netns exec "$prefix-pub" "$tracker_bin" --config "$dir/tracker.toml" \
      --data-dir "$dir/tracker" node invite "${roles[@]}" --ttl 1h | tail -n 1)")
  fi
  [ -f web/dist/index.html ] && args+=(--web-dir "$PWD/web/dist")
  ip netns exec "$(ns_of "$name")" "$node_bin" --config "$config" --data-dir "$dir/$name" \
    --listen "$ip:8080" --p2p "/ip4/$ip/tcp/4001" --quic "$ip:4433" \
    --tracker "http://$hub_ip:7070" "${args[@]}" >"$dir/$name.log" 2>&1 &
  pid_of[$name]=$!
  echo $! >> "$dir/pids"
}

cmd_up() {
  profile=debug
  while [ $# -gt 0 ]; do
    case "$1" in
      --release) profile=release; shift ;;
      *) echo "unknown argument $1" >&2; usage ;;
    esac
  done
  prefix="${NETNS_PREFIX:-rwan}"
  [[ "$prefix" =~ ^[A-Za-z0-9_]{1,8}$ ]] || die "NETNS_PREFIX must be 1-8 of [A-Za-z0-9_]"
  node_bin="${NODE_BIN:-$CARGO_TARGET_DIR/$profile/reelnet-node}"
  tracker_bin="${TRACKER_BIN:-$CARGO_TARGET_DIR/$profile/reelnet-tracker}"
  [ -x "$node_bin" ] || die "missing $node_bin (cargo build --bins first)"
  [ -x "$tracker_bin" ] || die "missing $tracker_bin (cargo build --bins first)"
  command -v nft >/dev/null || die "no nft (apt-get install nftables, or scripts/setup.sh)"
  [ -f "$state" ] && die "a WAN testnet is already set up from $dir; testnet/wan.sh down first"
  [ -z "$(our_namespaces)" ] || die "namespaces named $prefix-* already exist; pick another NETNS_PREFIX or delete them"
  rate="${WAN_RATE:-20mbit}" delay_ms="${WAN_DELAY_MS:-20}" loss="${WAN_LOSS:-0.5}"
  local kbit
  kbit=$(rate_kbit "$rate")
  [[ "$delay_ms" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "WAN_DELAY_MS must be a number of ms, got '$delay_ms'"
  [[ "$loss" =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v l="$loss" 'BEGIN { exit !(l < 100) }' \
    || die "WAN_LOSS must be a percentage below 100, got '$loss'"
  local err
  if ! err=$(ip netns add "$prefix-pub" 2>&1); then
    die "cannot create network namespaces (ip netns add: $err); this needs root or CAP_NET_ADMIN + CAP_SYS_ADMIN"
  fi
  up_ok=0
  trap '[ $up_ok -eq 1 ] || { echo "WAN testnet start failed; removing what was made (logs in $dir)" >&2; teardown; }' EXIT
  trap 'exit 130' INT TERM
  shaper="${WAN_SHAPER:-auto}"
  case "$shaper" in
    auto) if has_netem; then shaper=netem; else shaper=user; fi ;;
    netem | user) ;;
    *) die "WAN_SHAPER must be auto, netem or user" ;;
  esac
  mkdir -p "$dir"
  printf 'prefix=%s\nshaper=%s\nrate=%s\ndelay_ms=%s\nloss=%s\nprofile=%s\n' \
    "$prefix" "$shaper" "$rate" "$delay_ms" "$loss" "$profile" > "$state"
  : > "$dir/pids"

  # The public segment.
  local pub="$prefix-pub" n k ns r
  ip -n "$pub" link set lo up
  ip -n "$pub" link add br0 type bridge
  ip -n "$pub" addr add "$hub_ip/24" dev br0
  ip -n "$pub" link set br0 up
  for n in pub1 pub2 r1 r2 r3 home1 home2 home3 viewer; do
    ip netns add "$prefix-$n"
    ip -n "$prefix-$n" link set lo up
  done
  for n in pub1 pub2; do
    link "$pub" "p$n" "$prefix-$n" eth0
    ip -n "$pub" link set "p$n" master br0
    ip -n "$prefix-$n" addr add "$(addr_of "$n")/24" dev eth0
  done

  # Home routers and the nodes behind them.
  for k in 1 2 3; do
    r="$prefix-r$k" ns="$prefix-home$k"
    link "$pub" "pr$k" "$r" wan0
    ip -n "$pub" link set "pr$k" master br0
    ip -n "$r" addr add "$(addr_of "r$k")/24" dev wan0
    ip -n "$r" link add lan0 type bridge
    ip -n "$r" addr add "198.18.$((10 + k)).1/24" dev lan0
    ip -n "$r" link set lan0 up
    link "$r" h0 "$ns" eth0
    ip -n "$r" link set h0 master lan0
    ip -n "$ns" addr add "$(addr_of "home$k")/24" dev eth0
    ip -n "$ns" route add default via "198.18.$((10 + k)).1"
    ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1
    router_nft "$r" "198.18.$((10 + k)).0/24" "$([ "$k" -eq 3 ] && echo fully-random)"
  done

  # The viewer's shaped link.
  local vns="$prefix-viewer"
  if [ "$shaper" = netem ]; then
    link "$pub" pvw "$vns" eth0
    ip -n "$pub" link set pvw master br0
    for end in "$pub pvw" "$vns eth0"; do
      set -- $end
      ip netns exec "$1" tc qdisc add dev "$2" root netem delay "${delay_ms}ms" loss "${loss}%" \
        rate "${kbit}kbit" limit 10000
    done
  else
    ip -n "$pub" tuntap add dev pvw mode tap
    ip -n "$pub" link set pvw master br0
    ip -n "$pub" link set pvw up
    ip -n "$vns" tuntap add dev eth0 mode tap
    ip -n "$vns" link set eth0 up
    # Real-time priority (when allowed) keeps the link's timing steady while nodes and
    # ffmpeg load the CPU.
    local rt=()
    chrt -f 10 true 2>/dev/null && rt=(chrt -f 10)
    "${rt[@]}" "$py" testnet/wanlink.py "$vns" eth0 "$pub" pvw --rate-kbit "$kbit" \
      --delay-ms "$delay_ms" --loss "$(awk -v l="$loss" 'BEGIN { print l / 100 }')" \
      >"$dir/wanlink.log" 2>&1 &
    echo $! >> "$dir/pids"
  fi
  ip -n "$vns" addr add "$viewer_ip/24" dev eth0
  local deadline=$(( $(date +%s) + 10 ))
  until ip netns exec "$vns" ping -c 1 -W 1 "$hub_ip" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "the viewer cannot reach $hub_ip through its link (log: $dir/wanlink.log)"
  done
  echo "viewer   $viewer_ip in $vns: $rate, ${delay_ms} ms each way, ${loss}% loss ($shaper)"

  # The tracker and its mail; then the nodes.
  sed -e "s#localhost:7070#$hub_ip:7070#g" -e "s#^web_url = .*#web_url = \"http://$(addr_of pub1):8080\"#" \
    configs/testnet/tracker.toml > "$dir/tracker.toml"
  if "$REELNET_PYTHON" -c 'import aiosmtpd' >/dev/null 2>&1; then
    ip netns exec "$pub" "$REELNET_PYTHON" -m aiosmtpd -n -l 127.0.0.1:2525 \
      -c aiosmtpd.handlers.Mailbox "$dir/mail" >"$dir/smtp.log" 2>&1 &
    echo $! >> "$dir/pids"
  else
    echo "note: no aiosmtpd for $REELNET_PYTHON (scripts/setup.sh); the tracker's mail is lost" >&2
  fi
  ip netns exec "$pub" "$tracker_bin" --config "$dir/tracker.toml" \
    --data-dir "$dir/tracker" --listen "$hub_ip:7070" >"$dir/tracker.log" 2>&1 &
  echo $! >> "$dir/pids"
  wait_http "http://$hub_ip:7070/healthz" 30 pub1
  echo "tracker  http://$hub_ip:7070 in $pub   (log: $dir/tracker.log)"

  TESTNET_T0=$(date +%s.%N)
  declare -gA pid_of=()
  local pub_roles=(${WAN_PUBLIC_ROLES:-edge})
  start_node pub1 "$(node_config pub)" "${pub_roles[@]}"
  wait_http "http://$(addr_of pub1):8080/healthz" 60 pub1
  wait_admin "$dir/pub1" "${pid_of[pub1]}" 30
  start_node pub2 "$dir/node-pub.toml" "${pub_roles[@]}"
  wait_http "http://$(addr_of pub2):8080/healthz" 60 pub2
  wait_admin "$dir/pub2" "${pid_of[pub2]}" 30
  # The relays: pub1 and pub2 with their libp2p peer ids (from their logs: the status JSON
  # has the node id, not the peer id).
  local relay="" id p
  for p in pub1 pub2; do
    id=$(sed -n '/swarm listening/s/.*peer_id=\([1-9A-HJ-NP-Za-km-z]*\).*/\1/p' "$dir/$p.log" | head -n 1)
    [[ "$id" == 12D3* || "$id" == Qm* ]] || die "no libp2p peer id in $dir/$p.log"
    relay="$relay${relay:+, }\"/ip4/$(addr_of "$p")/tcp/4001/p2p/$id\""
  done
  local home_config
  home_config=$(node_config home "$relay")
  for k in 1 2 3; do start_node "home$k" "$home_config" replica ingest; done
  for n in $nodes_list; do
    wait_http "http://$(addr_of "$n"):8080/healthz" 60 "$n"
    wait_admin "$dir/$n" "${pid_of[$n]}" 30
    echo "$n $(printf '%*s' $((8 - ${#n})) '')http://$(addr_of "$n"):8080 in $(ns_of "$n")   (log: $dir/$n.log)"
  done
  # Every node learns the others through pub1 (gossip); that needs no inbound connection.
  if ! wait_mesh 5 "${MESH_WAIT_SECS:-60}" data_of; then
    echo "note: not every node sees every other one yet (NAT); going on" >&2
  fi
  up_ok=1
}

cmd_info() {
  load_state
  local n gw="{}" ns="{}" addrs="{}"
  for n in $nodes_list; do gw=$(jq -c --arg n "$n" --arg u "http://$(addr_of "$n"):8080" '. + {($n): $u}' <<<"$gw"); done
  for n in $names; do
    ns=$(jq -c --arg n "$n" --arg v "$(ns_of "$n")" '. + {($n): $v}' <<<"$ns")
    addrs=$(jq -c --arg n "$n" --arg v "$(addr_of "$n")" '. + {($n): $v}' <<<"$addrs")
  done
  jq -n --arg dir "$dir" --arg prefix "$prefix" --arg tracker "http://$hub_ip:7070" \
    --argjson gateways "$gw" --argjson namespaces "$ns" --argjson addresses "$addrs" \
    --arg shaper "$shaper" --arg rate "$rate" --argjson delay "$delay_ms" --argjson loss "$loss" \
    --arg profile "$profile" \
    '{dir: $dir, prefix: $prefix, profile: $profile, tracker: $tracker, gateways: $gateways,
      namespaces: $namespaces, addresses: $addresses,
      lans: {r1: "198.18.11.0/24", r2: "198.18.12.0/24", r3: "198.18.13.0/24"},
      nat: {r1: "endpoint-independent", r2: "endpoint-independent", r3: "symmetric"},
      viewer_link: {shaper: $shaper, rate: $rate, delay_ms_each_way: $delay, loss_percent: $loss},
      ports: {gateway: 8080, p2p_tcp: 4001, quic_udp: 4433}}'
}

# ingest_demo NAME MEDIA_DIR SECONDS SIZE: encodes the test pattern (once, cached) and ingests it
# on node NAME from a seeder on NAME's own loopback.
ingest_demo() {
  local holder="$1" m="$2" seconds="$3" size="$4" h1
  h1=$(ns_of "$holder")
  mkdir -p "$m/torrents"
  if [ ! -s "$m/test-pattern.mp4" ]; then
    echo "==> encoding a ${seconds}s test pattern ($size)"
    ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "testsrc2=s=$size:r=25" \
      -f lavfi -i "sine=frequency=440:sample_rate=48000,volume=0.2" -t "$seconds" \
      -c:v libx264 -preset veryfast -pix_fmt yuv420p -g 50 -keyint_min 50 -b:v 4000k \
      -maxrate 6000k -bufsize 8000k -c:a aac -b:a 128k -ac 2 -movflags +faststart "$m/tmp.mp4"
    mv "$m/tmp.mp4" "$m/test-pattern.mp4"
  fi
  jq -n --argjson runtime $(( (seconds + 59) / 60 )) '{title: "Night of the Test Pattern",
    year: 2026, overview: "A test pattern that only home nodes hold.", genres: ["Documentary"],
    runtime_min: $runtime}' > "$m/meta.json"
  rm -f "$m/torrents/test-pattern.mp4.torrent"
  ip netns exec "$h1" "$node_bin" seed "$m/test-pattern.mp4" --listen 127.0.0.1:6881 \
    --torrent-dir "$m/torrents" >"$dir/seed.log" 2>&1 &
  local seed_pid=$!
  echo "$seed_pid" >> "$dir/pids"
  local deadline=$(( $(date +%s) + 60 ))
  until [ -s "$m/torrents/test-pattern.mp4.torrent" ]; do
    kill -0 "$seed_pid" 2>/dev/null || die "the seeder stopped: $(tail -5 "$dir/seed.log")"
    [ "$(date +%s)" -lt "$deadline" ] || die "no torrent from the seeder in 60 s"
    sleep 0.1
  done
  echo "==> ingesting on $holder (its own loopback seeder)"
  NO_COLOR=1 ip netns exec "$h1" "$node_bin" --config "$dir/node-home.toml" --data-dir "$dir/$holder" \
    ingest "$m/torrents/test-pattern.mp4.torrent" --peer 127.0.0.1:6881 --meta "$m/meta.json"
  kill "$seed_pid" 2>/dev/null || true
}

# held_movie NAME: the first movie node NAME holds completely (empty when none).
held_movie() {
  node_status "$dir/$1" "$1" | jq -r '[.manifests[]? | select(.complete) | .movie_id] | first // empty'
}

# demo: one short movie, ingested on DEMO_NODE (default home1) only, and a verified account; writes
# $TESTNET_DIR/demo.env (nothing to do when it exists).
cmd_demo() {
  load_state
  node_bin="${NODE_BIN:-$CARGO_TARGET_DIR/$profile/reelnet-node}"
  if [ -s "$dir/demo.env" ]; then
    echo "==> the demo is already loaded ($dir/demo.env)"
    return 0
  fi
  local seconds="${DEMO_SECONDS:-60}" media="${DEMO_MEDIA_DIR:-${REELNET_CACHE:-$HOME/.cache/reelnet}/wan-media}"
  local id holder="${DEMO_NODE:-home1}"
  [[ " $nodes_list " == *" $holder "* ]] || die "DEMO_NODE must be one of: $nodes_list"
  id=$(held_movie "$holder")
  local size="${DEMO_SIZE:-1920x1080}"
  [[ "$size" =~ ^[0-9]+x[0-9]+$ ]] || die "DEMO_SIZE must look like 1920x1080"
  [ -n "$id" ] || ingest_demo "$holder" "$media/test-pattern-$size-${seconds}s" "$seconds" "$size"
  id=$(held_movie "$holder")
  [ -n "$id" ] || die "$holder holds no complete movie after the ingest"

  # The account, through the tracker's JSON API (from the public segment).
  local email="${DEMO_EMAIL:-viewer-$(date +%s)@reelnet.test}" password tracker="http://$hub_ip:7070" pub
  pub=$(ns_of tracker)
  password="wan-$(head -c 9 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 10)"
  local body
  body=$(jq -n --arg e "$email" --arg p "$password" '{email: $e, password: $p, display_name: "WAN viewer"}')
  ip netns exec "$pub" curl -fsS -m 10 -o /dev/null -H 'Content-Type: application/json' -d "$body" \
    "$tracker/api/v1/auth/register" || die "registering $email failed"
  local token=""
  for _ in $(seq 1 200); do
    token=$(python3 - "$dir/mail" "$email" <<'PY'
import email, email.policy, pathlib, re, sys
maildir, to = pathlib.Path(sys.argv[1]), sys.argv[2]
for sub in ("new", "cur"):
    for p in sorted((maildir / sub).glob("*"), key=lambda p: p.stat().st_mtime, reverse=True):
        msg = email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        if to not in str(msg["To"]):
            continue
        m = re.search(r"/verify\?token=([A-Za-z0-9_-]+)", msg.get_body().get_content())
        if m:
            print(m.group(1))
            sys.exit(0)
PY
)
    [ -n "$token" ] && break
    sleep 0.1
  done
  [ -n "$token" ] || die "no verification mail in $dir/mail after 20 s"
  ip netns exec "$pub" curl -fsS -m 10 -o /dev/null -H 'Content-Type: application/json' \
    -d "$(jq -n --arg t "$token" '{token: $t}')" "$tracker/api/v1/auth/verify" || die "verifying $email failed"
  cat > "$dir/demo.env" <<EOF
DEMO_URL=http://$(addr_of pub1):8080
DEMO_TRACKER=$tracker
DEMO_EMAIL=$email
DEMO_PASSWORD=$password
DEMO_MOVIES="$id"
DEMO_HOLDER=$holder
DEMO_VIEWER_NS=$(ns_of viewer)
EOF
  chmod 600 "$dir/demo.env"
  echo "==> movie $id on $holder only; account $email; $dir/demo.env"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  up) cmd_up "$@" ;;
  down)
    if [ -f "$state" ]; then
      load_state
    else
      prefix="${NETNS_PREFIX:-rwan}"
    fi
    teardown
    [ "${1:-}" = "--wipe" ] && rm -rf "$dir"
    echo "WAN testnet stopped"
    ;;
  exec)
    load_state
    [ $# -ge 2 ] || usage
    n="$1"; shift
    in_ns "$n" "$@"
    ;;
  status)
    load_state
    [[ " $nodes_list " == *" ${1:-} "* ]] || die "status needs a node name: $nodes_list"
    node_status "$dir/$1" "$1"
    echo
    ;;
  info) cmd_info ;;
  demo) cmd_demo ;;
  punch)
    load_state
    "$py" testnet/punch.py "$prefix" "$@"
    ;;
  *) usage ;;
esac
