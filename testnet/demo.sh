#!/usr/bin/env bash
# Loads a demo library into a running testnet (testnet/up.sh) and makes a demo account:
#
#   testnet/demo.sh [--release] [-n NODES] [--movies 1-3] [--seconds S]
#
# 1. Makes up to three short movies with the ffmpeg CLI (testsrc2, a Mandelbrot zoom, the
#    Game of Life; 854x480 H.264 + AAC sine tones, S seconds each, default 120), a 500x750
#    poster and a 1280x720 backdrop for each, and a sidecar JSON (title, year, overview,
#    genres, runtime, images). Cached in $DEMO_MEDIA_DIR (default $TESTNET_DIR/demo-media),
#    so reruns skip the encoding.
# 2. Seeds them from a local torrent seeder (`reelnet-node seed`, 127.0.0.1:$DEMO_SEED_PORT,
#    default 6881; stopped by testnet/down.sh) and ingests each on node 1 from its .torrent
#    with --peer and --meta. Movies the network already has are skipped.
# 3. Waits until the catalog (node 2's /api/v1/catalog) lists them complete and placement has
#    copied them to `replication` nodes.
# 4. Registers $DEMO_EMAIL (default demo@reelnet.local) through the API and verifies it with
#    the link from the mail the tracker sent to the testnet's SMTP sink ($TESTNET_DIR/mail).
#    The password is made once and kept in $TESTNET_DIR/demo.env.
# 5. Writes $TESTNET_DIR/demo.env (DEMO_URL: a node holding none of the movies if there is
#    one, DEMO_TRACKER: the tracker's URL, where viewers sign in and scripts use the JSON
#    auth API, DEMO_EMAIL, DEMO_PASSWORD, DEMO_MOVIES) and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. testnet/lib.sh

profile=debug
movies=3
seconds="${DEMO_SECONDS:-120}"
nodes="${NODES:-3}"
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=release; shift ;;
    -n) nodes="${2:?-n needs a number}"; shift 2 ;;
    --movies) movies="${2:?--movies needs a number}"; shift 2 ;;
    --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ "$movies" =~ ^[1-3]$ ]] || { echo "--movies must be 1-3" >&2; exit 2; }
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -ge 20 ] || { echo "--seconds must be >= 20" >&2; exit 2; }
dir="${TESTNET_DIR:-$PWD/.testnet}"
media="${DEMO_MEDIA_DIR:-$dir/demo-media}"
node_bin="${NODE_BIN:-$CARGO_TARGET_DIR/$profile/reelnet-node}"
seed_port="${DEMO_SEED_PORT:-6881}"
email="${DEMO_EMAIL:-demo@reelnet.local}"
gw1="http://127.0.0.1:8081"
tracker="http://127.0.0.1:${BASE_PORT:-7070}"
catalog_node=$(( nodes >= 2 ? 2 : 1 ))
catalog_url="http://127.0.0.1:$((8080 + catalog_node))/api/v1/catalog?per_page=100"
t0=$(date +%s)
say() { printf '==> %s (%ss)\n' "$*" "$(( $(date +%s) - t0 ))"; }
die() { echo "demo: $*" >&2; exit 1; }

[ -x "$node_bin" ] || die "missing $node_bin (build it: cargo build --bins, with --release for --release)"
[ -s "$dir/pids" ] || die "no testnet runs from $dir; start it first: testnet/up.sh"
curl -fsS -m 2 -o /dev/null "$gw1/healthz" || die "node 1 ($gw1) does not answer"
command -v ffmpeg >/dev/null || die "no ffmpeg CLI (scripts/setup.sh installs it)"

