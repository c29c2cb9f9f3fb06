#!/usr/bin/env bash
# Benchmark: the node gateway serving HLS segments, release builds only. In one run:
#   (a) throughput: the gateway (node/examples/gateway_bench serve: the real warp routes,
#       catalog, store and playback-token checks) serving SEG_COUNT held segments of
#       SEG_BYTES versus nginx serving the very same files from the store's directory,
#       both driven by wrk with CONNECTIONS connections cycling through every segment.
#       Target: gateway >= 0.9 x nginx. Run twice: SEG_COUNT segments with the default
#       256 MiB hot cache (fits), then WS_SEG_COUNT segments (default 160 x 2 MiB = 320 MiB)
#       with a 128 MiB hot cache (WS_HOT_MIB): a working set 2.5 x the cache, so most
#       requests take the disk path, read and verified group by group while streaming.
#       Target (issue 19.3): >= 1.0 x nginx.
#   (b) latency, sequential GETs of distinct segments (gateway_bench latency): time to first
#       body byte and whole-segment time of a hot-cache hit, a local disk hit and a
#       peer-held segment (fetched over QUIC, streamed as its groups are verified).
#       Target (issue 19.1): peer TTFB p50 <= local (disk) hit TTFB p50 + 5 ms.
# Results: docs/benchmarks.md ("Gateway", "Verified streaming (issue 19)").
#
# Environment: SEG_COUNT=64 WS_SEG_COUNT=160 SEG_BYTES=2097152 CONNECTIONS=64
#              WRK_SECONDS=10 ROUNDS=3 NO_BUILD=1 (release binaries must exist)
#              PROFILE=1 (also a perf profile of the gateway on the working-set run: apt-get install linux-perf)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

SEG_COUNT="${SEG_COUNT:-64}"
WS_SEG_COUNT="${WS_SEG_COUNT:-160}"
WS_HOT_MIB="${WS_HOT_MIB:-128}"
SEG_BYTES="${SEG_BYTES:-2097152}"
CONNECTIONS="${CONNECTIONS:-64}"
WRK_SECONDS="${WRK_SECONDS:-10}"
ROUNDS="${ROUNDS:-3}"
release="$CARGO_TARGET_DIR/release"
if [[ -z "${NO_BUILD:-}" ]]; then
  echo "==> building (release)" >&2
  cargo build --release --example gateway_bench -p reelnet-node >&2
