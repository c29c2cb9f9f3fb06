#!/usr/bin/env bash
# Checks the packaging with what runs on this machine (no container registry is reachable
# here, so the image itself may not build; this says so instead of failing):
#  1. systemd units: `systemd-analyze verify` in a temporary root holding the binaries
#     where ExecStart expects them (any message fails), and `systemd-analyze security`
#     (exposure at most $MAX_EXPOSURE tenths, default 25 = 2.5 of 10).
#  2. Containerfile shape: three stages, a non-root USER, VOLUME /var/lib/reelnet, EXPOSE,
#     a HEALTHCHECK with `reelnet-node health`, the files it copies exist, and every shared
#     library the built binaries link comes from a package the runtime stage installs.
#  3. The packaged configs parse (node.toml, tracker.toml, container-node.toml).
#  4. The image's layout: the node binary in <root>/usr/local/bin, its config in
#     <root>/etc/reelnet/node.toml (the container's, ports moved to loopback), its data in
#     <root>/var/lib/reelnet; run as an unprivileged user (when root) under the kernel's
#     MemoryDenyWriteExecute rule (PR_SET_MDWE), the HEALTHCHECK command answers 0, /
#     serves the embedded site, and SIGTERM stops it cleanly.
#  5. A container build, only when a builder (podman, buildah or docker with a daemon) runs.
# Binaries: $REELNET_BIN_DIR, default $CARGO_TARGET_DIR/debug (build them first:
# cargo build -p reelnet-node -p reelnet-tracker --bins).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
bin_dir="${REELNET_BIN_DIR:-$CARGO_TARGET_DIR/debug}"
# systemd-analyze counts exposure in tenths here: 25 is 2.5 of 10.
max_exposure="${MAX_EXPOSURE:-25}"
pass() { printf '  ok    %s\n' "$1"; }
skip() { printf '  SKIP  %s\n' "$1"; }
fail() { printf '  FAIL  %s\n' "$1" >&2; exit 1; }

for b in reelnet-node reelnet-tracker; do
  [ -x "$bin_dir/$b" ] || fail "$bin_dir/$b missing: cargo build -p reelnet-node -p reelnet-tracker --bins"
