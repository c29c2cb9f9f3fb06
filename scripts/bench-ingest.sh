#!/usr/bin/env bash
# Benchmark: ingest. In one run, on inputs made here with the ffmpeg CLI:
#   (a) ladder transcode: a 1080p30 MPEG-4 Part 2 + MP2 source (not H.264, so every rung is
#       encoded and the audio is encoded to AAC) through the transcoder (transcode_bench,
#       release) vs. the ffmpeg CLI making the same ladder with the same settings (1080/720/
#       480/360 at 5000/3000/1400/800 kb/s, maxrate = bitrate, bufsize = 2 x bitrate, preset
#       veryfast, keyframes forced every 4 s and nowhere else, fMP4 HLS, AAC 128k). Target:
#       our speed >= 0.95 x the CLI's. Runs REPEAT times each, alternating; the best wall time
#       of each side counts (the least disturbed by other load).
#   (b) remux-only ingest: an H.264/AAC 1080p source with keyframes every 4 s, ladder = the
#       1080p rung only (stream copy). Target: >= 50 x realtime.
#   (d) full ingest of a real-world-shaped MKV (issue 18): 1080p30 H.264 (keyframes every 4 s,
#       so the 1080p rung is copied), English AAC stereo, German AC-3 5.1, an English FLAC
#       commentary, SubRip English and ASS French streams and a Latin-1 sidecar Movie.es.srt;
#       through the transcoder with everything an ingest makes (transcode_bench --full: the
#       ladder, every audio rendition in stereo plus the 5.1 one, segmented WebVTT for each
#       subtitle, JPEG thumbnail sprite sheets) vs. the ffmpeg CLI making the same outputs from
#       the same input in one process (1080p copied, 720/480/360 encoded like (a), one AAC
#       encode per audio rendition, WebVTT segments, a 5x5 tile sheet of 160 px thumbnails
#       every 10 s). Target: our speed >= 1.0 x the CLI's. Best of REPEAT runs, alternating.
#   (c) direct torrent streaming: ingest_first_segment seeds a ~1 GB H.264/AAC 1080p file
#       from a librqbit session on loopback and runs the real ingest path (default ladder)
#       from it. Target: first playable segment (every rendition, so the lowest too) <= 10 s.
# Prints a side-by-side table with the targets and PASS/MISS, plus the load average and the
# whole-machine CPU use during each measurement (other load shows up there). Inputs (a) and
# (b) live in a temporary directory removed at the end; the big file of (c) is cached in
# $REELNET_CACHE/bench (delete it to rebuild it). Results: docs/benchmarks.md ("Ingest").
#
# Environment overrides:
#   REPEAT=3             runs of each side of (a)
#   LADDER_SECONDS=40    length of the (a) source
#   FULL_SECONDS=40      length of the (d) source
#   REMUX_SECONDS=120    length of the (b) source
#   BIG_SECONDS=160      length of the (c) source
#   BIG_MBPS=50          video bitrate of the (c) source, Mb/s
#   UPLOAD_MIB=          seeder upload limit for (c), MiB/s (default: unlimited)
#   BENCH_TMPDIR=/tmp    where the temporary directory is created
#   NO_BUILD=1           skip `cargo build` (binaries must already be built)
#   SKIP=               space-separated parts to skip: a b c d
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

REPEAT="${REPEAT:-3}"
LADDER_SECONDS="${LADDER_SECONDS:-40}"
FULL_SECONDS="${FULL_SECONDS:-40}"
REMUX_SECONDS="${REMUX_SECONDS:-120}"
BIG_SECONDS="${BIG_SECONDS:-160}"
BIG_MBPS="${BIG_MBPS:-50}"
UPLOAD_MIB="${UPLOAD_MIB:-}"
SKIP="${SKIP:-}"
TARGET_RATIO=0.95
TARGET_FULL_RATIO=1.0
TARGET_REMUX_X=50
TARGET_FIRST_S=10

command -v ffmpeg >/dev/null || { echo "needs the ffmpeg CLI" >&2; exit 1; }
release="$CARGO_TARGET_DIR/release"
if [[ -z "${NO_BUILD:-}" ]]; then
  echo "==> building (release)" >&2
  cargo build --release -p reelnet-node --examples --bins >&2
fi
bench_bin="$release/examples/transcode_bench"
first_bin="$release/examples/ingest_first_segment"
need_bins=()
[[ " $SKIP " == *" a "* && " $SKIP " == *" b "* && " $SKIP " == *" d "* ]] || need_bins+=("$bench_bin")
[[ " $SKIP " == *" c "* ]] || need_bins+=("$first_bin")
for b in "${need_bins[@]}"; do
  [[ -x "$b" ]] || { echo "missing binary: $b" >&2; exit 1; }