fi
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
if [[ ${#need[@]} -gt 0 ]]; then
  echo "==> installing ${need[*]}" >&2
  SUDO=""
  [[ "$(id -u)" -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/reelnet-bench-gateway.XXXXXX")"
chmod 755 "$tmp"
server_pid="" nginx_pid=""
cleanup() {
  [[ -n "$nginx_pid" ]] && kill "$nginx_pid" 2>/dev/null || true
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# (a) ---------------------------------------------------------------------------------
run_a() { # segment count, hot cache MiB -> sets nginx_mibs gw_mibs ratio
local SEG_COUNT="$1" hot_mib="$2"
rm -rf "$tmp"/*
echo "==> (a) $SEG_COUNT segments of $SEG_BYTES bytes, $CONNECTIONS connections" >&2
mkfifo "$tmp/stdin"
# The example's store goes in a temporary directory of its own; made under $tmp (TMPDIR), so
# the chmod below lets nginx's unprivileged workers read the same files.
mkdir -p "$tmp/store"
TMPDIR="$tmp/store" "$release/examples/gateway_bench" serve "$tmp" "$SEG_COUNT" "$SEG_BYTES" "$hot_mib" <"$tmp/stdin" 2>"$tmp/serve.log" &
server_pid=$!
exec 9>"$tmp/stdin" # keeps the server's stdin open until the script ends
for _ in $(seq 1 300); do [[ -f "$tmp/serve.env" ]] && break; sleep 0.1; done
[[ -f "$tmp/serve.env" ]] || { cat "$tmp/serve.log" >&2; exit 1; }
. "$tmp/serve.env"
chmod -R a+rX "$tmp"
port=$(free_port)
mkdir -p "$tmp/nginx"
cat > "$tmp/nginx/nginx.conf" <<CONF
worker_processes $(nproc);
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  default_type video/iso.segment;
  server { listen 127.0.0.1:$port; root $SEGMENTS_DIR; }
}
CONF
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
nginx_pid=$!
first=$(head -1 "$tmp/nginx_paths.txt")
for _ in $(seq 1 50); do curl -fsS -o /dev/null "http://127.0.0.1:$port$first" 2>/dev/null && break; sleep 0.1; done
gw_first=$(head -1 "$tmp/gateway_paths.txt")
[[ "$(curl -fsS "$GATEWAY_URL$gw_first" | sha256sum)" == "$(curl -fsS "http://127.0.0.1:$port$first" | sha256sum)" ]] \
  || { echo "gateway and nginx do not serve the same bytes" >&2; exit 1; }

lua() { # paths-file -> wrk script cycling through the paths
  echo 'local paths = {'
  sed 's/.*/  "&",/' "$1"
  echo '}'
  cat <<'LUA'
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("wrk_bytes=%d wrk_us=%d wrk_errors=%d p50_us=%d p99_us=%d\n",
    summary.bytes, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
LUA
}
lua "$tmp/gateway_paths.txt" > "$tmp/gateway.lua"
lua "$tmp/nginx_paths.txt" > "$tmp/nginx.lua"
threads=$(nproc)
best() { # label url script -> rounds on stderr, best MiB/s on stdout
  local best=0 out line mibs
  for r in $(seq 1 "$ROUNDS"); do
    out=$(wrk -t"$threads" -c"$CONNECTIONS" -d"${WRK_SECONDS}s" -s "$3" "$2")
    line=$(grep '^wrk_bytes=' <<<"$out")
    eval "$line"
    [[ "$wrk_errors" -eq 0 ]] || { echo "$1: wrk reported $wrk_errors errors" >&2; echo "$out" >&2; exit 1; }
    mibs=$(awk -v b="$wrk_bytes" -v us="$wrk_us" 'BEGIN { printf "%.1f", b / 1048576 / (us / 1e6) }')
    echo "$1 round $r: $mibs MiB/s, latency p50 $((p50_us / 1000)) ms p99 $((p99_us / 1000)) ms" >&2
    best=$(awk -v a="$best" -v b="$mibs" 'BEGIN { print (b > a) ? b : a }')
  done
  echo "$best"
}
nginx_mibs=$(best "nginx  " "http://127.0.0.1:$port" "$tmp/nginx.lua")
gw_mibs=$(best "gateway" "$GATEWAY_URL" "$tmp/gateway.lua")
if [[ -n "${PROFILE:-}" && "$SEG_COUNT" == "$WS_SEG_COUNT" ]]; then
  # Where the gateway's CPU goes on the working-set run: one more wrk run with perf
  # sampling the gateway process (call graphs), its top functions printed.
  echo "==> profiling the gateway (working set ${SEG_COUNT} segments, hot cache ${hot_mib} MiB)" >&2
  perf record -e cpu-clock -F 499 -g -p "$server_pid" -o "$tmp/perf.data" -- sleep "$WRK_SECONDS" 2>/dev/null &
  perf_pid=$!
  wrk -t"$threads" -c"$CONNECTIONS" -d"${WRK_SECONDS}s" -s "$tmp/gateway.lua" "$GATEWAY_URL" >/dev/null
  wait "$perf_pid" || true
  perf report -i "$tmp/perf.data" --no-children --sort dso,symbol --percent-limit 1.5 --stdio 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | head -30 >&2 || true
fi
ratio=$(awk -v g="$gw_mibs" -v n="$nginx_mibs" 'BEGIN { printf "%.2f", g / n }')
kill "$nginx_pid" "$server_pid" 2>/dev/null || true
exec 9>&-
wait "$nginx_pid" "$server_pid" 2>/dev/null || true
nginx_pid="" server_pid=""
}
run_a "$WS_SEG_COUNT" "$WS_HOT_MIB"
ws_nginx=$nginx_mibs ws_gw=$gw_mibs ws_ratio=$ratio
run_a "$SEG_COUNT" 256

# (b) ---------------------------------------------------------------------------------
echo "==> (b) hot hit, disk hit, peer-held" >&2
lat=$("$release/examples/gateway_bench" latency "$SEG_COUNT" "$SEG_BYTES")
echo "$lat" >&2
extra=$(sed -n 's/^peer_minus_local_p50_ms=//p' <<<"$lat")
ttfb_extra=$(sed -n 's/^peer_ttfb_minus_disk_ttfb_p50_ms=//p' <<<"$lat")

verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == ">=") ? v >= t : v <= t; print ok ? "PASS" : "MISS" }'; }
echo
echo "| figure | measured | target | |"
echo "|---|---|---|---|"
echo "| nginx, $SEG_COUNT x $SEG_BYTES B, $CONNECTIONS conns (best of $ROUNDS) | $nginx_mibs MiB/s | reference | |"
echo "| gateway, same files and load | $gw_mibs MiB/s | | |"
echo "| gateway / nginx | ${ratio}x | >= 0.9x | $(verdict "$ratio" 0.9 '>=') |"
echo "| nginx, $WS_SEG_COUNT x $SEG_BYTES B (gateway hot cache $WS_HOT_MIB MiB) | $ws_nginx MiB/s | reference | |"
echo "| gateway, same files and load (disk path, verified while streaming) | $ws_gw MiB/s | | |"
echo "| gateway / nginx, working set 2.5x the cache | ${ws_ratio}x | >= 1.0x | $(verdict "$ws_ratio" 1.0 '>=') |"
grep -E '^(disk hit|hot hit|peer-held)' <<<"$lat" | sed 's/^/| /; s/$/ | | | |/'
echo "| peer-held TTFB p50 minus disk-hit TTFB p50 | ${ttfb_extra} ms | <= +5 ms | $(verdict "$ttfb_extra" 5 '<=') |"
echo "| peer-held minus local p50 (whole segment) | ${extra} ms | <= +15 ms | $(verdict "$extra" 15 '<=') |"
echo "(machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
