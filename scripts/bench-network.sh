#!/usr/bin/env bash
# Benchmark: the node network, release builds only. In one run:
#   (a) segment transfer node -> node over QUIC (node/examples/quic_bench: a real
#       TransferServer and Fetcher, hashes checked on both sides) versus nginx serving the
#       very same files over HTTP/1.1 on loopback to wrk, same concurrency. The files are
#       SEG_COUNT random (incompressible, like video) segments of SEG_KIB KiB. QUIC runs
#       twice: with the loopback MTU (initial 8952, bound 16384) and with the production
#       default (1452). Targets (issue 19.2): QUIC >= 1.0 x nginx over HTTPS (TLS 1.3, same
#       files) and >= 2 Gbit/s; nginx over plain HTTP is printed for information. Beside
#       the node path, the example prints quinn alone with the same TLS and transport
#       settings (the library's ceiling here) and the node path with the server re-hashing
#       every segment (the behaviour before 19.2).
#   (b) catalog convergence in a 20-node process testnet (testnet/up.sh -n 20 --release):
#       TRIALS tiny movies (made with the ffmpeg CLI) are ingested on node 1 one after the
#       other; a poller asks every node's /admin/v1/status every POLL_MS and records when
#       each first lists the new movie. Convergence = last node's time - node 1's time.
#       Target: p99 <= 2 s.
#   (c) RSS (VmRSS; and what it is made of: anonymous, file-backed, PSS) of idle nodes: the
#       20-node testnet after IDLE_SECS of idling (before
#       and after the trials), and a 3-node testnet. Target <= 50 MB (issue 19 item 6; the first wave's was 100 MB).
# Prints each figure beside its target with PASS/MISS, and the machine's load. Results:
# docs/benchmarks.md ("Network").
#
# Environment overrides:
#   SEG_COUNT=128 SEG_KIB=2048   the segment files of (a) (256 MiB)
#   CONCURRENCY=16               requests in flight, both sides of (a)
#   ROUNDS=3                     QUIC rounds over all files (best counts)
#   WRK_SECONDS=10               wrk run length (best of ROUNDS runs counts)
#   NODES=20 TRIALS=8 POLL_MS=20 IDLE_SECS=30
#   BASE_PORT=7070               tracker port of the testnets (nodes use 8081.., 4001.., 4401..)
#   BENCH_TMPDIR=/tmp            where the temporary directory is created
#   NO_BUILD=1                   skip `cargo build` (release binaries must exist)
#   SKIP="a b c"                 parts to skip
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

SEG_COUNT="${SEG_COUNT:-128}"
SEG_KIB="${SEG_KIB:-2048}"
CONCURRENCY="${CONCURRENCY:-16}"
ROUNDS="${ROUNDS:-3}"
WRK_SECONDS="${WRK_SECONDS:-10}"
NODES="${NODES:-20}"
TRIALS="${TRIALS:-8}"
POLL_MS="${POLL_MS:-20}"
IDLE_SECS="${IDLE_SECS:-30}"
SKIP="${SKIP:-}"
skip() { [[ " $SKIP " == *" $1 "* ]]; }

release="$CARGO_TARGET_DIR/release"
# Only what the parts run need: (a) the example alone, (b)/(c) the binaries.
bins=()
skip a || bins+=(examples/quic_bench)
if ! skip b || ! skip c; then bins+=(reelnet-node reelnet-tracker); fi
if [[ -z "${NO_BUILD:-}" ]]; then
  echo "==> building (release)" >&2
  if ! skip a; then cargo build --release -p reelnet-node --example quic_bench >&2; fi
  if ! skip b || ! skip c; then
    cargo build --release --bins -p reelnet-node -p reelnet-tracker >&2
  fi
fi
for b in "${bins[@]}"; do
  [[ -x "$release/$b" ]] || { echo "missing binary: $release/$b" >&2; exit 1; }