# slug | title (\n = poster line break) | year | genres | colour | video source | tone Hz | overview
catalog_table() {
  cat <<'EOF'
test-pattern|Night of the\nTest Pattern|2026|Science Fiction,Documentary|3b82f6|testsrc2=s=854x480:r=25|440|A lone broadcast engineer keeps a test pattern on the air through the longest night of the year, and the pattern starts to answer back.
mandelbrot|Mandelbrot\nDreams|2025|Animation,Mystery|a855f7|mandelbrot=s=427x240:r=25,scale=854:480|330|A camera falls forever into the edge of a fractal. Every zoom reveals another coastline, and somewhere inside is a way home.
game-of-life|The Game\nof Life|2024|Drama,Science Fiction|22c55e|life=s=854x480:r=25:mold=10:ratio=0.1:life_color=#22c55e:death_color=#14532d|550|Four simple rules, one crowded grid. A colony of cells is born, grows, and fights to survive the next generation.
EOF
}

have_drawtext=0
font=""
filters=$(ffmpeg -hide_banner -filters 2>/dev/null || true)  # (not piped into grep -q: SIGPIPE + pipefail)
if grep -q ' drawtext ' <<<"$filters"; then
  font=$(fc-match -f '%{file}' 'DejaVu Sans:bold' 2>/dev/null || true)
  [ -n "$font" ] && [ -f "$font" ] && have_drawtext=1
fi

