#!/usr/bin/env bash
# Chaos soak (issue 20, item 1): a tracker and 5 nodes in network namespaces
# (testnet/netns.sh), a small library plus a movie still being ingested from a throttled
# torrent, 5 headless hls.js-compatible viewers (web/e2e/soakplayer.mjs), one per node, each
# playing, seeking and saving progress, and one watch-party room with members on nodes 1 and
# 2; meanwhile a fixed, seeded schedule of faults:
#
#   kill    kill -9 a replica node (one holding a full copy), restart it K s later
#   cut     cut one node off the network (its veth goes down) for C s, then heal it
#   tracker kill -9 the tracker, restart it 2 s later
#   disk    fill one node's disk (its data directory is a tmpfs of SOAK_DISK_MB) to the last
#           byte for F s, then free it
#   slow    slow one node's link (both directions) for S s: tc netem (delay 80 ms, 1 Mbit/s)
#           when the kernel has sch_netem, else tbf at 1 Mbit/s (no delay; this project's
#           Firecracker VMs have no netem); the top rendition no longer fits through it
#
#   scripts/soak.sh [--minutes N] [--seed S] [--profile ci|full] [--release] [--keep]
#
# Profiles: full (default; the 10-minute bench): K=20, C=30, F=60, S=60, faults spread over
# the whole soak, each kind at least once and more when the soak is long; 120 s movies.
# ci (the 1-minute suite step): every kind exactly once with shorter waits (K=10, C=15,
# F=10, S=10), 40 s movies (the viewers loop).
#
# Behind NAT: the full profile puts nodes 4 and 5 behind a home router each (testnet/netns.sh
# NAT_NODES: masquerade, inbound dropped; AutoNAT finds them private, node 1 relays for
# them, and a cut or slowed link is the router's uplink); the ci profile keeps every node on
# the flat hub. SOAK_NAT_NODES="..." overrides ("" for none).
#
# Viewers run inside their node's namespace (a viewer on the same LAN as its node): a cut
# node keeps serving its own viewer from what it holds, and its viewer loses the tracker.
# Every 2 s a sampler records each process's RSS, each node's catalog (ids and availability)
# and which nodes hold full copies of which movies. At the end the faults are healed, every
# viewer reads its acknowledged progress back, and scripts/soak-report.mjs prints the table
# and writes $SOAK_DIR/report.json; the exit status is the report's (non-zero when a check
# fails). Needs root, ffmpeg, node and the debug (or --release) binaries
# (cargo build -p reelnet-node -p reelnet-tracker --bins).
#
# Environment: SOAK_DIR (run directory, default a fresh /tmp/reelnet-soak.*; kept with
# --keep or on failure), SOAK_MEDIA_DIR (encoded movies, cached; default
# ~/.cache/reelnet/soak-media), SOAK_DISK_MB (default 512), NETNS_PREFIX (default soak),
# SOAK_NAT_NODES (nodes behind a router; default "4 5" for full, none for ci),
# SOAK_KILL_SECS / SOAK_CUT_SECS / SOAK_DISK_SECS / SOAK_SLOW_SECS (a fault's length, to
# override the profile's: e.g. SOAK_KILL_SECS=45 outlasts a viewer's 30 s buffer and fails).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

minutes=10 seed=${SOAK_SEED:-$(date +%s)} profile=full release=() keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="${2:?--minutes needs a number}"; shift 2 ;;
    --seed) seed="${2:?--seed needs a number}"; shift 2 ;;
    --profile) profile="${2:?--profile needs ci or full}"; shift 2 ;;
    --release) release=(--release); shift ;;
    --keep) keep=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ "$minutes" =~ ^[0-9]+$ ]] && [ "$minutes" -ge 1 ] || { echo "--minutes must be a whole number >= 1" >&2; exit 2; }
[[ "$seed" =~ ^[0-9]+$ ]] || { echo "--seed must be a number" >&2; exit 2; }
case "$profile" in ci | full) ;; *) echo "--profile must be ci or full" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "soak: needs root (network namespaces, tmpfs, tc)" >&2; exit 1; }
command -v ffmpeg >/dev/null || { echo "soak: no ffmpeg (scripts/setup.sh installs it)" >&2; exit 1; }
command -v node >/dev/null || { echo "soak: no node (scripts/setup.sh installs it)" >&2; exit 1; }

