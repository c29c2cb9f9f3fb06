#!/usr/bin/env bash
# Benchmark: the tracker's durable progress writes (PUT /api/v1/me/progress/{id}, each
# answered only after sled's group-commit flush) under concurrent clients, next to sled's raw
# insert+flush rate measured in the same run on the same filesystem. Prints a side-by-side
# table with the targets. Loopback only; everything lives in a temporary directory that is
# removed at the end. Results and how to read them: docs/benchmarks.md.
#
# Environment overrides:
#   CLIENTS=64          concurrent load clients (one keep-alive connection each)
#   USERS=64            accounts registered and signed in before timing
#   BENCH_SECONDS=10    measured load duration (after WARMUP seconds not counted)
#   WARMUP=1            unmeasured warm-up, seconds
#   SLED_SECONDS=5      duration of each sled baseline mode
#   SLED_BATCH=64       inserts per flush in the batched sled mode
#   BENCH_TMPDIR=/tmp   where the temporary directory (tracker data, sled db) is created
#   RUST_LOG            the tracker's log filter (unset: its default, info)
#   TRACKER_BIN=path    use this tracker binary instead of building the release one
#   NO_BUILD=1          skip `cargo build` (binaries must already be built)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

CLIENTS="${CLIENTS:-64}"
USERS="${USERS:-64}"
BENCH_SECONDS="${BENCH_SECONDS:-10}"
WARMUP="${WARMUP:-1}"
SLED_SECONDS="${SLED_SECONDS:-5}"
SLED_BATCH="${SLED_BATCH:-64}"
TARGET_WPS=5000
TARGET_P99_MS=20

release="$CARGO_TARGET_DIR/release"
if [[ -z "${NO_BUILD:-}" ]]; then
  echo "==> building (release)" >&2
  if [[ -n "${TRACKER_BIN:-}" ]]; then
    cargo build --release -p reelnet-tracker --examples >&2
  else
    cargo build --release -p reelnet-tracker --examples --bins >&2 || {
      echo "release build failed (TRACKER_BIN=path runs a tracker built elsewhere)" >&2
      exit 1
    }
  fi
fi
tracker_bin="${TRACKER_BIN:-$release/reelnet-tracker}"
load_bin="$release/examples/progress_load"
sled_bin="$release/examples/sled_raw"
for b in "$tracker_bin" "$load_bin" "$sled_bin"; do
  [[ -x "$b" ]] || { echo "missing binary: $b" >&2; exit 1; }
done

