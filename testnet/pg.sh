#!/usr/bin/env bash
# A reelnet testnet on PostgreSQL: a primary and a synchronous standby, two tracker replicas
# sharing them, and three nodes, all on 127.0.0.1.
#
#   testnet/pg.sh up [--release]     start (PG_ONLY=1: only the primary and the standby)
#   testnet/pg.sh down [--wipe]      stop everything (--wipe: delete the data too)
#   testnet/pg.sh status             which server is primary, replication state, who answers
#   testnet/pg.sh failover           kill -9 the primary, promote the standby, time the outage
#   testnet/pg.sh rejoin             the killed server back as the new primary's synchronous standby
#   testnet/pg.sh psql [ARG...]      psql on the current primary (database reelnet)
#
# Layout under $TESTNET_DIR (default .testnet-pg/): pg1/ and pg2/ are the data directories
# of the primary (127.0.0.1:$PG_PORT, default 55432) and the standby (:$PG_STANDBY_PORT,
# default 55433), owned by the `postgres` user (PostgreSQL refuses to run as root: as root
# every PostgreSQL binary runs through `runuser -u postgres`; as another user, as that
# user). pgsock/ holds both unix sockets (local connections are trusted; it is 0700);
# TCP uses scram-sha-256 with the generated password of the superuser `reelnet` in
# pg.password. The standby streams under application_name `pg2`, named by the primary's
# synchronous_standby_names: a commit is acknowledged only once the standby has flushed it.
#
# Trackers: tracker1 on 127.0.0.1:$BASE_PORT (default 7070) and tracker2 on $BASE_PORT+1,
# each with its own config (tracker<i>.toml) and data directory, both with
#   [storage] engine = "postgres"
#   url = "postgres://reelnet:PASS@127.0.0.1:55432,127.0.0.1:55433/reelnet?target_session_attrs=read-write"
# so each finds whichever server is primary, before and after a failover. Both carry
# tracker1's issuer and public URL (replicas behind one public name; there is no load
# balancer here). Nodes: node i (1-3) as in testnet/up.sh (gateway 127.0.0.1:808<i>, libp2p
# tcp/400<i>, QUIC udp/440<i>), enrolled with invites made through tracker1. Each lists
# both replicas (`--tracker URL1,URL2`): it uses tracker1 and fails over to tracker2 when
# tracker1 stops answering (the replicas share their signing keys through the database).
#
# `failover` kills the primary's postmaster and every backend with SIGKILL (as a crash of
# its machine would), runs `pg_ctl promote` on the standby, and waits until a write is
# answered again: an INSERT through the two-host URL (psql, every acknowledged one is then
# counted on the new primary) and, unless PG_ONLY, an invite made through tracker1 or
# tracker2 (POST /api/v1/admin/nodes/invites with the operator token of its data dir). It
# prints the seconds from the kill to each first answered write. There is no standby after
# it until `rejoin` replaces the killed server's data with a fresh base backup of the new
# primary and makes it the synchronous standby (then `failover` goes the other way).
#
# Environment: TESTNET_DIR, PG_PORT, PG_STANDBY_PORT, BASE_PORT, PG_ONLY=1, REELNET_PG_BIN
# (default /usr/lib/postgresql/<highest>/bin; scripts/setup.sh installs Debian's
# postgresql), TRACKER_BIN / NODE_BIN (default $CARGO_TARGET_DIR/{debug,release}/...),
# MESH_WAIT_SECS, FAILOVER_WAIT_SECS (default 60). `up` removes what it made when it fails
# (logs stay); `down` stops every process it started, PostgreSQL included.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. testnet/lib.sh

dir="${TESTNET_DIR:-$PWD/.testnet-pg}"
state="$dir/pg.state"
sock="$dir/pgsock"
nodes=3

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

pg_bin_dir() {
  if [ -n "${REELNET_PG_BIN:-}" ]; then echo "$REELNET_PG_BIN"; return; fi
  local v="" d
  for d in /usr/lib/postgresql/*/bin/initdb; do
    d=${d#/usr/lib/postgresql/}; d=${d%%/*}
    if [[ "$d" =~ ^[0-9]+$ ]] && { [ -z "$v" ] || [ "$d" -gt "$v" ]; }; then v=$d; fi
  done
  [ -n "$v" ] || {
    echo "no PostgreSQL binaries under /usr/lib/postgresql/*/bin: run scripts/setup.sh" \
      "(Debian's postgresql package), or set REELNET_PG_BIN" >&2
    exit 1
  }
  echo "/usr/lib/postgresql/$v/bin"
}