done
tmp=$(mktemp -d)
node_pid=""
cleanup() {
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then kill -9 "$node_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "==> systemd units"
if command -v systemd-analyze >/dev/null 2>&1; then
  root="$tmp/units"
  mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
  # The targets the units name (sysinit.target, network-online.target, ...).
  cp -a /lib/systemd/system "$root/usr/lib/systemd/"
  for b in reelnet-node reelnet-tracker; do
    ln "$bin_dir/$b" "$root/usr/local/bin/$b" 2>/dev/null || cp "$bin_dir/$b" "$root/usr/local/bin/$b"
    cp "packaging/$b.service" "$root/etc/systemd/system/"
  done
  out=$(systemd-analyze verify --root="$root" /etc/systemd/system/reelnet-node.service \
    /etc/systemd/system/reelnet-tracker.service 2>&1) || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify complained: $out"
  pass "systemd-analyze verify: reelnet-node.service, reelnet-tracker.service"
  for u in reelnet-node reelnet-tracker; do
    sec=$(systemd-analyze security --offline=yes --threshold="$max_exposure" \
      "packaging/$u.service" 2>&1) || fail "$u.service exposure above $max_exposure: $(tail -n 1 <<<"$sec")"
    pass "$(grep -o 'Overall exposure level.*' <<<"$sec" | sed 's/ [^ ]*$//')"
  done
  for key in 'ProtectSystem=strict' 'NoNewPrivileges=yes' 'StateDirectory=' 'ConfigurationDirectory=' \
    'AmbientCapabilities=CAP_NET_BIND_SERVICE$' 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE$' \
    'ExecStart=.*--data-dir \${STATE_DIRECTORY}' 'Restart=on-failure'; do
    for u in reelnet-node reelnet-tracker; do
      grep -q "^$key" "packaging/$u.service" || fail "$u.service lacks $key"
    done
  done
  pass "units: capabilities only CAP_NET_BIND_SERVICE, ProtectSystem=strict, state in StateDirectory"
else
  skip "systemd-analyze not installed (apt-get install systemd): units not verified"
fi

echo "==> Containerfile"
cf=packaging/Containerfile
[ "$(grep -c '^FROM ' "$cf")" -eq 3 ] || fail "$cf: expected 3 stages (web, build, runtime)"
final=$(awk '/^FROM /{n++} n==3' "$cf")
grep -q '^USER reelnet$' <<<"$final" || fail "$cf: the runtime stage must run as USER reelnet"
grep -q '^VOLUME /var/lib/reelnet$' <<<"$final" || fail "$cf: no VOLUME /var/lib/reelnet"
grep -q '^EXPOSE .*8080/tcp.*4001/tcp.*4433/udp' <<<"$final" || fail "$cf: EXPOSE 8080/tcp 4001/tcp 4433/udp"
grep -A1 '^HEALTHCHECK' <<<"$final" | grep -q '"reelnet-node", "--config", "/etc/reelnet/node.toml", "health"' \
  || fail "$cf: HEALTHCHECK must run reelnet-node health"
grep -q 'COPY --from=web /src/web/dist web/dist' "$cf" || fail "$cf: the web app must be in place before cargo build"
awk '/COPY --from=web/{w=NR} /cargo build --release/{c=NR} END{exit !(w && c && w < c)}' "$cf" \
  || fail "$cf: web/dist is copied after cargo build"
for f in $(grep -o '^COPY [^-][^ ]* ' "$cf" | awk '{print $2}') $(grep -o '^COPY packaging/[^ ]*' "$cf" | awk '{print $2}'); do
  [ -e "$f" ] || fail "$cf copies $f, which does not exist"
done
pkgs=$(sed -n '/apt-get install/,/rm -rf/p' <<<"$final" | tr ' \\' '\n\n' | grep -E '^lib|^ca-certificates$' || true)
for b in reelnet-node reelnet-tracker; do
  for so in $(readelf -d "$bin_dir/$b" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'); do
    pkg=$(dpkg -S "*/$so" 2>/dev/null | head -n 1 | cut -d: -f1)
    case "$pkg" in
      libc6|libgcc-s1) ;; # in every Debian image
      "") fail "$b links $so, which no installed package provides" ;;
      *) grep -qx "$pkg" <<<"$pkgs" || fail "$b links $so from $pkg, which the runtime stage does not install" ;;
    esac
  done
done
pass "3 stages, USER reelnet, VOLUME, EXPOSE, HEALTHCHECK; runtime packages cover every linked library"

