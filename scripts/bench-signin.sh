#!/usr/bin/env bash
# Sign-in bench: the single-sign-on round trip through a node next to a password sign-in,
# and the token endpoint's refresh grant next to the JSON refresh route (requests/s, p50,
# p99), on loopback with the release binaries. See scripts/bench-signin.mjs.
#   NO_BUILD=1  skip the builds (release binaries and web/dist must exist)
#   N, SECONDS, WORKERS  passed on (round trips; seconds and workers per refresh run)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
if [ "${NO_BUILD:-0}" != 1 ]; then
  echo "==> building (release)" >&2
  cargo build --release --bins --locked >&2
  [ -f web/dist/index.html ] || (cd web && npm ci --no-audit --no-fund && npm run build) >&2
fi
exec node scripts/bench-signin.mjs