# as_pg CMD... : runs CMD as the postgres user when root (PostgreSQL refuses root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# own PATH... : gives PATH to the postgres user (when root).
own() {
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$@"; fi
}

load_state() {
  [ -f "$state" ] || { echo "no PostgreSQL testnet in $dir (testnet/pg.sh up first)" >&2; exit 1; }
  pg_bin=$(sed -n 's/^pg_bin=//p' "$state")
  pg_only=$(sed -n 's/^pg_only=//p' "$state")
  tracker_port=$(sed -n 's/^tracker_port=//p' "$state")
  port_of_pg1=$(sed -n 's/^port_pg1=//p' "$state")
  port_of_pg2=$(sed -n 's/^port_pg2=//p' "$state")
  password=$(cat "$dir/pg.password")
}
port_of() { if [ "$1" = pg1 ]; then echo "$port_of_pg1"; else echo "$port_of_pg2"; fi; }

# sql NAME QUERY : runs QUERY on server NAME (pg1|pg2) over its unix socket; prints the
# rows unaligned (fails when the server does not answer).
sql() {
  "$pg_bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$sock" -p "$(port_of "$1")" \
    -U reelnet -d postgres -c "$2"
}

# The URL naming both servers: whichever accepts writes is used.
url_both() {
  local db="${1:-reelnet}"
  echo "postgres://reelnet:$password@127.0.0.1:$port_of_pg1,127.0.0.1:$port_of_pg2/$db?target_session_attrs=read-write&connect_timeout=2"
}

# pg_start NAME : starts server NAME and waits (pg_ctl -w) until it accepts connections.
pg_start() {
  as_pg "$pg_bin/pg_ctl" -D "$dir/$1" -l "$dir/$1.log" -w -t 60 start >/dev/null || {
    echo "PostgreSQL $1 did not start; the end of $dir/$1.log:" >&2
    tail -n 20 "$dir/$1.log" >&2
    return 1
  }
}