done
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v jq >/dev/null || need+=(jq)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
if [[ ${#need[@]} -gt 0 ]]; then
  echo "==> installing ${need[*]}" >&2
  SUDO=""
  [[ "$(id -u)" -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

tmp="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/reelnet-bench-network.XXXXXX")"
nginx_pid=""
testnet_up=0
cleanup() {
  [[ -n "$nginx_pid" ]] && kill "$nginx_pid" 2>/dev/null || true
  if [[ $testnet_up -eq 1 ]]; then TESTNET_DIR="$tmp/testnet" testnet/down.sh >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rows=()
row() { rows+=("$(printf '| %s | %s | %s | %s |' "$1" "$2" "$3" "$4")"); }
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == ">=") ? v >= t : v <= t; print ok ? "PASS" : "MISS" }'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# Whole-machine busy cores over a command's run (other load shows up here).
cpu_ticks() { awk '/^cpu / { print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8 }' /proc/stat; }
busy_since() { # "busy total" from cpu_ticks
  local now; now=$(cpu_ticks)
  awk -v a="$1" -v b="$now" -v n="$(nproc)" 'BEGIN { split(a, x, " "); split(b, y, " ");
    printf "%.2f", n * (y[1] - x[1]) / ((y[2] - x[2]) > 0 ? (y[2] - x[2]) : 1) }'
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r), load $(loadavg)"

# ---------------------------------------------------------------- (a) QUIC vs nginx
if ! skip a; then
  echo "==> (a) segment transfer: $SEG_COUNT x $SEG_KIB KiB, $CONCURRENCY in flight" >&2
  segs="$tmp/segments"
  mkdir -p "$segs"
  chmod 755 "$tmp" "$segs" # nginx workers run unprivileged
  for i in $(seq -w 1 "$SEG_COUNT"); do
    head -c "$((SEG_KIB * 1024))" /dev/urandom > "$segs/seg-$i.m4s"
  done
  port=$(free_port)
  tls_port=$(free_port)
  mkdir -p "$tmp/nginx"
  # Informational second reference: the same files over HTTPS (QUIC always encrypts).
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -keyout "$tmp/nginx/key.pem" -out "$tmp/nginx/cert.pem" 2>/dev/null
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
  keepalive_timeout 60;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  types { video/iso.segment m4s; }
  server {
    listen 127.0.0.1:$port;
    root $segs;
  }
  server {
    listen 127.0.0.1:$tls_port ssl;
    ssl_certificate $tmp/nginx/cert.pem;
    ssl_certificate_key $tmp/nginx/key.pem;
    ssl_protocols TLSv1.3;
    root $segs;
  }
}
CONF
  nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
  nginx_pid=$!
  for _ in $(seq 1 50); do curl -fsS -o /dev/null "http://127.0.0.1:$port/seg-$(seq -w 1 "$SEG_COUNT" | head -1).m4s" 2>/dev/null && break; sleep 0.1; done
  first=$(ls "$segs" | head -1)
  [[ "$(curl -fsS "http://127.0.0.1:$port/$first" | sha256sum)" == "$(sha256sum < "$segs/$first")" ]] \
    || { echo "nginx does not serve the segment files" >&2; exit 1; }
  # wrk cycles through every file; each thread keeps its own position.
  {
    echo 'local paths = {'
    for f in $(ls "$segs"); do echo "  \"/$f\","; done
    echo '}'
    cat <<'LUA'
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("wrk_bytes=%d wrk_us=%d wrk_errors=%d\n", summary.bytes,
    summary.duration, e.connect + e.read + e.write + e.status + e.timeout))
end
LUA
  } > "$tmp/cycle.lua"
  threads=$(( CONCURRENCY < $(nproc) ? CONCURRENCY : $(nproc) ))
  wrk_best() { # label url -> prints rounds, last line = best MiB/s
    local best=0 r t0 out cores line mibs
    for r in $(seq 1 "$ROUNDS"); do
      t0=$(cpu_ticks)
      out=$(wrk -t"$threads" -c"$CONCURRENCY" -d"${WRK_SECONDS}s" -s "$tmp/cycle.lua" "$2")
      cores=$(busy_since "$t0")
      line=$(grep '^wrk_bytes=' <<<"$out")
      eval "$line"
      [[ "$wrk_errors" -eq 0 ]] || { echo "wrk reported $wrk_errors errors" >&2; echo "$out" >&2; exit 1; }
      mibs=$(awk -v b="$wrk_bytes" -v us="$wrk_us" 'BEGIN { printf "%.1f", b / 1048576 / (us / 1e6) }')
      echo "$1 round $r: $mibs MiB/s (machine busy $cores cores)"
      best=$(awk -v a="$best" -v b="$mibs" 'BEGIN { print (b > a) ? b : a }')
    done
    echo "$best"
  }
  out=$(wrk_best "nginx HTTP" "http://127.0.0.1:$port/"); echo "$out" | sed '$d'; nginx_best=$(tail -1 <<<"$out")
  out=$(wrk_best "nginx HTTPS" "https://127.0.0.1:$tls_port/"); echo "$out" | sed '$d'; nginx_tls=$(tail -1 <<<"$out")
  kill "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
  nginx_pid=""

  quic_run() { # label mtu mtu_max [--only variant] -> last line: "node raw rehash" MiB/s
    local t0 out cores label="$1" mtu="$2" mtu_max="$3"
    shift 3
    t0=$(cpu_ticks)
    out=$("$release/examples/quic_bench" --dir "$segs" --concurrency "$CONCURRENCY" \
      --rounds "$ROUNDS" --mtu "$mtu" --mtu-max "$mtu_max" "$@")
    cores=$(busy_since "$t0")
    echo "$out" | sed "s/^/quic ($label): /"
    echo "quic ($label): machine busy $cores cores"
    echo "$(sed -n 's/^best_mib_s=//p' <<<"$out") $(sed -n 's/^best_raw_mib_s=//p' <<<"$out") $(sed -n 's/^best_node+rehash_mib_s=//p' <<<"$out")"
  }
  out=$(quic_run "loopback MTU" 8952 16384); echo "$out" | sed '$d'
  read -r quic_lo quic_raw quic_rehash <<<"$(tail -1 <<<"$out")"
  out=$(quic_run "MTU 1452" 1452 1452 --only node); echo "$out" | sed '$d'
  read -r quic_1452 _ <<<"$(tail -1 <<<"$out")"
  gbit() { awk -v m="$1" 'BEGIN { printf "%.2f", m * 1048576 * 8 / 1e9 }'; }
  ratio=$(awk -v q="$quic_lo" -v n="$nginx_best" 'BEGIN { printf "%.2f", q / n }')
  ratio_1452=$(awk -v q="$quic_1452" -v n="$nginx_best" 'BEGIN { printf "%.2f", q / n }')
  ratio_tls=$(awk -v q="$(awk -v a="$quic_lo" -v b="$quic_1452" 'BEGIN { print (a > b) ? a : b }')" \
    -v n="$nginx_tls" 'BEGIN { printf "%.2f", q / n }')
  row "nginx over HTTP on loopback (wrk, $CONCURRENCY conns)" "$nginx_best MiB/s ($(gbit "$nginx_best") Gbit/s)" "reference" ""
  row "nginx over HTTPS (TLS 1.3) on loopback (wrk, $CONCURRENCY conns)" "$nginx_tls MiB/s ($(gbit "$nginx_tls") Gbit/s)" "reference (19.2)" ""
  row "quinn alone, node TLS + transport (raw streams from memory, no hashing)" "$quic_raw MiB/s ($(gbit "$quic_raw") Gbit/s)" "(info: the library's ceiling)" ""
  row "QUIC node->node with the server re-hashing (before 19.2)" "$quic_rehash MiB/s ($(gbit "$quic_rehash") Gbit/s)" "(info)" ""
  row "QUIC node->node, loopback MTU 8952/16384" "$quic_lo MiB/s ($(gbit "$quic_lo") Gbit/s)" ">= 2 Gbit/s" "$(verdict "$(gbit "$quic_lo")" 2 ">=")"
  row "QUIC / nginx HTTP (loopback MTU)" "${ratio}x" "(info)" ""
  row "QUIC node->node, MTU 1452 (production default)" "$quic_1452 MiB/s ($(gbit "$quic_1452") Gbit/s)" ">= 2 Gbit/s" "$(verdict "$(gbit "$quic_1452")" 2 ">=")"
  row "QUIC / nginx HTTP (MTU 1452)" "${ratio_1452}x" "(info)" ""
  row "best QUIC / nginx HTTPS" "${ratio_tls}x" ">= 1.0x" "$(verdict "$ratio_tls" 1.0 ">=")"
fi

# ------------------------------------------------- (b) convergence and (c) idle RSS
rss_of_testnet() { # DIR N [FIELD]: prints "max median" in MB of the testnet's nodes' FIELD
  # (VmRSS, default; RssAnon and RssFile from /proc/PID/status; Pss from smaps_rollup)
  local dir="$1" n="$2" field="${3:-VmRSS}" i pid file vals=""
  for i in $(seq 1 "$n"); do
    pid=$(jq -r .pid "$dir/node$i/admin.json")
    file="/proc/$pid/status"
    [[ "$field" == Pss ]] && file="/proc/$pid/smaps_rollup"
    vals="$vals $(awk -v f="$field:" '$1 == f { print $2 }' "$file")"
  done
  tr ' ' '\n' <<<"$vals" | grep -v '^$' | sort -n \
    | awk '{ v[NR] = $1 } END { printf "%.1f %.1f\n", v[NR] / 1024, v[int((NR + 1) / 2)] / 1024 }'
}
# The rows of an idle RSS measurement: VmRSS against the target (issue 19 item 6: <= 50 MB),
# then what it is made of: private anonymous memory (the node's own), file-backed pages
# (the binary's and shared libraries' code, shared with every process mapping them) and
# PSS (each shared page divided by the processes sharing it).
rss_rows() { # DIR N LABEL
  local rss_max rss_med a_max a_med f_max f_med p_max p_med
  read -r rss_max rss_med < <(rss_of_testnet "$1" "$2")
  read -r a_max a_med < <(rss_of_testnet "$1" "$2" RssAnon)
  read -r f_max f_med < <(rss_of_testnet "$1" "$2" RssFile)
  read -r p_max p_med < <(rss_of_testnet "$1" "$2" Pss)
  echo "idle RSS, $3: max $rss_max MB, median $rss_med MB (anonymous $a_med, file-backed $f_med, PSS $p_med)"
  row "idle node RSS, $3 (max / median)" "$rss_max / $rss_med MB" "<= 50 MB" "$(verdict "$rss_max" 50 "<=")"
  row "  of which private anonymous (max / median)" "$a_max / $a_med MB" "(info)" ""
  row "  of which file-backed: binary + shared libraries (max / median)" "$f_max / $f_med MB" "(info)" ""
  row "  PSS, shared pages split between processes (max / median)" "$p_max / $p_med MB" "(info)" ""
}


if ! skip b || ! skip c; then
  export TESTNET_DIR="$tmp/testnet"
  echo "==> (b) $NODES-node testnet" >&2
  testnet_up=1
  up_out=$(testnet/up.sh -n "$NODES" --release)
  echo "$up_out" | tail -1
  mesh_s=$(sed -n 's/^all .* each other \([0-9.]*\) s .*/\1/p' <<<"$up_out")
  [[ -n "$mesh_s" ]] && row "$NODES-node testnet: every node sees every other (from first start)" "$mesh_s s" "(info)" ""
  if ! skip c; then
    echo "idling ${IDLE_SECS}s" >&2
    sleep "$IDLE_SECS"
    rss_rows "$TESTNET_DIR" "$NODES" "$NODES-node testnet, after ${IDLE_SECS} s"
  fi
  if ! skip b; then
    cat > "$tmp/poll.py" <<'PY'
# Polls every node's /admin/v1/status (one keep-alive connection and thread per node) and
# prints, as JSON, when each node first listed a movie not in its baseline.
import http.client, json, sys, threading, time
dirs, interval, limit = sys.argv[1].split(","), float(sys.argv[2]) / 1000, float(sys.argv[3])
baseline_file, ready_file = sys.argv[4], sys.argv[5]
nodes = []
for d in dirs:
    a = json.load(open(d + "/admin.json"))
    host, port = a["url"].removeprefix("http://").rsplit(":", 1)
    nodes.append((host, int(port), a["token"]))
def status(conn, token):
    conn.request("GET", "/admin/v1/status", headers={"Authorization": "Bearer " + token})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        raise RuntimeError(f"status {r.status}: {body[:200]!r}")
    return json.loads(body)
base = set(json.load(open(baseline_file)))
seen = {}
new_ids = {}
def poll(i, host, port, token):
    conn = http.client.HTTPConnection(host, port, timeout=5)
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            movies = set(status(conn, token)["catalog"]["movies"])
        except Exception:
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=5)
            time.sleep(interval)
            continue
        fresh = movies - base
        if fresh:
            seen[i] = time.time()
            new_ids[i] = sorted(fresh)
            return
        time.sleep(interval)
threads = [threading.Thread(target=poll, args=(i, *n)) for i, n in enumerate(nodes)]
for t in threads:
    t.start()
open(ready_file, "w").close()
for t in threads:
    t.join()
print(json.dumps({"seen": {str(i + 1): t for i, t in seen.items()},
                  "ids": {str(i + 1): v for i, v in new_ids.items()}}))
PY
    dirs=$(for i in $(seq 1 "$NODES"); do printf '%s,' "$TESTNET_DIR/node$i"; done | sed 's/,$//')
    status1() {
      local url token
      url=$(jq -r .url "$TESTNET_DIR/node1/admin.json"); token=$(jq -r .token "$TESTNET_DIR/node1/admin.json")
      curl -fsS -H "Authorization: Bearer $token" "$url/admin/v1/status"
    }
    : > "$tmp/conv.txt"; : > "$tmp/deliveries.txt"
    for t in $(seq 1 "$TRIALS"); do
      movie="$tmp/Bench.Trial.$t.mp4"
      ffmpeg -v error -y -f lavfi -i "testsrc2=size=320x240:rate=24:duration=4" \
        -f lavfi -i "sine=frequency=$((200 + 50 * t)):duration=4" \
        -c:v libx264 -preset ultrafast -g 48 -c:a aac -b:a 64k "$movie"
      # Every node's known movies now (all nodes agree after the previous trial).
      status1 | jq '.catalog.movies' > "$tmp/baseline.json"
      rm -f "$tmp/ready"
      python3 "$tmp/poll.py" "$dirs" "$POLL_MS" 60 "$tmp/baseline.json" "$tmp/ready" > "$tmp/trial.json" &
      poll_pid=$!
      while [[ ! -f "$tmp/ready" ]]; do sleep 0.05; done
      "$release/reelnet-node" --config configs/testnet/node.toml --data-dir "$TESTNET_DIR/node1" \
        ingest "$movie" --title "Bench Trial $t" --year 2026 >"$tmp/ingest.log" 2>&1 \
        || { echo "ingest failed:" >&2; cat "$tmp/ingest.log" >&2; exit 1; }
      wait "$poll_pid"
      n_seen=$(jq '.seen | length' "$tmp/trial.json")
      if [[ "$n_seen" -ne "$NODES" ]]; then
        echo "trial $t: only $n_seen of $NODES nodes learnt the movie within 60 s" >&2
        echo "inf" >> "$tmp/conv.txt"
        continue
      fi
      conv=$(jq -r '.seen as $s | ([$s[]] | max) - $s["1"] | . * 1000 | round' "$tmp/trial.json")
      jq -r '.seen as $s | $s | to_entries[] | select(.key != "1") | (.value - $s["1"]) * 1000 | round' \
        "$tmp/trial.json" >> "$tmp/deliveries.txt"
      echo "trial $t: all $NODES nodes know the movie $conv ms after node 1 listed it"
      echo "$conv" >> "$tmp/conv.txt"
    done
    pct() { # file p -> nearest-rank percentile
      sort -g "$1" | awk -v p="$2" '{ v[NR] = $1 } END { r = int(p / 100 * NR + 0.999999); if (r < 1) r = 1; print v[r] }'
    }
    c50=$(pct "$tmp/conv.txt" 50); c99=$(pct "$tmp/conv.txt" 99)
    d50=$(pct "$tmp/deliveries.txt" 50); d99=$(pct "$tmp/deliveries.txt" 99)
    c99s=$(awk -v v="$c99" 'BEGIN { print (v == "inf") ? 1e9 : v / 1000 }')
    row "catalog convergence, $NODES nodes, all know a new movie ($TRIALS trials, p50 / p99)" "$c50 / $c99 ms" "p99 <= 2000 ms" "$(verdict "$c99s" 2 "<=")"
    row "per-node delivery of a new movie ($(wc -l < "$tmp/deliveries.txt") samples, p50 / p99)" "$d50 / $d99 ms" "(info)" ""
    if ! skip c; then
      sleep "$IDLE_SECS"
      rss_rows "$TESTNET_DIR" "$NODES" "$NODES-node testnet, ${IDLE_SECS} s after the $TRIALS ingests"
    fi
  fi
  testnet/down.sh --wipe >/dev/null
  testnet_up=0
  if ! skip c; then
    echo "==> (c) 3-node testnet" >&2
    testnet_up=1
    testnet/up.sh -n 3 --release | tail -1
    sleep "$IDLE_SECS"
    rss_rows "$TESTNET_DIR" 3 "3-node testnet, after ${IDLE_SECS} s"
    testnet/down.sh --wipe >/dev/null
    testnet_up=0
  fi
fi

echo
echo "| figure | measured | target | |"
echo "|---|---:|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "load average at the end: $(loadavg)"