echo "==> packaged configs parse"
for c in packaging/node.toml packaging/container-node.toml; do
  err=$("$bin_dir/reelnet-node" --config "$c" health --timeout 1 --url http://127.0.0.1:9/healthz 2>&1 >/dev/null || true)
  grep -q 'GET http://127.0.0.1:9/healthz' <<<"$err" || fail "$c: $err"
done
err=$("$bin_dir/reelnet-tracker" --config packaging/tracker.toml health --timeout 1 --url http://127.0.0.1:9/healthz 2>&1 >/dev/null || true)
grep -q 'GET http://127.0.0.1:9/healthz' <<<"$err" || fail "packaging/tracker.toml: $err"
pass "node.toml, container-node.toml, tracker.toml"

echo "==> the binary in the image's layout"
root="$tmp/image"
mkdir -p "$root/usr/local/bin" "$root/etc/reelnet" "$root/var/lib/reelnet"
cp "$bin_dir/reelnet-node" "$root/usr/local/bin/"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -e "s#^data_dir = .*#data_dir = \"$root/var/lib/reelnet\"#" \
    -e "s#^listen = \"0.0.0.0:8080\"#listen = \"127.0.0.1:$port\"#" \
    -e 's#^listen = "/ip4/0.0.0.0/tcp/4001"#listen = "/ip4/127.0.0.1/tcp/0"#' \
    -e 's#^listen = "0.0.0.0:4433"#listen = "127.0.0.1:0"#' \
    -e 's#^\# url = .*#url = "http://127.0.0.1:9"#' \
    packaging/container-node.toml >"$root/etc/reelnet/node.toml"
grep -q "127.0.0.1:$port" "$root/etc/reelnet/node.toml" || fail "container-node.toml: gateway listen not found"
as_user=()
if [ "$(id -u)" -eq 0 ]; then
  # The image's user: unprivileged, owning only its data volume.
  chmod 755 "$tmp" "$root" "$root/usr" "$root/usr/local" "$root/usr/local/bin" "$root/etc" "$root/etc/reelnet" "$root/var" "$root/var/lib"
  chmod 644 "$root/etc/reelnet/node.toml"
  chown nobody:nogroup "$root/var/lib/reelnet"
  as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs)
fi
chmod 700 "$root/var/lib/reelnet"
# MemoryDenyWriteExecute=yes, as the kernel's own rule (Linux 6.3+): no memory may become
# writable and executable, inherited across exec. Skipped where the kernel lacks it.
mdwe=(python3 -c 'import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    print("PR_SET_MDWE unavailable", file=sys.stderr)
    sys.exit(3)
os.execvp(sys.argv[1], sys.argv[1:])')
if ! "${mdwe[@]}" true 2>/dev/null; then
  skip "this kernel has no PR_SET_MDWE: MemoryDenyWriteExecute not exercised"
  mdwe=()
fi
log="$tmp/node.log"
(cd "$root/var/lib/reelnet" && exec "${mdwe[@]}" "${as_user[@]}" "$root/usr/local/bin/reelnet-node" \
  --config "$root/etc/reelnet/node.toml" --bootstrap /ip4/127.0.0.1/tcp/1 run) >"$log" 2>&1 &
node_pid=$!
deadline=$(( $(date +%s) + 60 ))
until "${as_user[@]}" "$root/usr/local/bin/reelnet-node" --config "$root/etc/reelnet/node.toml" health >/dev/null 2>&1; do
  kill -0 "$node_pid" 2>/dev/null || fail "the node exited in the image layout: $(tail -n 20 "$log")"
  [ "$(date +%s)" -lt "$deadline" ] || fail "HEALTHCHECK never passed: $(tail -n 20 "$log")"
  sleep 0.2
done
pass "HEALTHCHECK command (reelnet-node --config /etc/reelnet/node.toml health) answers 0${as_user:+, as nobody}${mdwe:+, under MDWE}"
site=$(curl -sf "http://127.0.0.1:$port/healthz" | python3 -c 'import json, sys; print(json.load(sys.stdin)["web"]["source"])')
if [ -f web/dist/index.html ]; then want=embedded; else want=not_built; fi
[ "$site" = "$want" ] || fail "/healthz says the site is $site, expected $want"
code=$(curl -s -o "$tmp/index.html" -w '%{http_code}' "http://127.0.0.1:$port/")
if [ "$want" = embedded ]; then
  [ "$code" = 200 ] && grep -q '<script type="module"' "$tmp/index.html" || fail "/ answered $code without the app"
else
  [ "$code" = 503 ] && grep -q 'npm run build' "$tmp/index.html" || fail "/ answered $code without the not-built page"
fi
pass "/ serves the $want site without --web-dir"
ls "$root/var/lib/reelnet/node.key" >/dev/null 2>&1 || fail "no node.key in the data volume"
kill -TERM "$node_pid"
rc=0
wait "$node_pid" || rc=$?
node_pid=""
[ "$rc" -eq 0 ] || fail "SIGTERM: the node exited with $rc: $(tail -n 20 "$log")"
pass "state in the data volume; SIGTERM (STOPSIGNAL) stops it with status 0"

echo "==> container build"
builder=""
if command -v podman >/dev/null 2>&1; then builder=podman
elif command -v buildah >/dev/null 2>&1; then builder="buildah bud"
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then builder=docker
fi
if [ -z "$builder" ]; then
  skip "no container builder runs here (podman/buildah absent$(command -v docker >/dev/null 2>&1 && echo ', docker has no daemon')): image not built"
elif [ -n "${REELNET_CONTAINER_BUILD:-}" ]; then
  if $builder build -f packaging/Containerfile -t reelnet:check . >"$tmp/build.log" 2>&1; then
    pass "$builder build"
  else
    skip "$builder build failed (no registry reachable?): $(tail -n 3 "$tmp/build.log")"
  fi
else
  skip "$builder present: set REELNET_CONTAINER_BUILD=1 to try a build (needs a registry for base images)"
fi
echo "packaging checks passed"