tmp="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/reelnet-bench.XXXXXX")"
tracker_pid=""
cleanup() {
  if [[ -n "$tracker_pid" ]] && kill -0 "$tracker_pid" 2>/dev/null; then
    kill -TERM "$tracker_pid" 2>/dev/null || true
    wait "$tracker_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Port 0: the tracker picks a free loopback port and prints it. Mail goes to a closed
# loopback port, tried once (registration only logs the failure).
cat >"$tmp/tracker.toml" <<EOF
data_dir = "$tmp/data"
listen = "127.0.0.1:0"

[smtp]
host = "127.0.0.1"
port = 9
tls = "none"
attempts = 1
EOF

echo "==> starting the tracker (data in $tmp)" >&2
"$tracker_bin" --config "$tmp/tracker.toml" >"$tmp/tracker.log" 2>&1 &
tracker_pid=$!

url=""
for _ in $(seq 1 200); do
  if ! kill -0 "$tracker_pid" 2>/dev/null; then
    echo "the tracker exited during startup:" >&2
    tail -n 30 "$tmp/tracker.log" >&2
    exit 1
  fi
  url="$(sed -n 's/^reelnet-tracker listening: \(http:\/\/[^ ]*\).*/\1/p' "$tmp/tracker.log" | head -n 1)"
  if [[ -n "$url" ]] && curl -fsS --max-time 2 "$url/healthz" >/dev/null 2>&1; then
    break
  fi
  url=""
  sleep 0.1
done
[[ -n "$url" ]] || { echo "the tracker did not become healthy" >&2; tail -n 30 "$tmp/tracker.log" >&2; exit 1; }
echo "==> tracker healthy at $url; load: $CLIENTS clients, $USERS users, ${BENCH_SECONDS}s" >&2

load_line="$("$load_bin" --url "$url" --clients "$CLIENTS" --users "$USERS" \
  --seconds "$BENCH_SECONDS" --warmup "$WARMUP" --server-pid "$tracker_pid" | grep '^progress_writes ')"
echo "$load_line"

echo "==> stopping the tracker (SIGTERM)" >&2
kill -TERM "$tracker_pid"
rc=0
wait "$tracker_pid" || rc=$?
tracker_pid=""
[[ "$rc" == 0 ]] || echo "warning: the tracker exited with status $rc" >&2

echo "==> sled baseline in $tmp (${SLED_SECONDS}s per mode)" >&2
sled_lines="$("$sled_bin" --dir "$tmp" --seconds "$SLED_SECONDS" --batch "$SLED_BATCH" | grep '^sled_raw ')"
echo "$sled_lines"

# field LINE KEY -> value of KEY=value in LINE
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
single="$(grep 'mode=single' <<<"$sled_lines")"
batched="$(grep 'mode=batched' <<<"$sled_lines")"
txn="$(grep 'mode=txn' <<<"$sled_lines")"

wps="$(field "$load_line" writes_per_s)"
p50="$(field "$load_line" p50_ms)"
p99="$(field "$load_line" p99_ms)"
errors="$(field "$load_line" errors)"
verdict_wps="$(awk -v v="$wps" -v t="$TARGET_WPS" 'BEGIN { print (v >= t) ? "PASS" : "MISS" }')"
verdict_p99="$(awk -v v="$p99" -v t="$TARGET_P99_MS" 'BEGIN { print (v <= t) ? "PASS" : "MISS" }')"

disk="$(df -h "$tmp" | awk 'NR == 2 { print $1 " (" $2 ", mounted on " $6 ")" }')"
echo
echo "reelnet-tracker durable progress writes — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 " GiB RAM" }'), disk $disk"
echo
printf '| %-44s | %10s | %9s | %9s | %-34s |\n' "measurement" "writes/s" "p50 ms" "p99 ms" "target"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..12})" \
  "$(printf -- '-%.0s' {1..11})" "$(printf -- '-%.0s' {1..11})" "$(printf -- '-%.0s' {1..36})"
printf '| %-44s | %10s | %9s | %9s | %-34s |\n' \
  "tracker PUT progress, $CLIENTS clients (errors: $errors)" "$wps" "$p50" "$p99" \
  ">= $TARGET_WPS/s $verdict_wps, p99 <= $TARGET_P99_MS ms $verdict_p99"
printf '| %-44s | %10s | %9s | %9s | %-34s |\n' \
  "sled raw: 1 insert + flush, 1 thread" "$(field "$single" ops_per_s)" \
  "$(field "$single" p50_ms)" "$(field "$single" p99_ms)" "(baseline)"
printf '| %-44s | %10s | %9s | %9s | %-34s |\n' \
  "sled raw: $SLED_BATCH inserts + 1 flush (per batch)" "$(field "$batched" ops_per_s)" \
  "$(field "$batched" p50_ms)" "$(field "$batched" p99_ms)" "(group-commit ceiling)"
printf '| %-44s | %10s | %9s | %9s | %-34s |\n' \
  "sled: $SLED_BATCH tracker-shaped writes + 1 flush" "$(field "$txn" ops_per_s)" \
  "$(field "$txn" p50_ms)" "$(field "$txn" p99_ms)" "(read + 2-tree txn per write)"
echo
echo "tracker CPU: $(field "$load_line" server_cpu_cores) cores busy, $(field "$load_line" server_cpu_us_per_req) µs per write;" \
  "load client CPU: $(field "$load_line" client_cpu_cores) cores (same machine);" \
  "whole machine: $(field "$load_line" machine_cpu_cores) of $(nproc) cores busy"
