#!/usr/bin/env bash
# Benchmark: the tracker's durable progress writes (PUT /api/v1/me/progress/{id}, each
# answered only after sled's group-commit flush) under concurrent clients, next to sled's raw
# insert+flush rate measured in the same run on the same filesystem. The tracker runs three
# times (four with BEFORE_BIN): `[storage] fsync = false` with the token cache off (the
# code path before issue 19), `fsync = false` (acknowledged after sled's flush, the
# durability of sled's own `single` row), then the default `fsync = true` (also
# fdatasync'ed, durable against power loss; compared with sled's `single_fsync`). Prints a
# side-by-side table with the targets (issue 19 item 4: >= 2x sled's single insert+flush
# rate, p99 <= 10 ms with 64 clients). Loopback only; everything lives in a temporary directory that is
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
#   BEFORE_BIN=path     also run this (older) tracker binary first, same load, for a
#                       before/after row in the same run (its config has no [storage])
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

CLIENTS="${CLIENTS:-64}"
USERS="${USERS:-64}"
BENCH_SECONDS="${BENCH_SECONDS:-10}"
WARMUP="${WARMUP:-1}"
SLED_SECONDS="${SLED_SECONDS:-5}"
SLED_BATCH="${SLED_BATCH:-64}"
TARGET_RATIO=2
TARGET_P99_MS=10

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

# run_tracker NAME BIN STORAGE AUTH: a fresh tracker (own data dir) under the load client,
# with STORAGE lines in its [storage] table (none: no table, for BEFORE_BIN) and AUTH lines
# added to [auth]; prints "NAME <load client line>". Port 0: the tracker picks a free
# loopback port and prints it. The load client registers all its accounts from 127.0.0.1,
# so the per-address limits are raised. Mail goes to a closed loopback port, tried once
# (registration only logs the failure).
run_tracker() {
  local name="$1" bin="$2" storage="$3" auth="$4"
  [[ -n "$storage" ]] && storage=$'[storage]\n'"$storage"
  cat >"$tmp/$name.toml" <<EOF
data_dir = "$tmp/$name-data"
listen = "127.0.0.1:0"

[auth]
registrations_per_address_per_hour = 100000
mails_per_address_per_hour = 100000
$auth

$storage

[smtp]
host = "127.0.0.1"
port = 9
tls = "none"
attempts = 1
EOF
  echo "==> [$name] starting the tracker (data in $tmp/$name-data); load average: $(uptime | sed 's/.*load average: //')" >&2
  "$bin" --config "$tmp/$name.toml" >"$tmp/$name.log" 2>&1 &
  tracker_pid=$!
  local url=""
  for _ in $(seq 1 200); do
    if ! kill -0 "$tracker_pid" 2>/dev/null; then
      echo "the tracker exited during startup:" >&2
      tail -n 30 "$tmp/$name.log" >&2
      exit 1
    fi
    url="$(sed -n 's/^reelnet-tracker listening: \(http:\/\/[^ ]*\).*/\1/p' "$tmp/$name.log" | head -n 1)"
    if [[ -n "$url" ]] && curl -fsS --max-time 2 "$url/healthz" >/dev/null 2>&1; then
      break
    fi
    url=""
    sleep 0.1
  done
  [[ -n "$url" ]] || { echo "the tracker did not become healthy" >&2; tail -n 30 "$tmp/$name.log" >&2; exit 1; }
  echo "==> [$name] tracker healthy at $url; load: $CLIENTS clients, $USERS users, ${BENCH_SECONDS}s" >&2
  local line
  line="$("$load_bin" --url "$url" --clients "$CLIENTS" --users "$USERS" \
    --seconds "$BENCH_SECONDS" --warmup "$WARMUP" --server-pid "$tracker_pid" | grep '^progress_writes ')"
  echo "==> [$name] stopping the tracker (SIGTERM)" >&2
  kill -TERM "$tracker_pid"
  local rc=0
  wait "$tracker_pid" || rc=$?
  tracker_pid=""
  [[ "$rc" == 0 ]] || echo "warning: the tracker exited with status $rc" >&2
  echo "$name $line"
}

before_line=""
if [[ -n "${BEFORE_BIN:-}" ]]; then
  before_line="$(run_tracker before "$BEFORE_BIN" "" "")"
  echo "$before_line"