# ---- 1. media ---------------------------------------------------------------------------
mkdir -p "$media/torrents"
files=()
slugs=()
titles=()
while IFS='|' read -r slug title year genres colour source tone overview; do
  [ ${#slugs[@]} -ge "$movies" ] && break
  plain_title=${title//\\n/ }
  m="$media/$slug-${seconds}s"
  mkdir -p "$m"
  video="$m/$slug.mp4"
  if [ ! -s "$video" ]; then
    say "encoding \"$plain_title\" (${seconds}s, 854x480)"
    ffmpeg -nostdin -hide_banner -loglevel error -y \
      -f lavfi -i "$source" \
      -f lavfi -i "sine=frequency=$tone:sample_rate=48000,volume=0.2" \
      -t "$seconds" -c:v libx264 -preset veryfast -pix_fmt yuv420p -g 50 -keyint_min 50 \
      -b:v 1000k -maxrate 1500k -bufsize 2000k -c:a aac -b:a 128k -ac 2 \
      -movflags +faststart "$m/tmp.mp4"
    mv "$m/tmp.mp4" "$video"
  fi
  if [ ! -s "$m/poster.png" ] || [ ! -s "$m/backdrop.jpg" ]; then
    printf '%b' "$title" > "$m/title.txt"
    text=""
    [ $have_drawtext -eq 1 ] && text=",drawtext=fontfile=$font:textfile=$m/title.txt:fontsize=46:fontcolor=white:line_spacing=8:x=(w-tw)/2:y=520:shadowcolor=black@0.6:shadowx=2:shadowy=2"
    ffmpeg -nostdin -hide_banner -loglevel error -y \
      -f lavfi -i "gradients=s=500x750:c0=0x$colour:c1=0x0b1020:x0=250:y0=0:x1=250:y1=750:nb_colors=2:speed=0.00001:r=1" \
      -ss 20 -i "$video" \
      -filter_complex "[1:v]scale=460:-2[f];[0:v][f]overlay=20:150$text,format=rgb24" \
      -frames:v 1 "$m/poster.png"
    ffmpeg -nostdin -hide_banner -loglevel error -y -ss 30 -i "$video" \
      -vf "scale=1280:720,eq=brightness=-0.08" -frames:v 1 -q:v 3 "$m/backdrop.jpg"
  fi
  jq -n --arg title "$plain_title" --argjson year "$year" --arg overview "$overview" \
    --arg genres "$genres" --argjson runtime $(( (seconds + 59) / 60 )) \
    '{title: $title, year: $year, overview: $overview, genres: ($genres | split(",")),
      runtime_min: $runtime, poster: "poster.png", backdrop: "backdrop.jpg"}' > "$m/meta.json"
  files+=("$video")
  slugs+=("$slug")
  titles+=("$plain_title")
done < <(catalog_table)

# ---- 2. seed and ingest -----------------------------------------------------------------
catalog_json() { curl -fsS -m 5 "$catalog_url" 2>/dev/null; }
# complete_count TITLES... : how many of these titles the catalog lists as complete.
complete_count() {
  local json
  json=$(catalog_json) || { echo 0; return; }
  printf '%s\n' "$@" | jq -R . | jq -s --argjson c "$json" \
    '[.[] as $t | $c.results[] | select(.title == $t and .availability.state == "complete")] | length'
}
in_catalog() {
  local json
  json=$(catalog_json) || return 1
  jq -e --arg t "$1" 'any(.results[]; .title == $t and .availability.state == "complete")' <<<"$json" >/dev/null
}

if [ -f "$dir/seed.pid" ] && kill -0 "$(cat "$dir/seed.pid")" 2>/dev/null; then
  kill "$(cat "$dir/seed.pid")" 2>/dev/null || true
  sleep 0.5
fi
for f in "${files[@]}"; do rm -f "$media/torrents/$(basename "$f").torrent"; done
say "seeding ${#files[@]} movie(s) on 127.0.0.1:$seed_port"
"$node_bin" seed "${files[@]}" --listen "127.0.0.1:$seed_port" --torrent-dir "$media/torrents" \
  >"$dir/seed.log" 2>&1 &
seed_pid=$!
echo "$seed_pid" > "$dir/seed.pid"
echo "$seed_pid" >> "$dir/pids"
for f in "${files[@]}"; do
  t="$media/torrents/$(basename "$f").torrent"
  for _ in $(seq 1 600); do
    [ -s "$t" ] && break
    kill -0 "$seed_pid" 2>/dev/null || die "the seeder stopped: $(tail -5 "$dir/seed.log")"
    sleep 0.1
  done
  [ -s "$t" ] || die "the seeder wrote no $t in 60 s (log: $dir/seed.log)"
done

meta_flag=0
"$node_bin" ingest --help 2>/dev/null | grep -q -- '--meta' && meta_flag=1
for i in "${!files[@]}"; do
  f="${files[$i]}"
  if in_catalog "${titles[$i]}"; then
    say "\"${titles[$i]}\" is already in the network"
    continue
  fi
  say "ingesting \"${titles[$i]}\" on node 1 from its torrent"
  m=$(dirname "$f")
  if [ $meta_flag -eq 1 ]; then
    extra=(--meta "$m/meta.json")
  else
    extra=(--title "${titles[$i]}" --year "$(jq -r .year "$m/meta.json")")
  fi
  NO_COLOR=1 "$node_bin" --config configs/testnet/node.toml --data-dir "$dir/node1" \
    ingest "$media/torrents/$(basename "$f").torrent" --peer "127.0.0.1:$seed_port" "${extra[@]}"
done

# ---- 3. wait for the network ------------------------------------------------------------
say "waiting until node $catalog_node's catalog lists every movie as complete"
deadline=$(( $(date +%s) + ${DEMO_WAIT_SECS:-180} ))
until [ "$(complete_count "${titles[@]}")" -ge "${#titles[@]}" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || die "the catalog at $catalog_url does not list all ${#titles[@]} movies complete: $(catalog_json | jq -c '[.results[] | {title, availability}]' 2>/dev/null)"
  sleep 0.5
done
ids=$(catalog_json | jq -r --args '[.results[] | select(.title as $t | $ARGS.positional | index($t)) | .id] | join(" ")' "${titles[@]}")

# held_by_full I : how many of node I's manifests it holds completely.
held_segments() { node_status "$dir/node$1" "$1" 2>/dev/null | jq '[.manifests[]?.held_segments] | add // 0' || echo 0; }
full_copies() {
  local total=0 i n
  for i in $(seq 1 "$nodes"); do
    n=$(node_status "$dir/node$i" "$i" 2>/dev/null \
        | jq '[.manifests[]? | select(.complete and .held_segments == .total_segments)] | length' || echo 0)
    total=$(( total + n ))
  done
  echo "$total"
}
replication=$(awk -F= '/^replication/ {gsub(/ /, "", $2); print $2}' configs/testnet/node.toml)
want=$(( ${#titles[@]} * ( ${replication:-2} < nodes ? ${replication:-2} : nodes ) ))
say "waiting for placement: $want full copies of ${#titles[@]} movie(s) across $nodes nodes"
deadline=$(( $(date +%s) + ${DEMO_PLACEMENT_SECS:-60} ))
while [ "$(full_copies)" -lt "$want" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 1; done
[ "$(full_copies)" -ge "$want" ] || echo "note: placement has made $(full_copies) of $want copies so far; going on" >&2

# ---- 4. the demo account ----------------------------------------------------------------
password=""
[ -f "$dir/demo.env" ] && password=$(. "$dir/demo.env"; [ "${DEMO_EMAIL:-}" = "$email" ] && echo "${DEMO_PASSWORD:-}")
[ -n "$password" ] || password="demo-$(head -c 9 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 10)"
login_code() {
  curl -sS -m 10 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "$(jq -n --arg e "$email" --arg p "$password" '{email: $e, password: $p}')" \
    "$tracker/api/v1/auth/login"
}
if [ "$(login_code)" = "200" ]; then
  say "demo account $email exists"
else
  say "registering $email"
  code=$(curl -sS -m 10 -o "$dir/register.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "$(jq -n --arg e "$email" --arg p "$password" '{email: $e, password: $p, display_name: "Demo"}')" \
    "$tracker/api/v1/auth/register")
  case "$code" in
    202|201|200) ;;
    409) die "$email exists with another password (wipe the testnet: testnet/down.sh --wipe)" ;;
    *) die "registering $email failed ($code): $(cat "$dir/register.json")" ;;
  esac
  [ -d "$dir/mail" ] || die "no SMTP sink in $dir/mail (testnet/up.sh starts one when aiosmtpd is installed: scripts/setup.sh)"
  token=""
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
  [ -n "$token" ] || die "no verification mail to $email in $dir/mail after 20 s"
  curl -fsS -m 10 -o /dev/null -H 'Content-Type: application/json' \
    -d "$(jq -n --arg t "$token" '{token: $t}')" "$tracker/api/v1/auth/verify" \
    || die "verifying $email failed"
  [ "$(login_code)" = "200" ] || die "$email cannot sign in after verification"
fi

# ---- 5. where to watch ------------------------------------------------------------------
pick=""
least=""
for i in $(seq "$nodes" -1 1); do
  h=$(held_segments "$i")
  if [ "$h" -eq 0 ]; then pick=$i; break; fi
  if [ -z "$least" ] || [ "$h" -lt "$least" ]; then least=$h; pick=$i; fi
done
holds_none=$([ "$(held_segments "$pick")" -eq 0 ] && echo yes || echo no)
cat > "$dir/demo.env" <<EOF
DEMO_URL=http://127.0.0.1:$((8080 + pick))
DEMO_TRACKER=$tracker
DEMO_NODE=$pick
DEMO_NODE_HOLDS_NONE=$holds_none
DEMO_EMAIL=$email
DEMO_PASSWORD=$password
DEMO_MOVIES="$ids"
EOF
chmod 600 "$dir/demo.env"
say "demo library ready: ${#titles[@]} movie(s) ($ids)"
if [ "$holds_none" = yes ]; then
  echo "node $pick holds none of the movies: it streams them from its peers"
else
  held=$(node_status "$dir/node$pick" "$pick" 2>/dev/null | jq '[.manifests[]? | select(.held_segments > 0)] | length' || echo "?")
  echo "note: placement (replication ${replication:-2} over $nodes nodes) put part of the library on every node;" \
    "node $pick holds the least ($held of ${#titles[@]} movies) and streams the rest from its peers" >&2
fi
