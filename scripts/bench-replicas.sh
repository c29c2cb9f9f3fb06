#!/usr/bin/env bash
# Benchmark (issue 24): durable progress writes (PUT /api/v1/me/progress/{id}) from 64
# clients for the tracker on sled (1 tracker), on PostgreSQL (1 tracker) and on PostgreSQL
# (2 tracker replicas), then the failover time: the primary killed -9 and its synchronous
# standby promoted while the 64 clients write through the two replicas, measured from the
# last write acknowledged before the kill to the first after (the load client's longest
# stretch without an acknowledged write). One run, side by side; everything in a temporary
# directory removed at the end. PostgreSQL (Debian's, as the `postgres` user) is a primary
# with a synchronous standby started by testnet/pg.sh (PG_ONLY=1): a write is acknowledged
# only once the standby has flushed it, in all three PostgreSQL rows. Results:
# docs/benchmarks.md, "Tracker on PostgreSQL".
#
# Environment overrides:
#   CLIENTS=64          concurrent load clients (one keep-alive connection each)
#   USERS=64            accounts registered and signed in before timing
#   BENCH_SECONDS=10    measured load duration per row (after WARMUP seconds)
#   WARMUP=1            unmeasured warm-up, seconds
#   FAILOVER_SECONDS=12 measured duration of the failover row; the kill is at 1/3 of it
#   PG_PORT=56432       the primary's port (the standby takes PG_PORT+1)
#   TRACKER_BIN=path    use this tracker binary instead of building the release one
#   NO_BUILD=1          skip `cargo build` (binaries must already be built)
#   BENCH_TMPDIR=/tmp   where the temporary directory is created
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

CLIENTS="${CLIENTS:-64}"
USERS="${USERS:-64}"
BENCH_SECONDS="${BENCH_SECONDS:-10}"
WARMUP="${WARMUP:-1}"
FAILOVER_SECONDS="${FAILOVER_SECONDS:-12}"
PG_PORT="${PG_PORT:-56432}"

release="$CARGO_TARGET_DIR/release"
if [[ -z "${NO_BUILD:-}" ]]; then
  echo "==> building (release)" >&2
  cargo build --release -p reelnet-tracker --bins --examples >&2
fi
tracker_bin="${TRACKER_BIN:-$release/reelnet-tracker}"
load_bin="$release/examples/progress_load"
for b in "$tracker_bin" "$load_bin"; do
  [[ -x "$b" ]] || { echo "missing binary: $b" >&2; exit 1; }
done

tmp="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/reelnet-bench-pg.XXXXXX")"
chmod 755 "$tmp"
pgdir="$tmp/pg"
pids=()
pg() { TESTNET_DIR="$pgdir" PG_PORT="$PG_PORT" PG_STANDBY_PORT=$((PG_PORT + 1)) PG_ONLY=1 testnet/pg.sh "$@"; }
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [[ -d "$pgdir" ]] && pg down --wipe >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_tracker NAME STORAGE: sets `url` to its URL and appends its pid to pids (not in a
# subshell, so both stay set). Mail goes to a
# closed loopback port (registration only logs the failure); per-address limits are raised
# because the load client registers every account from 127.0.0.1.
start_tracker() {
  local name="$1" storage="$2"
  cat >"$tmp/$name.toml" <<EOF
data_dir = "$tmp/$name-data"
listen = "127.0.0.1:0"

[auth]
registrations_per_address_per_hour = 100000
mails_per_address_per_hour = 100000

[storage]
$storage

[smtp]
host = "127.0.0.1"
port = 9
tls = "none"
attempts = 1
EOF
  "$tracker_bin" --config "$tmp/$name.toml" >"$tmp/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  url=""
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { echo "tracker $name exited:" >&2; tail -n 30 "$tmp/$name.log" >&2; exit 1; }
    url="$(sed -n 's/^reelnet-tracker listening: \(http:\/\/[^ ]*\).*/\1/p' "$tmp/$name.log" | head -n 1)"
    if [[ -n "$url" ]] && curl -fsS --max-time 2 "$url/healthz" >/dev/null 2>&1; then
      return
    fi
    sleep 0.1
  done
  echo "tracker $name did not become healthy" >&2
  tail -n 30 "$tmp/$name.log" >&2
  exit 1
}
stop_all() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
load() { # URLS SECONDS -> the load client's line
  "$load_bin" --url "$1" --clients "$CLIENTS" --users "$USERS" --seconds "$2" --warmup "$WARMUP" \
    --server-pid "${pids[0]}" | grep '^progress_writes '
}

echo "==> [sled] one tracker; load average $(uptime | sed 's/.*load average: //')" >&2
start_tracker sled 'engine = "sled"'
sled_line="$(load "$url" "$BENCH_SECONDS")"
echo "sled $sled_line"
stop_all

echo "==> PostgreSQL: primary and synchronous standby (testnet/pg.sh, PG_ONLY=1)" >&2
pg up >&2
password="$(cat "$pgdir/pg.password")"
pg psql -c "CREATE DATABASE b1" >/dev/null
pg psql -c "CREATE DATABASE b2" >/dev/null
pgurl() { echo "postgres://reelnet:$password@127.0.0.1:$PG_PORT,127.0.0.1:$((PG_PORT + 1))/$1?target_session_attrs=read-write"; }
storage() { printf 'engine = "postgres"\nurl = "%s"\npool_size = 16\n' "$(pgurl "$1")"; }

# The reference: PostgreSQL itself, same servers, $CLIENTS pgbench clients each committing
# one upsert of a progress-sized row per transaction (what a write costs without the
# tracker; PostgreSQL groups concurrent commits' WAL flushes by itself).
pg psql -c "CREATE DATABASE b0" >/dev/null
pg_bin="$(sed -n 's/^pg_bin=//p' "$pgdir/pg.state")"
printf '%s\n' '\set k random(1, 3200)' \
  "INSERT INTO kv (tree, k, v) VALUES ('progress', int4send(:k), decode(repeat('ab', 60), 'hex')) ON CONFLICT (tree, k) DO UPDATE SET v = EXCLUDED.v;" \
  >"$tmp/upsert.sql"
"$pg_bin/psql" -X -q "$(pgurl b0)" \
  -c 'CREATE TABLE kv (tree text COLLATE "C" NOT NULL, k bytea NOT NULL, v bytea NOT NULL, PRIMARY KEY (tree, k))'
echo "==> [pgbench] $CLIENTS clients, one upsert per transaction; load average $(uptime | sed 's/.*load average: //')" >&2
"$pg_bin/pgbench" -n -c "$CLIENTS" -j 2 -T "$BENCH_SECONDS" -f "$tmp/upsert.sql" "$(pgurl b0)" >"$tmp/pgbench.txt" 2>&1 || {
  echo "pgbench failed:" >&2; tail -n 20 "$tmp/pgbench.txt" >&2; exit 1; }
pgbench_tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$tmp/pgbench.txt" | head -n 1)"
pgbench_lat="$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$tmp/pgbench.txt" | head -n 1)"
echo "pgbench tps=$pgbench_tps latency_avg_ms=$pgbench_lat"