fi
nocache_line="$(run_tracker nocache "$tracker_bin" "fsync = false" "token_cache_entries = 0")"
echo "$nocache_line"
flush_line="$(run_tracker flush "$tracker_bin" "fsync = false" "")"
echo "$flush_line"
fsync_line="$(run_tracker fsync "$tracker_bin" "fsync = true" "")"
echo "$fsync_line"

echo "==> sled baseline in $tmp (${SLED_SECONDS}s per mode); load average: $(uptime | sed 's/.*load average: //')" >&2
sled_lines="$("$sled_bin" --dir "$tmp" --seconds "$SLED_SECONDS" --batch "$SLED_BATCH" | grep '^sled_raw ')"
echo "$sled_lines"

# field LINE KEY -> value of KEY=value in LINE
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
single="$(grep 'mode=single ' <<<"$sled_lines")"
batched="$(grep 'mode=batched ' <<<"$sled_lines")"
single_fsync="$(grep 'mode=single_fsync ' <<<"$sled_lines")"
batched_fsync="$(grep 'mode=batched_fsync ' <<<"$sled_lines")"

disk="$(df -h "$tmp" | awk 'NR == 2 { print $1 " (" $2 ", mounted on " $6 ")" }')"
echo
echo "reelnet-tracker durable progress writes — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 " GiB RAM" }'), disk $disk, load average $(uptime | sed 's/.*load average: //')"
echo
row() { printf '| %-52s | %10s | %8s | %8s | %-40s |\n' "$@"; }
row "measurement" "writes/s" "p50 ms" "p99 ms" "target"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..54})" "$(printf -- '-%.0s' {1..12})" \
  "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..42})"
# tracker_row LINE DESCRIPTION BASELINE_LINE BASELINE_NAME
tracker_row() {
  local line="$1" what="$2" base="$3" base_name="$4"
  local wps p50 p99 errors ratio v_ratio v_p99
  wps="$(field "$line" writes_per_s)"
  p50="$(field "$line" p50_ms)"
  p99="$(field "$line" p99_ms)"
  errors="$(field "$line" errors)"
  ratio="$(awk -v a="$wps" -v b="$(field "$base" ops_per_s)" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')"
  v_ratio="$(awk -v r="$ratio" -v t="$TARGET_RATIO" 'BEGIN { print (r >= t) ? "PASS" : "MISS" }')"
  v_p99="$(awk -v v="$p99" -v t="$TARGET_P99_MS" 'BEGIN { print (v <= t) ? "PASS" : "MISS" }')"
  row "$what (errors: $errors)" "$wps" "$p50" "$p99" \
    "${ratio}x $base_name $v_ratio, p99 $v_p99"
}
if [[ -n "$before_line" ]]; then
  tracker_row "$before_line" "BEFORE_BIN tracker, $CLIENTS clients" "$single" "sled single"
fi
tracker_row "$nocache_line" "tracker, fsync = false, token cache off" "$single" "sled single"
tracker_row "$flush_line" "tracker, fsync = false, $CLIENTS clients" "$single" "sled single"
tracker_row "$fsync_line" "tracker, fsync = true (default), $CLIENTS clients" "$single_fsync" "sled single_fsync"
sled_row() {
  row "$2" "$(field "$1" ops_per_s)" "$(field "$1" p50_ms)" "$(field "$1" p99_ms)" "$3"
}
sled_row "$single" "sled raw: 1 insert + flush, 1 thread" "(baseline of the 2x target)"
sled_row "$batched" "sled raw: $SLED_BATCH inserts + 1 flush (per batch)" "(group-commit ceiling)"
sled_row "$single_fsync" "sled raw: 1 insert + flush + fdatasync" "(baseline with fsync)"
sled_row "$batched_fsync" "sled raw: $SLED_BATCH inserts + flush + fdatasync" "(ceiling with fsync)"
echo
for l in "$before_line" "$nocache_line" "$flush_line" "$fsync_line"; do
  [[ -n "$l" ]] || continue
  echo "${l%% *}: tracker CPU $(field "$l" server_cpu_cores) cores, $(field "$l" server_cpu_us_per_req) µs per write;" \
    "load client $(field "$l" client_cpu_cores) cores; whole machine $(field "$l" machine_cpu_cores) of $(nproc) cores busy"
done