bin_profile=debug
[ ${#release[@]} -gt 0 ] && bin_profile=release
node_bin="${NODE_BIN:-$CARGO_TARGET_DIR/$bin_profile/reelnet-node}"
tracker_bin="${TRACKER_BIN:-$CARGO_TARGET_DIR/$bin_profile/reelnet-tracker}"
for b in "$node_bin" "$tracker_bin"; do
  [ -x "$b" ] || { echo "soak: missing $b (cargo build -p reelnet-node -p reelnet-tracker --bins${release:+ --release})" >&2; exit 1; }
done
node_bin=$(realpath "$node_bin") tracker_bin=$(realpath "$tracker_bin")
export NODE_BIN="$node_bin" TRACKER_BIN="$tracker_bin"

nodes=5
soak_secs=$(( minutes * 60 ))
if [ "$profile" = ci ]; then
  kill_down=10 cut_secs=15 disk_secs=10 slow_secs=10 movie_secs=40
else
  kill_down=20 cut_secs=30 disk_secs=60 slow_secs=60 movie_secs=120
fi
kill_down=${SOAK_KILL_SECS:-$kill_down} cut_secs=${SOAK_CUT_SECS:-$cut_secs}
disk_secs=${SOAK_DISK_SECS:-$disk_secs} slow_secs=${SOAK_SLOW_SECS:-$slow_secs}
run="${SOAK_DIR:-$(mktemp -d /tmp/reelnet-soak.XXXXXX)}"
mkdir -p "$run"
net="$run/net"
media="${SOAK_MEDIA_DIR:-$HOME/.cache/reelnet/soak-media}"
disk_mb="${SOAK_DISK_MB:-512}"
export TESTNET_DIR="$net" NETNS_PREFIX="${NETNS_PREFIX:-soak}"
prefix="$NETNS_PREFIX"
hub="$prefix-hub"
hub_ip=198.18.0.1
# Nodes behind a home router each (testnet/netns.sh NAT_NODES; node 1 relays for them):
# the full profile puts nodes 4 and 5 there, the 1-minute one none (SOAK_NAT_NODES overrides).
if [ "$profile" = full ]; then nat_nodes="${SOAK_NAT_NODES-4 5}"; else nat_nodes="${SOAK_NAT_NODES-}"; fi
node_ip() {
  case " $nat_nodes " in
    *" $1 "*) echo "198.18.$((100 + $1)).10" ;;
    *) echo "198.18.0.$((10 + $1))" ;;
  esac
}
ns() { echo "$prefix-n$1"; }
t_start=$(date +%s)
say() { printf '==> [%4ss] %s\n' "$(( $(date +%s) - t_start ))" "$*"; }
events="$run/events.jsonl"
: > "$events"
event() { # event KIND PHASE NODE [EXTRA_JSON]
  printf '{"t":%s,"kind":"%s","phase":"%s","node":%s%s}\n' "$(date +%s%3N)" "$1" "$2" "${3:-null}" "${4:+,$4}" >> "$events"
}

# The seeded schedule: bash's RANDOM repeats its sequence for a given seed.
RANDOM=$seed
# The node whose disk fills (its data directory is a tmpfs), the node cut off, the slowed
# link; nodes 1 and 2 hold the party, any may be the killed replica (picked among holders).
disk_node=$(( RANDOM % nodes + 1 ))
cut_node=$(( RANDOM % nodes + 1 ))
while [ "$cut_node" -eq "$disk_node" ]; do cut_node=$(( RANDOM % nodes + 1 )); done
slow_node=$(( RANDOM % nodes + 1 ))
while [ "$slow_node" -eq "$cut_node" ] || [ "$slow_node" -eq "$disk_node" ]; do slow_node=$(( RANDOM % nodes + 1 )); done
# Fault start times: the soak is cut into slots, one fault per slot, kinds in a seeded order
# (each kind once per round; full soaks of several minutes get several rounds).
kinds=(kill cut tracker disk slow)
rounds=1
[ "$profile" = full ] && rounds=$(( minutes >= 6 ? 2 : 1 ))
schedule=()
for r in $(seq 1 "$rounds"); do
  order=("${kinds[@]}")
  for i in 4 3 2 1; do j=$(( RANDOM % (i + 1) )); tmp=${order[$i]}; order[$i]=${order[$j]}; order[$j]=$tmp; done
  schedule+=("${order[@]}")