echo "==> [pg-1] one tracker on PostgreSQL; load average $(uptime | sed 's/.*load average: //')" >&2
start_tracker pg1 "$(storage b1)"
pg1_line="$(load "$url" "$BENCH_SECONDS")"
echo "pg-1 $pg1_line"
stop_all

echo "==> [pg-2] two tracker replicas on PostgreSQL; load average $(uptime | sed 's/.*load average: //')" >&2
start_tracker pg2a "$(storage b2)"
url_a="$url"
start_tracker pg2b "$(storage b2)"
url_b="$url"
pg2_line="$(load "$url_a,$url_b" "$BENCH_SECONDS")"
echo "pg-2 $pg2_line"

echo "==> [failover] the same two replicas; kill -9 of the primary at $((FAILOVER_SECONDS / 3)) s" >&2
(
  sleep "$(awk -v w="$WARMUP" -v s="$FAILOVER_SECONDS" 'BEGIN { print w + s / 3 }')"
  pg failover >"$tmp/failover.txt" 2>&1 || true
) &
killer=$!
fo_line="$(load "$url_a,$url_b" "$FAILOVER_SECONDS")"
wait "$killer" || true
echo "failover $fo_line"
sed 's/^/    pg.sh: /' "$tmp/failover.txt" >&2
stop_all

field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
echo
echo "reelnet-tracker durable progress writes, $CLIENTS clients — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(uptime | sed 's/.*load average: //')"
echo
row() { printf '| %-46s | %9s | %7s | %7s | %7s | %7s |\n' "$@"; }
row "storage" "writes/s" "p50 ms" "p99 ms" "errors" "cores"
row "---" "---" "---" "---" "---" "---"
r() { row "$2" "$(field "$1" writes_per_s)" "$(field "$1" p50_ms)" "$(field "$1" p99_ms)" "$(field "$1" errors)" "$(field "$1" server_cpu_cores)"; }
r "$sled_line" "sled, 1 tracker (fsync = true)"
r "$pg1_line" "PostgreSQL + sync standby, 1 tracker"
r "$pg2_line" "PostgreSQL + sync standby, 2 trackers"
r "$fo_line" "2 trackers, primary killed -9 + promote"
row "reference: pgbench, 1 upsert per transaction" "${pgbench_tps%.*}" "~${pgbench_lat}" "" "" ""
echo
echo "(cores: CPU of the first tracker only, CPU seconds per second; pgbench's latency is its average)"
echo "failover: $(field "$fo_line" max_gap_ms) ms from the last write acknowledged before the kill to the first after (64 clients through 2 replicas); errors during it: $(field "$fo_line" errors)"
grep -E 'promoted|first' "$tmp/failover.txt" | sed 's/^/  pg.sh: /' || true
