#!/usr/bin/env bash
# WAN testnet benchmark (issue 17, docs/benchmarks.md "WAN testnet (issue 17)"): brings
# testnet/wan.sh up with the node's NAT traversal, puts a movie on home1 only, then
#   1. plays it WAN_RUNS times (default 5) in Chromium on the viewer's shaped link through
#      pub1 (web/e2e/wan.mjs): time to first frame p50/max, rebuffers, rung played;
#   2. relay bytes vs direct bytes from every node's /metrics after the playback runs;
#   3. DCUtR hole punching, PUNCH_ATTEMPTS (default 20) attempts per NAT pair type: home2
#      is restarted each time and its log says how its punch to home1 (EIM-EIM) and to
#      home3 (EIM-symmetric) ended; side by side with testnet/punch.py's bare-UDP baseline;
# prints a table and tears the testnet down. Needs root, web/dist (npm run build in web/),
# Chromium and built binaries (cargo build -p reelnet-node -p reelnet-tracker --bins;
# --release for the release ones). Environment: as testnet/wan.sh, plus WAN_RUNS,
# PUNCH_ATTEMPTS, PUNCH_WAIT_SECS (per attempt, default 60), DEMO_SECONDS (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
release=()
[ "${1:-}" = "--release" ] && release=(--release)
runs="${WAN_RUNS:-5}" attempts="${PUNCH_ATTEMPTS:-20}" wait_secs="${PUNCH_WAIT_SECS:-60}"
export TESTNET_DIR="${TESTNET_DIR:-$(mktemp -d /tmp/reelnet-bench-wan.XXXXXX)}"
export DEMO_SECONDS="${DEMO_SECONDS:-30}"
dir="$TESTNET_DIR"
wan() { bash testnet/wan.sh "$@"; }
trap 'wan down >/dev/null 2>&1 || true' EXIT
[ -f web/dist/index.html ] || { echo "bench-wan: web/dist is missing (npm run build in web/)" >&2; exit 1; }

wan up "${release[@]}"
wan demo
info=$(wan info)
ip_of() { jq -r --arg n "$1" '.addresses[$n]' <<<"$info"; }
metric() { # metric NODE SERIES: one value from NODE's /metrics (0 when absent)
  wan exec "$1" curl -fsS -m 5 "http://$(ip_of "$1"):8080/metrics" \
    | awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }'
}

# 1. Playback.
: > "$dir/bench-playback.jsonl"
for i in $(seq 1 "$runs"); do
  echo "==> playback run $i/$runs"
  node web/e2e/wan.mjs | tail -n 1 >> "$dir/bench-playback.jsonl" || true
done

# 2. Bytes per path after playback.
bytes_table=""
for n in pub1 pub2 home1 home2 home3; do
  bytes_table+=$(printf '%-6s %14s %14s %14s %14s %14s\n' "$n" \
    "$(metric "$n" reelnet_p2p_direct_bytes_total)" "$(metric "$n" reelnet_p2p_relayed_bytes_total)" \
    "$(metric "$n" 'reelnet_segment_fetch_bytes_total{path="quic"}')" \
    "$(metric "$n" 'reelnet_segment_fetch_bytes_total{path="libp2p_direct"}')" \
    "$(metric "$n" 'reelnet_segment_fetch_bytes_total{path="libp2p_relayed"}')")$'\n'
done