done
slots=${#schedule[@]}
# Leave the first 10 % of the soak for warm-up and the last slot's fault room to end.
slot=$(( (soak_secs * 9 / 10 - 5) / slots ))
declare -a at=()
for k in $(seq 0 $(( slots - 1 ))); do
  jitter=$(( slot > 6 ? RANDOM % (slot / 3) : 0 ))
  at[$k]=$(( soak_secs / 10 + k * slot + jitter ))
done
{
  echo "seed=$seed profile=$profile minutes=$minutes nodes=$nodes disk_node=$disk_node cut_node=$cut_node slow_node=$slow_node nat_nodes=${nat_nodes// /,}"
  for k in $(seq 0 $(( slots - 1 ))); do echo "  t+${at[$k]}s ${schedule[$k]}"; done
} | tee "$run/schedule.txt"

# ---- teardown ----------------------------------------------------------------------------
bg_pids=()
finished=0
cleanup() {
  local rc=$?
  set +e
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
  testnet/netns.sh down >/dev/null 2>&1
  mountpoint -q "$net/node$disk_node" && umount -l "$net/node$disk_node"
  if [ $keep -eq 0 ] && [ $finished -eq 1 ] && [ $rc -eq 0 ]; then
    rm -rf "$run"
  else
    echo "soak: run directory kept: $run (logs: net/*.log, players/*.log)" >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. network --------------------------------------------------------------------------
mkdir -p "$net/node$disk_node"
mount -t tmpfs -o "size=${disk_mb}m" soakdisk "$net/node$disk_node"
say "starting a tracker and $nodes nodes in namespaces ($prefix-*); node $disk_node's data on a ${disk_mb} MiB tmpfs"
NAT_NODES="$nat_nodes" testnet/netns.sh up -n "$nodes" "${release[@]}" > "$run/up.log" 2>&1 || { cat "$run/up.log" >&2; exit 1; }
grep -E '^(all|tracker)' "$run/up.log" || true
in_ns() { local i="$1"; shift; if [ "$i" -eq 0 ]; then ip netns exec "$hub" "$@"; else ip netns exec "$(ns "$i")" "$@"; fi; }
admin_get() { # admin_get I PATH: node I's admin API
  local d="$net/node$1"
  in_ns "$1" curl -fsS -m 3 -H "Authorization: Bearer $(jq -r .token "$d/admin.json")" "$(jq -r .url "$d/admin.json")$2"
}
tracker_cli() { in_ns 0 "$tracker_bin" --config "$net/tracker.toml" --data-dir "$net/tracker" "$@"; }

# ---- 2. media ----------------------------------------------------------------------------
mkdir -p "$media"
encode() { # encode SLUG SOURCE TONE SECONDS
  local out="$media/$1-$4s.mp4"
  if [ ! -s "$out" ]; then
    ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "$2" \
      -f lavfi -i "sine=frequency=$3:sample_rate=48000,volume=0.2" -t "$4" \
      -c:v libx264 -preset veryfast -pix_fmt yuv420p -g 50 -keyint_min 50 -b:v 1000k \
      -maxrate 1500k -bufsize 2000k -c:a aac -b:a 128k -ac 2 -movflags +faststart "$out.tmp.mp4"
    mv "$out.tmp.mp4" "$out"
  fi
  echo "$out"
}
say "encoding the movies (cached in $media)"
m1=$(encode soak-testsrc "testsrc2=s=854x480:r=25" 440 "$movie_secs")
m2=$(encode soak-mandelbrot "mandelbrot=s=427x240:r=25,scale=854:480" 330 "$movie_secs")
# The movie still being ingested during the soak: longer, seeded slowly.
[ "$profile" = ci ] && live_secs=60 || live_secs=300
m3=$(encode soak-life "life=s=854x480:r=25:mold=10:ratio=0.1:life_color=#22c55e:death_color=#14532d" 550 "$live_secs")
meta() { jq -n --arg t "$1" --argjson y "$2" '{title: $t, year: $y, overview: "Chaos soak movie.", genres: ["Documentary"], runtime_min: 2}' > "$run/$3.json"; }
meta "Soak Test Pattern" 2026 m1
meta "Soak Mandelbrot" 2025 m2
meta "Soak Game of Life" 2024 m3

# ---- 3. library: two movies ingested before the soak, one still ingesting during it -----
mkdir -p "$run/torrents" "$run/torrents-live"
seed_wait() { # seed_wait DIR FILE PID
  local t="$1/$(basename "$2").torrent"
  for _ in $(seq 1 600); do
    [ -s "$t" ] && { echo "$t"; return 0; }
    kill -0 "$3" 2>/dev/null || { echo "soak: a seeder stopped" >&2; return 1; }
    sleep 0.1
  done
  echo "soak: no $t after 60 s" >&2
  return 1
}
in_ns 0 "$node_bin" seed "$m1" "$m2" --listen "$hub_ip:6881" --torrent-dir "$run/torrents" >"$run/seed.log" 2>&1 &
seed_pid=$!; echo $seed_pid >> "$net/pids"
t1=$(seed_wait "$run/torrents" "$m1" $seed_pid)
t2=$(seed_wait "$run/torrents" "$m2" $seed_pid)
ingest() { # ingest NODE TORRENT PEER META
  NO_COLOR=1 in_ns "$1" "$node_bin" --config "$net/node.toml" --data-dir "$net/node$1" \
    ingest "$2" --peer "$3" --meta "$4"
}
say "ingesting the library on node 1"
ingest 1 "$t1" "$hub_ip:6881" "$run/m1.json" > "$run/ingest1.log" 2>&1 &
i1=$!
ingest 1 "$t2" "$hub_ip:6881" "$run/m2.json" > "$run/ingest2.log" 2>&1 &
i2=$!
wait $i1 || { tail -20 "$run/ingest1.log" >&2; exit 1; }
wait $i2 || { tail -20 "$run/ingest2.log" >&2; exit 1; }

# Viewer accounts (verified, through the running tracker), one per viewer.
password="soak-$(head -c 9 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 12)"
for i in $(seq 1 "$nodes"); do
  tracker_cli user add "viewer$i@soak.reelnet.local" --password "$password" --verified >/dev/null
done

catalog() { in_ns "$1" curl -fsS -m 3 "http://$(node_ip "$1"):8080/api/v1/catalog?per_page=100"; }
say "waiting until every node lists both movies complete"
deadline=$(( $(date +%s) + 180 ))
while :; do
  ok=1
  for i in $(seq 1 "$nodes"); do
    n=$(catalog "$i" 2>/dev/null | jq '[.results[] | select(.title | startswith("Soak ")) | select(.availability.state == "complete")] | length' 2>/dev/null || echo 0)
    [ "${n:-0}" -ge 2 ] || ok=0
  done
  [ $ok -eq 1 ] && break
  [ "$(date +%s)" -lt "$deadline" ] || { echo "soak: the catalogs do not list both movies complete after 180 s" >&2; exit 1; }
  sleep 1
done
movies=$(catalog 1 | jq -c '[.results[] | select(.title == "Soak Test Pattern" or .title == "Soak Mandelbrot") | .id]')
replication=$(awk -F= '/^replication/ {gsub(/ /, "", $2); print $2}' "$net/node.toml")
replication=${replication:-2}
# copies_json: {"movie": [nodes holding a full copy]} from every live node's admin status.
copies_json() {
  local i
  for i in $(seq 1 "$nodes"); do
    admin_get "$i" /admin/v1/status 2>/dev/null \
      | jq -c --argjson i "$i" '[.manifests[]? | select(.complete and .held_segments == .total_segments and .responsible and (.released | not)) | {movie: .movie_id, node: $i}]' 2>/dev/null \
      || echo '[]'
  done | jq -sc 'add | group_by(.movie) | map({key: .[0].movie, value: (map(.node) | unique)}) | from_entries'
}
say "waiting for placement ($replication full copies of each movie)"
deadline=$(( $(date +%s) + 120 ))
until copies_json | jq -e --argjson m "$movies" --argjson r "$replication" '[$m[] as $id | (.[$id] // []) | length] | min >= $r' >/dev/null; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "soak: placement did not make $replication copies in 120 s: $(copies_json)" >&2; exit 1; }
  sleep 1
done

# The movie still ingesting: its own seeder, throttled so the download lasts most of the soak.
live_size=$(stat -c %s "$m3")
kibps=$(( live_size / 1024 * 10 / (soak_secs * 8) ))
[ "$kibps" -ge 16 ] || kibps=16
in_ns 0 "$node_bin" seed "$m3" --listen "$hub_ip:6882" --torrent-dir "$run/torrents-live" --upload-kibps "$kibps" >"$run/seed-live.log" 2>&1 &
seed_live=$!; echo $seed_live >> "$net/pids"
t3=$(seed_wait "$run/torrents-live" "$m3" $seed_live)
say "ingesting \"Soak Game of Life\" on node 2 from a seeder throttled to $kibps KiB/s ($(( live_size / 1024 )) KiB: ~$(( live_size / 1024 / kibps )) s)"
ingest 2 "$t3" "$hub_ip:6882" "$run/m3.json" > "$run/ingest-live.log" 2>&1 &
live_ingest=$!
bg_pids+=($live_ingest)

# ---- 4. sampler --------------------------------------------------------------------------
pid_in() { # pid_in NS EXE: the pid of that binary inside the namespace
  local p exe
  for p in $(ip netns pids "$1" 2>/dev/null); do
    # A binary rebuilt during the soak shows as "PATH (deleted)" for processes started before.
    exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
    [ "${exe% (deleted)}" = "$2" ] || continue
    tr '\0' ' ' < "/proc/$p/cmdline" | grep -qE ' (seed|ingest) ' && continue
    echo "$p"; return 0
  done
  return 1
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo null; }
sampler() {
  while :; do
    local t line i p fp
    t=$(date +%s%3N)
    line="{\"t\":$t,\"rss\":{"
    p=$(pid_in "$hub" "$tracker_bin") && line+="\"tracker\":[$p,$(rss_kb "$p")]" || line+="\"tracker\":null"
    for i in $(seq 1 "$nodes"); do
      p=$(pid_in "$(ns "$i")" "$node_bin") && line+=",\"node$i\":[$p,$(rss_kb "$p")]" || line+=",\"node$i\":null"
    done
    line+="},\"catalog\":{"
    for i in $(seq 1 "$nodes"); do
      fp=$(catalog "$i" 2>/dev/null | jq -c '[.results[] | [.id, .availability.state]] | sort' 2>/dev/null | md5sum | cut -c1-12) || fp=""
      [ "$fp" = "$(echo | md5sum | cut -c1-12)" ] && fp=""
      [ "$i" -gt 1 ] && line+=","
      if [ -n "$fp" ]; then line+="\"$i\":\"$fp\""; else line+="\"$i\":null"; fi
    done
    line+="},\"copies\":$(copies_json 2>/dev/null || echo '{}')}"
    echo "$line" >> "$run/samples.jsonl"
    sleep 2
  done
}
sampler &
bg_pids+=($!)

# ---- 5. viewers --------------------------------------------------------------------------
mkdir -p "$run/players"
stop="$run/players/stop"
rm -f "$stop" "$run/players/room"
for i in $(seq 1 "$nodes"); do
  party=null
  [ "$i" -eq 1 ] && party='"host"'
  [ "$i" -eq 2 ] && party='"guest"'
  node_id=$(jq -r .node_id <<<"$(admin_get "$i" /admin/v1/status)")
  jq -n --arg name "viewer$i" --arg node "http://$(node_ip "$i"):8080" --arg tracker "http://$hub_ip:7070" \
    --arg node_id "$node_id" --arg email "viewer$i@soak.reelnet.local" --arg password "$password" \
    --argjson movies "$(jq -c --argjson k "$i" '. as $m | [range(0; length) | $m[(. + $k) % ($m | length)]]' <<<"$movies")" \
    --argjson seed "$seed" --arg stop "$stop" --arg out "$run/players/viewer$i.json" --argjson party "$party" \
    --arg room "$run/players/room" --arg log "$run/players/viewer$i.log" --argjson max $(( soak_secs + 600 )) \
    '{name: $name, node: $node, tracker: $tracker, node_id: $node_id, email: $email, password: $password,
      movies: $movies, seed: $seed, stop_file: $stop, out: $out, party: $party, room_file: $room, log: $log,
      max_secs: $max}' > "$run/players/viewer$i.cfg.json"
  in_ns "$i" node web/e2e/soakplayer.mjs "$run/players/viewer$i.cfg.json" >"$run/players/viewer$i.out" 2>&1 &
  eval "player_$i=$!"
  bg_pids+=($!)