# postmaster_of NAME : the pid of server NAME's postmaster, when it runs.
postmaster_of() {
  local pid
  pid=$(head -n 1 "$dir/$1/postmaster.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  # The pid file outlives a kill -9; the pid must still be this directory's postmaster.
  tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | grep -qxF "$dir/$1" || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  echo "$pid"
}

# pg_kill9 NAME : SIGKILLs server NAME's postmaster and all its backends at once (stopped
# first, so it forks nothing meanwhile) and waits until they are gone.
pg_kill9() {
  local pid kids p
  pid=$(postmaster_of "$1") || return 0
  kill -STOP "$pid"
  kids=$(pgrep -P "$pid" || true)
  kill -9 "$pid" $kids 2>/dev/null || true
  for _ in $(seq 1 200); do
    local alive=0
    for p in $pid $kids; do
      [ -e "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && alive=1
    done
    [ $alive -eq 0 ] && return 0
    sleep 0.05
  done
  echo "PostgreSQL $1 (pid $pid) still alive after SIGKILL" >&2
  return 1
}

# pg_stop NAME : a fast shutdown; SIGKILL when that does not work.
pg_stop() {
  postmaster_of "$1" >/dev/null || return 0
  as_pg "$pg_bin/pg_ctl" -D "$dir/$1" -m fast -w -t 30 stop >/dev/null 2>&1 || pg_kill9 "$1"
}

# make_standby PRIMARY STANDBY : a base backup of server PRIMARY into STANDBY's (empty, owned
# by postgres) data directory, streaming from it under application_name STANDBY, started,
# and named by PRIMARY's synchronous_standby_names; returns once PRIMARY's
# pg_stat_replication shows it streaming and sync.
make_standby() {
  local from="$1" to="$2"
  as_pg "$pg_bin/pg_basebackup" -D "$dir/$to" -R -X stream -c fast \
    -d "host=127.0.0.1 port=$(port_of "$from") user=reelnet password=$password application_name=$to" \
    >"$dir/basebackup.log" 2>&1 || {
    echo "pg_basebackup failed:" >&2; cat "$dir/basebackup.log" >&2; return 1; }
  # Its own port; and no synchronous standby of its own once promoted (it has none).
  printf "port = %s\nsynchronous_standby_names = ''\n" "$(port_of "$to")" >>"$dir/$to/postgresql.auto.conf"
  pg_start "$to"
  sql "$from" "ALTER SYSTEM SET synchronous_standby_names = '\"$to\"'" >/dev/null
  sql "$from" "SELECT pg_reload_conf()" >/dev/null
  local deadline=$(( $(date +%s) + 30 )) rep=""
  while :; do
    rep=$(sql "$from" "SELECT state || ' ' || sync_state FROM pg_stat_replication WHERE application_name = '$to'" 2>/dev/null || true)
    [ "$rep" = "streaming sync" ] && break
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "$to is not streaming synchronously from $from after 30 s (now: '${rep:-absent}'); see $dir/$to.log" >&2
      return 1
    fi
    sleep 0.1
  done
}

# Stops our processes (the pids file: trackers, nodes, SMTP) and both PostgreSQL servers.
teardown() {
  local pids="" p
  [ -f "$dir/pids" ] && pids=$(cat "$dir/pids")
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
  if [ -n "${pg_bin:-}" ]; then
    pg_stop pg1 || true
    pg_stop pg2 || true
  fi
  rm -f "$dir/pids" "$state"
}

cmd_up() {
  local profile=debug
  while [ $# -gt 0 ]; do
    case "$1" in
      --release) profile=release; shift ;;
      *) echo "unknown argument $1" >&2; usage ;;
    esac
  done
  pg_only="${PG_ONLY:-0}"
  [ "$pg_only" = 1 ] || pg_only=0
  pg_bin=$(pg_bin_dir)
  port_of_pg1="${PG_PORT:-55432}"
  port_of_pg2="${PG_STANDBY_PORT:-55433}"
  tracker_port="${BASE_PORT:-7070}"
  local node_bin="${NODE_BIN:-$CARGO_TARGET_DIR/$profile/reelnet-node}"
  local tracker_bin="${TRACKER_BIN:-$CARGO_TARGET_DIR/$profile/reelnet-tracker}"
  if [ "$pg_only" = 0 ]; then
    for b in "$tracker_bin" "$node_bin"; do
      [ -x "$b" ] || { echo "missing $b (cargo build --bins first, or PG_ONLY=1)" >&2; exit 1; }
    done
  fi
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "no postgres system user (PostgreSQL refuses to run as root): run scripts/setup.sh" >&2
    exit 1
  fi
  if [ -f "$state" ]; then
    echo "a PostgreSQL testnet is already set up from $dir; testnet/pg.sh down first" >&2
    exit 1
  fi
  if [ -e "$dir/pg1" ] || [ -e "$dir/pg2" ]; then
    echo "$dir holds the data of an earlier run: testnet/pg.sh down --wipe first" >&2
    exit 1
  fi
  # A unix socket path has at most 107 bytes.
  if [ $(( ${#sock} + 20 )) -gt 107 ]; then
    echo "$sock is too long for a unix socket path: set a shorter TESTNET_DIR" >&2
    exit 1
  fi
  # Every port must be free before anything starts.
  local busy want p
  busy=$(ss -Htlnu 2>/dev/null | awk '{print $5}' | sed 's/.*://' | sort -u)
  want="$port_of_pg1 $port_of_pg2"
  if [ "$pg_only" = 0 ]; then
    want="$want $tracker_port $((tracker_port + 1))"
    for i in $(seq 1 "$nodes"); do want="$want $((8080 + i)) $((4000 + i)) $((4400 + i))"; done
  fi
  for p in $want; do
    if grep -qx "$p" <<<"$busy"; then
      echo "port $p is already in use; is another testnet running?" >&2
      exit 1
    fi
  done

  up_ok=0
  trap '[ $up_ok -eq 1 ] || { echo "PostgreSQL testnet start failed; removing what was made (logs in $dir)" >&2; teardown; rm -rf "$dir/pg1" "$dir/pg2" "$sock" "$dir/pg.password" "$dir"/tracker[12] "$dir"/node[0-9]*/; }' EXIT
  trap 'exit 130' INT TERM
  mkdir -p "$dir"
  chmod 755 "$dir"
  printf 'pg_bin=%s\npg_only=%s\ntracker_port=%s\nport_pg1=%s\nport_pg2=%s\n' \
    "$pg_bin" "$pg_only" "$tracker_port" "$port_of_pg1" "$port_of_pg2" > "$state"
  : > "$dir/pids"
  mkdir -m 700 "$dir/pg1" "$dir/pg2" "$sock"
  : > "$dir/pg1.log"
  : > "$dir/pg2.log"
  own "$dir/pg1" "$dir/pg2" "$sock" "$dir/pg1.log" "$dir/pg2.log"
  if ! as_pg test -w "$dir/pg1"; then
    echo "the postgres user cannot reach $dir (a parent directory is not traversable): set" \
      "TESTNET_DIR under a world-traversable path such as /tmp" >&2
    exit 1
  fi
  (umask 077; head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/pg.password")
  password=$(cat "$dir/pg.password")

  # The primary.
  (umask 077; echo "$password" > "$sock/pwfile")
  own "$sock/pwfile"
  as_pg "$pg_bin/initdb" -D "$dir/pg1" -U reelnet --pwfile="$sock/pwfile" -E UTF8 --locale=C \
    --auth-host=scram-sha-256 --auth-local=trust --no-instructions >"$dir/initdb.log" 2>&1 || {
    echo "initdb failed:" >&2; cat "$dir/initdb.log" >&2; exit 1; }
  rm -f "$sock/pwfile"
  cat >>"$dir/pg1/postgresql.conf" <<EOF

# testnet/pg.sh
listen_addresses = '127.0.0.1'
port = $port_of_pg1
unix_socket_directories = '$sock'
fsync = on
synchronous_commit = on
shared_buffers = 64MB
max_connections = 200
wal_keep_size = 256MB
# Dynamic shared memory in the data directory: a kill -9 leaves nothing in /dev/shm.
dynamic_shared_memory_type = mmap
log_line_prefix = '%m [%p] '
EOF
  pg_start pg1
  sql pg1 "CREATE DATABASE reelnet" >/dev/null
  # A database of the script's own for the write probe of `failover`.
  sql pg1 "CREATE DATABASE pgsh_probe" >/dev/null
  "$pg_bin/psql" -X -q -h "$sock" -p "$port_of_pg1" -U reelnet -d pgsh_probe \
    -c "CREATE TABLE probe (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"
  echo "pg1      postgres://127.0.0.1:$port_of_pg1 primary   (data: $dir/pg1, log: $dir/pg1.log)"

  # The standby: a base backup of the primary that streams from it as `pg2`.
  make_standby pg1 pg2
  echo "pg2      postgres://127.0.0.1:$port_of_pg2 standby, streaming, synchronous   (data: $dir/pg2, log: $dir/pg2.log)"
  echo "url      $(url_both)"

  if [ "$pg_only" = 1 ]; then
    up_ok=1
    echo "PG_ONLY=1: no trackers or nodes started"
    return 0
  fi

  # Two tracker replicas on the same database.
  local i tport tpid
  for i in 1 2; do
    (
      umask 077
      sed "s#localhost:7070#localhost:$tracker_port#g" configs/testnet/tracker.toml
      printf '\n[storage]\nengine = "postgres"\nurl = "%s"\n' "$(url_both)"
    ) > "$dir/tracker$i.toml"
    chmod 600 "$dir/tracker$i.toml"
  done
  sed "s#localhost:7070#localhost:$tracker_port#g" configs/testnet/node.toml > "$dir/node.toml"

  if grep -q ':2525$' <<<"$(ss -Htln 2>/dev/null | awk '{print $4}')"; then
    echo "note: something already listens on 127.0.0.1:2525; the trackers' mail goes there" >&2
  elif "$REELNET_PYTHON" -c 'import aiosmtpd' >/dev/null 2>&1; then
    "$REELNET_PYTHON" -m aiosmtpd -n -l 127.0.0.1:2525 -c aiosmtpd.handlers.Mailbox "$dir/mail" \
      >"$dir/smtp.log" 2>&1 &
    echo $! >> "$dir/pids"
    echo "mail     smtp://127.0.0.1:2525 -> $dir/mail/new"
  else
    echo "note: no aiosmtpd for $REELNET_PYTHON (scripts/setup.sh installs it); the trackers' mail is not delivered" >&2
  fi

  for i in 1 2; do
    tport=$((tracker_port + i - 1))
    "$tracker_bin" --config "$dir/tracker$i.toml" \
      --data-dir "$dir/tracker$i" --listen "127.0.0.1:$tport" \
      >"$dir/tracker$i.log" 2>&1 &
    tpid=$!
    echo $tpid >> "$dir/pids"
    deadline=$(( $(date +%s) + 60 ))
    until curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$tport/healthz" 2>/dev/null; do
      if ! kill -0 "$tpid" 2>/dev/null; then
        echo "tracker$i exited; the start of $dir/tracker$i.log:" >&2
        head -n 5 "$dir/tracker$i.log" >&2
        exit 1
      fi
      if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "tracker$i did not answer within 60 s; the end of $dir/tracker$i.log:" >&2
        tail -n 20 "$dir/tracker$i.log" >&2
        exit 1
      fi
      sleep 0.1
    done
    echo "tracker$i http://127.0.0.1:$tport   (log: $dir/tracker$i.log)"
  done

  TESTNET_T0=$(date +%s.%N)
  declare -a pid_of=()
  local boot
  for i in $(seq 1 "$nodes"); do
    boot=()
    [ "$i" -gt 1 ] && boot=(--bootstrap "/ip4/127.0.0.1/tcp/4001")
    boot+=(--invite "$("$tracker_bin" --config "$dir/tracker1.toml" --data-dir "$dir/tracker1" \
      node invite --role replica --role ingest --ttl 1h | tail -n 1)")
    "$node_bin" --config "$dir/node.toml" \
      --data-dir "$dir/node$i" --listen "127.0.0.1:$((8080 + i))" \
      --p2p "/ip4/127.0.0.1/tcp/$((4000 + i))" --quic "127.0.0.1:$((4400 + i))" \
      --tracker "http://127.0.0.1:$tracker_port,http://127.0.0.1:$((tracker_port + 1))" "${boot[@]}" \
      >"$dir/node$i.log" 2>&1 &
    pid_of[$i]=$!
    echo $! >> "$dir/pids"
    [ "$i" -eq 1 ] && wait_http "http://127.0.0.1:8081/healthz" 60
  done
  for i in $(seq 1 "$nodes"); do
    wait_http "http://127.0.0.1:$((8080 + i))/healthz" 60
    wait_admin "$dir/node$i" "${pid_of[$i]}" 30
    echo "node$i    http://127.0.0.1:$((8080 + i)) -> tracker1, then tracker2   (log: $dir/node$i.log)"
  done
  data_of() { echo "$dir/node$1"; }
  wait_mesh "$nodes" "${MESH_WAIT_SECS:-$((60 + 3 * nodes))}" data_of
  up_ok=1
}

cmd_status() {
  load_state
  local name role rep
  for name in pg1 pg2; do
    if ! postmaster_of "$name" >/dev/null; then
      printf '%s  127.0.0.1:%s  not running\n' "$name" "$(port_of "$name")"
      continue
    fi
    role=$(sql "$name" "SELECT CASE WHEN pg_is_in_recovery() THEN 'standby (pg_is_in_recovery: t)' ELSE 'primary (pg_is_in_recovery: f)' END" 2>/dev/null || echo "not answering")
    printf '%s  127.0.0.1:%s  %s\n' "$name" "$(port_of "$name")" "$role"
    if [[ "$role" == primary* ]]; then
      printf '     synchronous_standby_names: %s\n' "$(sql "$name" "SHOW synchronous_standby_names" 2>/dev/null || true)"
      rep=$(sql "$name" "SELECT application_name || ' ' || coalesce(client_addr::text, 'local') || ' state=' || state || ' sync_state=' || sync_state || ' sent=' || sent_lsn || ' replayed=' || coalesce(replay_lsn::text, '-') FROM pg_stat_replication ORDER BY application_name" 2>/dev/null || true)
      if [ -n "$rep" ]; then
        sed 's/^/     pg_stat_replication: /' <<<"$rep"
      else
        echo "     pg_stat_replication: no standby connected"
      fi
    fi
  done
  [ "$pg_only" = 1 ] && return 0
  local i tport code
  for i in 1 2; do
    tport=$((tracker_port + i - 1))
    code=$(curl -sS -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$tport/healthz" 2>/dev/null || true)
    printf 'tracker%s http://127.0.0.1:%s  /healthz %s\n' "$i" "$tport" "${code:-000}"
  done
  for i in $(seq 1 "$nodes"); do
    code=$(curl -sS -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((8080 + i))/healthz" 2>/dev/null || true)
    printf 'node%s    http://127.0.0.1:%s  /healthz %s\n' "$i" "$((8080 + i))" "${code:-000}"
  done
}

# tracker_write I : makes a short-lived invite through tracker I (a write to its database);
# fails unless the tracker answers 2xx.
tracker_write() {
  local f="$dir/tracker$1/operator.json" url token
  [ -f "$f" ] || return 1
  url=$(jq -r .url "$f") && token=$(jq -r .token "$f") || return 1
  curl -fsS -m 2 -o /dev/null -X POST -H "reelnet-operator-token: $token" \
    -H 'content-type: application/json' -d '{"roles":["edge"],"ttl_secs":60}' \
    "$url/api/v1/admin/nodes/invites" 2>/dev/null
}

cmd_failover() {
  load_state
  local primary="" standby="" name role
  for name in pg1 pg2; do
    postmaster_of "$name" >/dev/null || continue
    role=$(sql "$name" "SELECT pg_is_in_recovery()" 2>/dev/null || true)
    [ "$role" = f ] && primary=$name
    [ "$role" = t ] && standby=$name
  done
  [ -n "$primary" ] || { echo "no running primary to kill (testnet/pg.sh status)" >&2; exit 1; }
  [ -n "$standby" ] || { echo "no running standby to promote (a failover happened already?)" >&2; exit 1; }
  local limit="${FAILOVER_WAIT_SECS:-60}"
  local acked="$dir/failover-acked.txt"
  : > "$acked"

  # A writer through the two-host URL, one connection and commit per INSERT, from before the
  # kill until after the promotion; every id psql acknowledged is appended to $acked with
  # the times the INSERT started and was acknowledged.
  local probe_url writer
  probe_url=$(url_both pgsh_probe)
  rm -f "$dir/failover-stop"
  (
    base=$(( $(date +%s%N) / 1000 ))
    n=0
    while [ ! -e "$dir/failover-stop" ]; do
      id=$((base + n))
      n=$((n + 1))
      started=$(date +%s.%N)
      if "$pg_bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$probe_url" \
        -c "INSERT INTO probe (id) VALUES ($id)" >/dev/null 2>&1; then
        echo "$id $started $(date +%s.%N)" >> "$acked"
      else
        sleep 0.02
      fi
    done
  ) &
  writer=$!
  trap 'touch "$dir/failover-stop"; wait '"$writer"' 2>/dev/null || true; rm -f "$dir/failover-stop"' EXIT
  # Let some writes be acknowledged by the old primary first.
  local deadline=$(( $(date +%s) + 10 ))
  while [ "$(wc -l <"$acked")" -lt 20 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "the probe writes do not succeed on $primary" >&2; exit 1; }
    sleep 0.05
  done

  local t_kill t_promoted t_db="" t_tracker="" by="" before
  t_kill=$(date +%s.%N)
  pg_kill9 "$primary"
  before=$(wc -l <"$acked")
  echo "killed   $primary (kill -9 of the postmaster and its backends) after $before acknowledged probe writes"
  as_pg "$pg_bin/pg_ctl" -D "$dir/$standby" -w -t "$limit" promote >/dev/null
  t_promoted=$(date +%s.%N)
  echo "promoted $standby (pg_ctl promote): $(awk -v a="$t_kill" -v b="$t_promoted" 'BEGIN { printf "%.2f", b - a }') s after the kill"

  deadline=$(( $(date +%s) + limit ))
  while [ -z "$t_db" ] || { [ "$pg_only" = 0 ] && [ -z "$t_tracker" ]; }; do
    if [ -z "$t_db" ]; then
      # The first write begun after the kill (one acknowledged just after it may have been
      # committed by the old primary just before).
      t_db=$(awk -v k="$t_kill" '$2 > k { print $3; exit }' "$acked")
    fi
    if [ "$pg_only" = 0 ] && [ -z "$t_tracker" ]; then
      for i in 1 2; do
        if tracker_write "$i"; then t_tracker=$(date +%s.%N); by="tracker$i"; break; fi
      done
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "no write answered within ${limit}s of the kill (database: ${t_db:-none}, tracker: ${t_tracker:-none})" >&2
      exit 1
    fi
    sleep 0.05
  done
  touch "$dir/failover-stop"
  wait "$writer" 2>/dev/null || true
  rm -f "$dir/failover-stop"
  trap - EXIT

  # Every write acknowledged before or after the kill is on the new primary.
  local total found
  total=$(wc -l <"$acked")
  found=$("$pg_bin/psql" -X -q -A -t -h "$sock" -p "$(port_of "$standby")" -U reelnet -d pgsh_probe \
    -c "SELECT count(*) FROM probe WHERE id IN ($(awk '{print $1}' "$acked" | paste -sd, -))")
  local t_last
  t_last=$(awk -v k="$t_kill" '$3 <= k { t = $3 } END { print t }' "$acked")
  echo "database first write begun after the kill acknowledged $(awk -v a="$t_kill" -v b="$t_db" 'BEGIN { printf "%.2f", b - a }') s after it;" \
    "$(awk -v a="$t_last" -v b="$t_db" 'BEGIN { printf "%.2f", b - a }') s from the last acknowledged before it (psql, two-host URL)"
  if [ "$pg_only" = 0 ]; then
    echo "tracker  first write after the kill answered $(awk -v a="$t_kill" -v b="$t_tracker" 'BEGIN { printf "%.2f", b - a }') s after it (an invite through $by)"
  fi
  echo "acknowledged probe writes: $total, on $standby now: $found"
  [ "$found" = "$total" ] || { echo "LOST $((total - found)) acknowledged writes" >&2; exit 1; }
}

cmd_rejoin() {
  load_state
  local primary="" other="" name
  for name in pg1 pg2; do
    if postmaster_of "$name" >/dev/null; then
      [ "$(sql "$name" "SELECT pg_is_in_recovery()" 2>/dev/null || true)" = f ] && primary=$name
    else
      other=$name
    fi
  done
  [ -n "$primary" ] || { echo "no running primary (testnet/pg.sh status)" >&2; exit 1; }
  [ -n "$other" ] || { echo "both servers run: nothing to rejoin (testnet/pg.sh status)" >&2; exit 1; }
  # The old primary may hold commits that never reached the standby (none acknowledged, with a
  # synchronous standby); a fresh copy of the new primary replaces it.
  rm -rf "${dir:?}/$other"
  mkdir -m 700 "$dir/$other"
  own "$dir/$other"
  make_standby "$primary" "$other"
  echo "$other     postgres://127.0.0.1:$(port_of "$other") standby of $primary, streaming, synchronous (a fresh base backup)"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  up) cmd_up "$@" ;;
  down)
    if [ -f "$state" ]; then load_state; teardown; fi
    [ "${1:-}" = "--wipe" ] && rm -rf "$dir"
    echo "PostgreSQL testnet stopped"
    ;;
  status) cmd_status ;;
  failover) cmd_failover ;;
  rejoin) cmd_rejoin ;;
  psql)
    load_state
    for name in pg1 pg2; do
      if postmaster_of "$name" >/dev/null && [ "$(sql "$name" "SELECT pg_is_in_recovery()" 2>/dev/null)" = f ]; then
        exec "$pg_bin/psql" -X -h "$sock" -p "$(port_of "$name")" -U reelnet -d reelnet "$@"
      fi
    done
    echo "no running primary" >&2
    exit 1
    ;;
  *) usage ;;
esac