# 3. DCUtR hole punching: restart home2, read how its punches to home1 and home3 ended.
peer_of() { sed -n '/swarm listening/s/.*peer_id=\([1-9A-HJ-NP-Za-km-z]*\).*/\1/p' "$dir/$1.log" | head -n 1; }
# DCUtR's initiator logs the outcome: home2 for home1 (either side may start), home3 for
# home2 (the node that got the relayed connection); so both logs are read.
p1=$(peer_of home1) p2=$(peer_of home2) p3=$(peer_of home3)
outcome() { # outcome LOG PEER FROM_LINE: "succeeded:"/"failed;" of the first punch line after FROM_LINE
  tail -n +"$3" "$1" | grep -m1 -o -e "hole punch succeeded: direct connection peer=$2" \
    -e "hole punch failed; staying on the relay peer=$2" | awk '{print $3}' || true
}
eim_ok=0 eim_n=0 sym_ok=0 sym_n=0
for i in $(seq 1 "$attempts"); do
  pid=$(ip netns pids "$(jq -r .namespaces.home2 <<<"$info")" | head -n 1)
  args=$(tr '\0' '\n' < "/proc/$pid/cmdline" | grep -v -e '^--invite$' -e '^rninv_' | tr '\n' ' ')
  from3=$(( $(wc -l < "$dir/home3.log") + 1 ))
  kill "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  log="$dir/home2.punch$i.log"
  # shellcheck disable=SC2086 # the node's own argument list, split back into words
  ip netns exec "$(jq -r .namespaces.home2 <<<"$info")" $args >"$log" 2>&1 &
  echo $! >> "$dir/pids"
  deadline=$(( $(date +%s) + wait_secs )) r1="" r3=""
  while [ "$(date +%s)" -lt "$deadline" ] && { [ -z "$r1" ] || [ -z "$r3" ]; }; do
    [ -z "$r1" ] && r1=$(outcome "$log" "$p1" 1)
    [ -z "$r3" ] && r3=$(outcome "$log" "$p3" 1)
    [ -z "$r3" ] && r3=$(outcome "$dir/home3.log" "$p2" "$from3")
    sleep 0.5
  done
  eim_n=$((eim_n + 1)) sym_n=$((sym_n + 1))
  [ "$r1" = "succeeded:" ] && eim_ok=$((eim_ok + 1))
  [ "$r3" = "succeeded:" ] && sym_ok=$((sym_ok + 1))
  echo "==> punch attempt $i/$attempts: home2-home1 ${r1:-no attempt} home2-home3 ${r3:-no attempt}"
done
udp=$(wan punch --attempts "$attempts")

# The table.
echo
echo "WAN testnet benchmark ($(date -u +%FT%TZ), $(jq -r .profile <<<"$info") build, link $(jq -c .viewer_link <<<"$info"))"
jq -rs '
  def p50: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
  [.[] | select(.ok)] as $ok
  | "playback: \($ok | length)/\(length) runs ok; time to first frame p50 \([$ok[].ttff_ms] | p50) ms, max \([$ok[].ttff_ms] | max) ms",
    "rebuffers per run: \([.[] | .rebuffers // "-"] | map(tostring) | join(" ")); stall ms: \([.[] | .stall_ms // "-"] | map(tostring) | join(" "))",
    "rungs played per run: \([.[] | (.rungs // []) | join(">")] | join(" | ")); ladder: \(.[0].levels // [] | join(", "))",
    "failures: \([.[] | select(.ok | not) | "\(.stage): \(.error // "")"] | join("; "))"
' "$dir/bench-playback.jsonl"
echo
printf '%-6s %14s %14s %14s %14s %14s\n' node p2p_direct p2p_relayed fetch_quic fetch_direct fetch_relayed
printf '%s' "$bytes_table"
echo
echo "hole punching, $attempts attempts per pair type (node: DCUtR after restarting home2; bare UDP: punch.py)"
printf '%-22s %10s %10s\n' pair node_dcutr bare_udp
printf '%-22s %10s %10s\n' "EIM-EIM (home2-home1)" "$eim_ok/$eim_n" \
  "$(jq -r '.pairs[] | select(.pair == "home1-home2") | "\(.successes)/\(.attempts)"' <<<"$udp")"
printf '%-22s %10s %10s\n' "EIM-sym (home2-home3)" "$sym_ok/$sym_n" \
  "$(jq -r '.pairs[] | select(.pair == "home2-home3") | "\(.successes)/\(.attempts)"' <<<"$udp")"