done
say "5 viewers playing; soak of ${minutes} min starts (seed $seed)"
event soak start null "\"replication\":$replication,\"profile\":\"$profile\",\"seed\":$seed"

# ---- 6. faults ---------------------------------------------------------------------------
restart_cmd() { # the process's own argument list, minus a one-use invite
  tr '\0' '\n' < "/proc/$1/cmdline" | awk 'skip {skip=0; next} $0 == "--invite" {skip=1; next} {print}'
}
respawn() { # respawn NS_INDEX LOG ARGS_FILE
  local args=()
  mapfile -t args < "$3"
  in_ns "$1" "${args[@]}" >>"$2" 2>&1 &
  echo $! >> "$net/pids"
}
soak_t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - soak_t0 )); }
wait_until() { while [ "$(elapsed)" -lt "$1" ]; do sleep 0.2; done; }
pending=() # "END_SECOND ACTION ARG"
run_pending() {
  local keep=() p
  for p in "${pending[@]}"; do
    set -- $p
    if [ "$(elapsed)" -ge "$1" ]; then "$2" "$3"; else keep+=("$p"); fi
  done
  pending=("${keep[@]}")
}
restart_node() {
  respawn "$1" "$net/node$1.log" "$run/node$1.args"
  event kill end "$1"
  say "node $1 restarted"
  # A node forgets an ingest a crash interrupted ("ingest it again to publish it"): its
  # operator runs it again once the node is back, and so does the soak.
  if [ "$1" -eq 2 ] && ! kill -0 "$live_ingest" 2>/dev/null; then
    (
      pid=$(tail -n 1 "$net/pids")
      for _ in $(seq 1 300); do
        [ "$(jq -r .pid "$net/node2/admin.json" 2>/dev/null)" = "$pid" ] && admin_get 2 /admin/v1/status >/dev/null 2>&1 && break
        sleep 0.2
      done
      ingest 2 "$t3" "$hub_ip:6882" "$run/m3.json" >> "$run/ingest-live.log" 2>&1
    ) &
    live_ingest=$!
    bg_pids+=($live_ingest)
    event ingest restart 2
    say "ingest of \"Soak Game of Life\" started again on node 2"
  fi
}
heal_node() {
  testnet/netns.sh heal "$1" >/dev/null
  event cut end "$1"
  say "node $1 healed"
}
free_disk() {
  rm -f "$net/node$1/soak-balloon"
  event disk end "$1"
  say "node $1's disk freed"
}
unslow() {
  in_ns 0 tc qdisc del dev "v$1" root 2>/dev/null || true
  in_ns "$1" tc qdisc del dev eth0 root 2>/dev/null || true
  event slow end "$1"
  say "node $1's link back to full speed"
}
shaper=tbf
ip netns add "$prefix-probe" 2>/dev/null && {
  ip -n "$prefix-probe" link add probe0 type veth peer name probe1 2>/dev/null \
    && ip -n "$prefix-probe" link set probe0 up 2>/dev/null \
    && ip netns exec "$prefix-probe" tc qdisc add dev probe0 root netem delay 1ms 2>/dev/null && shaper=netem
  ip netns del "$prefix-probe"
}
do_fault() {
  local kind="$1" n pid holders
  case "$kind" in
    kill)
      # A replica: a node holding a full copy of a library movie (seeded pick).
      holders=$(copies_json | jq -r --argjson m "$movies" '[$m[] as $id | .[$id][]?] | unique | join(" ")')
      read -ra hs <<<"${holders:-1}"
      n=${hs[$(( RANDOM % ${#hs[@]} ))]}
      pid=$(pid_in "$(ns "$n")" "$node_bin") || { say "kill: node $n not running; skipped"; return; }
      restart_cmd "$pid" > "$run/node$n.args"
      kill -9 "$pid"
      event kill start "$n" "\"down_s\":$kill_down"
      say "kill -9 node $n (a replica; restart in ${kill_down} s)"
      pending+=("$(( $(elapsed) + kill_down )) restart_node $n")
      ;;
    cut)
      testnet/netns.sh cut "$cut_node" >/dev/null
      event cut start "$cut_node" "\"secs\":$cut_secs"
      say "node $cut_node cut off (heal in ${cut_secs} s)"
      pending+=("$(( $(elapsed) + cut_secs )) heal_node $cut_node")
      ;;
    tracker)
      pid=$(pid_in "$hub" "$tracker_bin") || { say "tracker not running; skipped"; return; }
      restart_cmd "$pid" > "$run/tracker.args"
      kill -9 "$pid"
      event tracker start null
      say "kill -9 the tracker (restart in 2 s)"
      sleep 2
      respawn 0 "$net/tracker.log" "$run/tracker.args"
      event tracker end null
      ;;
    disk)
      n=$disk_node
      avail=$(df -B1 --output=avail "$net/node$n" | tail -1 | tr -d ' ')
      fallocate -l "$avail" "$net/node$n/soak-balloon" 2>/dev/null \
        || dd if=/dev/zero of="$net/node$n/soak-balloon" bs=1M status=none 2>/dev/null || true
      event disk start "$n" "\"secs\":$disk_secs,\"avail_after\":$(df -B1 --output=avail "$net/node$n" | tail -1 | tr -d ' ')"
      say "node $n's disk full ($(( avail / 1048576 )) MiB balloon; freed in ${disk_secs} s)"
      pending+=("$(( $(elapsed) + disk_secs )) free_disk $n")
      ;;
    slow)
      n=$slow_node
      if [ "$shaper" = netem ]; then
        in_ns 0 tc qdisc add dev "v$n" root netem delay 80ms rate 1mbit
        in_ns "$n" tc qdisc add dev eth0 root netem delay 80ms rate 1mbit
      else
        in_ns 0 tc qdisc add dev "v$n" root tbf rate 1mbit burst 32kbit latency 400ms
        in_ns "$n" tc qdisc add dev eth0 root tbf rate 1mbit burst 32kbit latency 400ms
      fi
      event slow start "$n" "\"secs\":$slow_secs,\"shaper\":\"$shaper\""
      say "node $n's link slowed ($shaper, 1 Mbit/s; for ${slow_secs} s)"
      pending+=("$(( $(elapsed) + slow_secs )) unslow $n")
      ;;
  esac
}
for k in $(seq 0 $(( slots - 1 ))); do
  while [ "$(elapsed)" -lt "${at[$k]}" ]; do run_pending; sleep 0.2; done
  do_fault "${schedule[$k]}"