done

tmp="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/reelnet-bench-ingest.XXXXXX")"
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
skip() { [[ " $SKIP " == *" $1 "* ]]; }

# Whole-machine CPU counters (jiffies): "busy total".
cpu_now() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6}' /proc/stat; }
# cpu_pct "BEFORE" "AFTER" -> percent of all cores busy in between.
cpu_pct() {
  local b0 t0 b1 t1
  read -r b0 t0 <<<"$1"
  read -r b1 t1 <<<"$2"
  awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" 'BEGIN { printf "%.0f", (t > 0 ? 100 * b / t : 0) }'
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# timed OUTFILE CMD... : runs CMD (stdout to OUTFILE), leaves wall/user/sys seconds and the
# machine's CPU use in WALL UTIME STIME CPU.
timed() {
  local out="$1" c0 c1 tf="$tmp/time.$$"
  shift
  c0="$(cpu_now)"
  { TIMEFORMAT='%R %U %S'; time "$@" >"$out" 2>>"$tmp/stderr.log"; } 2>"$tf"
  c1="$(cpu_now)"
  read -r WALL UTIME STIME <"$tf"
  CPU="$(cpu_pct "$c0" "$c1")"
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
verdict() { if "$@"; then echo PASS; else echo MISS; fi; }
kv() { sed -n "s/^$2 //p" "$1" | head -n 1; }

echo "==> machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM; load $(loadavg)" >&2
ff() { ffmpeg -hide_banner -nostdin -loglevel error -y "$@"; }

rows=()

# --------------------------------------------------------------------------------------------
# (a) ladder transcode vs. the ffmpeg CLI
# --------------------------------------------------------------------------------------------
# The CLI side: decode once, split, one scale per rung, one x264 + AAC + hls muxer per rung.
cli_ladder() {
  local in="$1" out="$2" i=0 h b args=()
  rm -rf "$out"
  mkdir -p "$out"
  for spec in 1080:5000 720:3000 480:1400 360:800; do
    h="${spec%%:*}"
    b="${spec##*:}"
    args+=(-map "[v$i]" -map 0:a
      -c:v libx264 -preset veryfast -b:v "${b}k" -maxrate "${b}k" -bufsize "$((2 * b))k"
      -force_key_frames "expr:gte(t,n_forced*4)" -x264-params keyint=infinite:scenecut=0:open-gop=0
      -c:a aac -b:a 128k
      -f hls -hls_time 4 -hls_list_size 0 -hls_playlist_type event -hls_segment_type fmp4
      -hls_flags independent_segments -hls_fmp4_init_filename "init$i.mp4"
      -hls_segment_filename "$out/r${i}_%06d.m4s" "$out/r$i.m3u8")
    i=$((i + 1))
  done
  ff -i "$in" -filter_complex \
    "[0:v]split=4[s0][s1][s2][s3];[s0]scale=-2:1080[v0];[s1]scale=-2:720[v1];[s2]scale=-2:480[v2];[s3]scale=-2:360[v3]" \
    "${args[@]}"
}

if ! skip a; then
  src_a="$tmp/ladder_src.mkv"
  echo "==> (a) making a ${LADDER_SECONDS}s 1080p30 MPEG-4 Part 2 + MP2 source" >&2
  ff -f lavfi -i "testsrc2=size=1920x1080:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t "$LADDER_SECONDS" -c:v mpeg4 -q:v 3 -pix_fmt yuv420p -c:a mp2 -b:a 192k "$src_a"
  best_ours="" best_cli=""
  for r in $(seq 1 "$REPEAT"); do
    echo "==> (a) run $r/$REPEAT: transcoder (load $(loadavg))" >&2
    timed "$tmp/ours.txt" "$bench_bin" "$src_a"
    echo "    ours: wall ${WALL}s user ${UTIME}s sys ${STIME}s, machine CPU ${CPU}% ($(kv "$tmp/ours.txt" speed_x)x, first segment $(kv "$tmp/ours.txt" first_segment_s)s)" >&2
    if [[ -z "$best_ours" ]] || le "$WALL" "$best_ours"; then best_ours="$WALL" ours_cpu="$UTIME+$STIME" ours_mcpu="$CPU"; fi
    echo "==> (a) run $r/$REPEAT: ffmpeg CLI (load $(loadavg))" >&2
    timed /dev/null cli_ladder "$src_a" "$tmp/cli"
    echo "    cli:  wall ${WALL}s user ${UTIME}s sys ${STIME}s, machine CPU ${CPU}%" >&2
    if [[ -z "$best_cli" ]] || le "$WALL" "$best_cli"; then best_cli="$WALL" cli_cpu="$UTIME+$STIME" cli_mcpu="$CPU"; fi
    rm -rf "$tmp/cli"
  done
  ratio="$(awk -v o="$best_ours" -v c="$best_cli" 'BEGIN { printf "%.2f", c / o }')"
  rows+=("(a) ladder transcode, ${LADDER_SECONDS}s 1080p30 mpeg4 -> 4 rungs|ours ${best_ours}s (cpu ${ours_cpu}s, machine ${ours_mcpu}%) vs CLI ${best_cli}s (cpu ${cli_cpu}s, machine ${cli_mcpu}%): ${ratio}x the CLI's speed|>= ${TARGET_RATIO}x|$(verdict ge "$ratio" "$TARGET_RATIO")")
fi

# --------------------------------------------------------------------------------------------
# (b) remux-only ingest
# --------------------------------------------------------------------------------------------
if ! skip b; then
  src_b="$tmp/remux_src.mp4"
  echo "==> (b) making a ${REMUX_SECONDS}s 1080p30 H.264/AAC source, keyframes every 4 s" >&2
  ff -f lavfi -i "testsrc2=size=1920x1080:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t "$REMUX_SECONDS" -c:v libx264 -preset ultrafast -pix_fmt yuv420p -b:v 6M \
    -g 120 -keyint_min 120 -sc_threshold 0 -c:a aac -b:a 128k "$src_b"
  echo "==> (b) remux ingest, 1080p rung only (load $(loadavg))" >&2
  timed "$tmp/remux.txt" "$bench_bin" "$src_b" --rungs 1080
  [[ "$(kv "$tmp/remux.txt" remux)" == true ]] || { echo "(b): the 1080p rung was not remuxed" >&2; exit 1; }
  remux_x="$(kv "$tmp/remux.txt" speed_x)"
  echo "    remux: ${remux_x}x realtime, elapsed $(kv "$tmp/remux.txt" elapsed_s)s, machine CPU ${CPU}%" >&2
  rows+=("(b) remux-only ingest, ${REMUX_SECONDS}s 1080p H.264/AAC -> 1080p copy|${remux_x}x realtime ($(kv "$tmp/remux.txt" elapsed_s)s)|>= ${TARGET_REMUX_X}x|$(verdict ge "$remux_x" "$TARGET_REMUX_X")")
fi

# --------------------------------------------------------------------------------------------
# (d) full ingest of a multi-audio, subtitled MKV vs. the ffmpeg CLI making the same outputs
# --------------------------------------------------------------------------------------------
# hls_args NAME: one fMP4 HLS output like the transcoder's tracks.
hls_args() {
  echo -f hls -hls_time 4 -hls_list_size 0 -hls_playlist_type event -hls_segment_type fmp4 \
    -hls_flags independent_segments -hls_fmp4_init_filename "init_$1.mp4" \
    -hls_segment_filename "$2/$1_%06d.m4s" "$2/$1.m3u8"
}
cli_full() {
  local dir="$1" out="$2" i=0 h b args=()
  rm -rf "$out"
  mkdir -p "$out"
  # shellcheck disable=SC2046
  args+=(-map 0:v:0 -an -c:v copy $(hls_args v1080 "$out"))
  for spec in 720:3000 480:1400 360:800; do
    h="${spec%%:*}"
    b="${spec##*:}"
    # shellcheck disable=SC2046
    args+=(-map "[v$i]" -an
      -c:v libx264 -preset veryfast -b:v "${b}k" -maxrate "${b}k" -bufsize "$((2 * b))k"
      -force_key_frames "expr:gte(t,n_forced*4)" -x264-params keyint=infinite:scenecut=0:open-gop=0
      $(hls_args "v$h" "$out"))
    i=$((i + 1))
  done
  # shellcheck disable=SC2046
  args+=(-map 0:a:0 -c:a copy $(hls_args a0 "$out")
    -map 0:a:1 -c:a aac -ac 2 -b:a 128k $(hls_args a1 "$out")
    -map 0:a:2 -c:a aac -ac 2 -b:a 128k $(hls_args a2 "$out")
    -map 0:a:1 -c:a aac -ac 6 -b:a 384k $(hls_args a1-51 "$out")
    -map "[th]" -c:v mjpeg -q:v 5 -f image2 "$out/sheet_%03d.jpg")
  for s in 0:s:0 0:s:1 1:s:0; do
    args+=(-map "$s" -c:s webvtt -f segment -segment_time 4 -segment_format webvtt
      -segment_list "$out/s${i}.m3u8" "$out/s${i}_%03d.vtt")
    i=$((i + 1))
  done
  ff -i "$dir/Movie.mkv" -sub_charenc ISO-8859-1 -i "$dir/Movie.es.srt" -filter_complex \
    "[0:v]split=4[s0][s1][s2][s3];[s0]scale=-2:720[v0];[s1]scale=-2:480[v1];[s2]scale=-2:360[v2];[s3]fps=1/10,scale=160:-2,tile=5x5[th]" \
    "${args[@]}"
}

if ! skip d; then
  full="$tmp/full"
  mkdir -p "$full"
  echo "==> (d) making a ${FULL_SECONDS}s 1080p30 MKV: 3 audio streams (stereo AAC, 5.1 AC-3, FLAC commentary), SubRip + ASS streams, a Latin-1 sidecar" >&2
  python3 - "$full" "$FULL_SECONDS" <<'PY'
import sys
d, secs = sys.argv[1], int(sys.argv[2])
def srt(t):
    ms = int(round(t * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"
def ass(t):
    cs = int(round(t * 100))
    return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"
n = secs // 2
with open(f"{d}/en.srt", "w") as f:
    for i in range(n):
        a = i * 2 + 0.5
        f.write(f"{i + 1}\n{srt(a)} --> {srt(a + 1.5)}\nEnglish line {i + 1}\n\n")
with open(f"{d}/fr.ass", "w") as f:
    f.write("[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
            "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
            "Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
            "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")
    for i in range(n):
        a = i * 2 + 1.0
        f.write(f"Dialogue: 0,{ass(a)},{ass(a + 1.5)},Default,,0,0,0,,{{\\i1}}Ligne fran\u00e7aise {i + 1}{{\\i0}}\n")
with open(f"{d}/Movie.es.srt", "wb") as f:
    for i in range(n):
        a = i * 2 + 0.2
        f.write(f"{i + 1}\r\n{srt(a)} --> {srt(a + 1.0)}\r\nEl ni\u00f1o {i + 1}\r\n\r\n".encode("latin-1"))
PY
  ff -f lavfi -i "testsrc2=size=1920x1080:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -f lavfi -i "sine=frequency=550:sample_rate=48000" -f lavfi -i "sine=frequency=660:sample_rate=44100" \
    -i "$full/en.srt" -i "$full/fr.ass" -t "$FULL_SECONDS" \
    -map 0 -map 1 -map 2 -map 3 -map 4 -map 5 \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p -b:v 8M -g 120 -keyint_min 120 -sc_threshold 0 \
    -c:a:0 aac -b:a:0 160k -ac:a:0 2 -c:a:1 ac3 -ac:a:1 6 -b:a:1 448k -c:a:2 flac -ac:a:2 2 \
    -c:s:0 srt -c:s:1 ass \
    -metadata:s:a:0 language=eng -metadata:s:a:1 language=ger -metadata:s:a:1 title=Deutsch \
    -metadata:s:a:2 language=eng -metadata:s:a:2 "title=Director's commentary" \
    -disposition:a:0 default -disposition:a:1 0 -disposition:a:2 comment \
    -metadata:s:s:0 language=eng -metadata:s:s:1 language=fre "$full/Movie.mkv"
  rm -f "$full/en.srt" "$full/fr.ass"
  best_ours="" best_cli=""
  for r in $(seq 1 "$REPEAT"); do
    echo "==> (d) run $r/$REPEAT: transcoder --full (load $(loadavg))" >&2
    timed "$tmp/full.txt" "$bench_bin" "$full/Movie.mkv" --full
    # The CLI side copies the 1080p rung and the English AAC: the plan must do the same.
    for t in "1080p copy" "720p encode" "a0-en copy" "a1-de encode" "a1-de-51 encode"; do
      grep -qx "track $t" "$tmp/full.txt" || { echo "(d): the transcoder's plan differs from the CLI side (no 'track $t')" >&2; cat "$tmp/full.txt" >&2; exit 1; }
    done
    echo "    ours: wall ${WALL}s user ${UTIME}s sys ${STIME}s, machine CPU ${CPU}% (segments per track $(kv "$tmp/full.txt" segments))" >&2
    if [[ -z "$best_ours" ]] || le "$WALL" "$best_ours"; then best_ours="$WALL" ours_cpu="$UTIME+$STIME" ours_mcpu="$CPU"; fi
    echo "==> (d) run $r/$REPEAT: ffmpeg CLI (load $(loadavg))" >&2
    timed /dev/null cli_full "$full" "$tmp/cli_full"
    echo "    cli:  wall ${WALL}s user ${UTIME}s sys ${STIME}s, machine CPU ${CPU}% ($(find "$tmp/cli_full" -type f | wc -l) files)" >&2
    if [[ -z "$best_cli" ]] || le "$WALL" "$best_cli"; then best_cli="$WALL" cli_cpu="$UTIME+$STIME" cli_mcpu="$CPU"; fi
    rm -rf "$tmp/cli_full"
  done
  ratio="$(awk -v o="$best_ours" -v c="$best_cli" 'BEGIN { printf "%.2f", c / o }')"
  rows+=("(d) full ingest, ${FULL_SECONDS}s 1080p MKV: 4 rungs (1080p copied) + 4 audio renditions + 3 WebVTT tracks + thumbnails|ours ${best_ours}s (cpu ${ours_cpu}s, machine ${ours_mcpu}%) vs CLI ${best_cli}s (cpu ${cli_cpu}s, machine ${cli_mcpu}%): ${ratio}x the CLI's speed|>= ${TARGET_FULL_RATIO}x|$(verdict ge "$ratio" "$TARGET_FULL_RATIO")")
fi

# --------------------------------------------------------------------------------------------
# (c) direct torrent streaming through the real ingest path
# --------------------------------------------------------------------------------------------
if ! skip c; then
  cache="$REELNET_CACHE/bench"
  big="$cache/big_1080p_${BIG_MBPS}M_${BIG_SECONDS}s.mp4"
  mkdir -p "$cache"
  if [[ ! -s "$big" ]]; then
    echo "==> (c) making the ${BIG_SECONDS}s 1080p ${BIG_MBPS} Mb/s H.264/AAC source (cached in $cache)" >&2
    # Noise keeps testsrc2 from compressing to nothing, so the file reaches its bitrate.
    ff -f lavfi -i "testsrc2=size=1920x1080:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
      -t "$BIG_SECONDS" -vf "noise=alls=12:allf=t" -c:v libx264 -preset ultrafast -pix_fmt yuv420p \
      -b:v "${BIG_MBPS}M" -maxrate "${BIG_MBPS}M" -bufsize "$((2 * BIG_MBPS))M" \
      -g 120 -keyint_min 120 -sc_threshold 0 -c:a aac -b:a 128k -movflags +faststart "${big%.mp4}.part.mp4"
    mv "${big%.mp4}.part.mp4" "$big"
  fi
  big_bytes="$(stat -c %s "$big")"
  echo "==> (c) torrent ingest of $big ($big_bytes bytes), upload limit ${UPLOAD_MIB:-none} (load $(loadavg))" >&2
  up=()
  [[ -n "$UPLOAD_MIB" ]] && up=(--upload-limit-mib "$UPLOAD_MIB")
  timed "$tmp/first.txt" "$first_bin" "$big" --work-dir "$tmp" "${up[@]}"
  cat "$tmp/first.txt" >&2
  result="$(sed -n 's/^RESULT //p' "$tmp/first.txt")"
  j() {
    local v
    v="$(sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" <<<"$result")"
    case "$v" in "" | null) echo - ;; *) awk -v v="$v" 'BEGIN { printf "%.2f", v }' ;; esac
  }
  first_s="$(j first_playable_s)"
  first_b="$(j first_playable_downloaded_bytes)"
  dl_s="$(j download_complete_s)"
  all_s="$(j ingest_complete_s)"
  first_mib="$(awk -v b="$first_b" 'BEGIN { printf "%.1f", b / 1048576 }')"
  rows+=("(c) torrent -> first playable segment, $((big_bytes / 1048576)) MiB file, loopback seeder|${first_s}s (downloaded then: ${first_mib} MiB)|<= ${TARGET_FIRST_S}s|$(verdict le "$first_s" "$TARGET_FIRST_S")")
  rows+=("(c) torrent -> whole file downloaded|${dl_s}s|-|-")
  rows+=("(c) torrent -> full ingest (4 rungs, 1080p remuxed), machine CPU ${CPU}%|${all_s}s|-|-")
fi

echo
echo "load average at the end: $(loadavg) ($(nproc) cores)"
printf '| %s | %s | %s | %s |\n' "measurement" "result" "target" "verdict"
printf '|---|---|---|---|\n'
for r in "${rows[@]}"; do
  IFS='|' read -r a b c d <<<"$r"
  printf '| %s | %s | %s | %s |\n' "$a" "$b" "$c" "$d"
done