done
while [ "$(elapsed)" -lt "$soak_secs" ] || [ ${#pending[@]} -gt 0 ]; do run_pending; sleep 0.2; done
event soak end null
say "soak over; every fault healed"

# ---- 7. checks ---------------------------------------------------------------------------
echo -n verify > "$stop"
for i in $(seq 1 "$nodes"); do
  eval "p=\$player_$i"
  wait "$p" || echo "soak: viewer $i exited non-zero (log: $run/players/viewer$i.log)" >&2
done
# Let the sampler see the final state converge (bounded), then stop it.
say "waiting for the last reconvergence (up to 60 s)"
deadline=$(( $(date +%s) + 60 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  last=$(tail -n 1 "$run/samples.jsonl")
  if jq -e --argjson m "$movies" --argjson r "$replication" \
      '([.catalog[]] | unique | length == 1 and .[0] != null) and ([$m[] as $id | (.copies[$id] // []) | length] | min >= $r)' \
      <<<"$last" >/dev/null 2>&1; then
    break
  fi
  sleep 1
done
sleep 2
for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
bg_pids=()
ingest_state=$(admin_get 2 /admin/v1/ingest 2>/dev/null | jq -c '.' 2>/dev/null || echo null)
echo "$ingest_state" > "$run/ingest-live.json"
event report start null
finished=1
say "report"
node scripts/soak-report.mjs "$run" "$profile" "$minutes"
