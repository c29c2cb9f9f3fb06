#!/usr/bin/env bash
# The whole test suite: formatting, lints, every Rust test (unit, property and integration
# tests that start real tracker and node processes), the web app's build and tests, the
# packaging checks (packaging/check.sh), the end-to-end browser tests (web/e2e/sso.mjs: a
# tracker, two nodes and a capture proxy; web/e2e/console.mjs: the operator console, a
# tracker and two nodes; web/e2e/watch.mjs and web/e2e/party.mjs: a 3-node
# testnet; web/e2e/media.mjs: a 1-node testnet, audio/subtitle tracks and preferences;
# web/e2e/wan.mjs: the WAN testnet, home nodes behind NAT; all with Chromium), the 1-minute
# chaos soak (scripts/soak.sh --profile ci: headless viewers, faults on a schedule), and a short
# run of every fuzz target. Installs what it needs first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
start=$(date +%s)
step() { printf '\n==> %s (%ss)\n' "$1" "$(( $(date +%s) - start ))"; }

step "setup"
scripts/setup.sh
# Again, now that setup may have installed mold: every build of this run then uses the same
# linker flags, so the cache is not rebuilt by the next run.
. scripts/env.sh

step "cargo fmt --check"
cargo fmt --all -- --check

# The web app first: reelnet-node embeds web/dist when it is built (node/build.rs), so the
# Rust tests below see the real site (tests/site.rs checks it; without web/dist they check
# the page that says how to build it).
step "web app: npm ci, build, test"
(cd web && npm ci --no-audit --no-fund && npm run build && npm test && npm run check:types)

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

step "tracker tests on PostgreSQL (REELNET_TEST_STORE=postgres: every tracker test's tracker keeps its records in a PostgreSQL of its own)"
# `--workspace` with a filter, not `-p reelnet-tracker`: the same feature resolution as the
# run above, so nothing is rebuilt. postgres, migrate, replicas and replica_state run on PostgreSQL in the
# run above already.
if cargo nextest --version >/dev/null 2>&1; then
  REELNET_TEST_STORE=postgres cargo nextest run --workspace --locked --no-fail-fast \
    -E "package(reelnet-tracker) and kind(test) and not binary(postgres) and not binary(migrate) and not binary(replicas) and not binary(replica_state)"
else
  REELNET_TEST_STORE=postgres cargo test -p reelnet-tracker --locked --no-fail-fast --test "*"
fi

step "packaging: systemd units, Containerfile, the binary in the image's layout"
packaging/check.sh

step "browser test: sign-in through the tracker (capture proxy, consent, single sign-on, token binding, refresh replay, passkey, device grant, revocation)"
cargo build --bins --locked
if ! node web/e2e/sso.mjs; then
  echo "the sign-in browser test (web/e2e/sso.mjs) failed: see its messages above and the logs it names" >&2
  exit 1
fi

step "browser test: the operator console (node views, network console on the tracker, an invite made there, an ingest watched to done, revoke, 403 for ordinary users)"
if ! node web/e2e/console.mjs; then
  echo "the console browser test (web/e2e/console.mjs) failed: see its messages above and the logs it names" >&2
  exit 1
fi

step "browser test: register and sign in at the tracker, consent, search, play through a node without the movie, resume, watch later, sign out and single sign-on"
if ! node web/e2e/watch.mjs; then
  echo "the browser test (web/e2e/watch.mjs) failed: see its messages above, web/e2e/artifacts/failure.png and the testnet logs it names" >&2
  exit 1
fi

step "browser test: watch party, two users on two nodes (play/pause/seek within 300 ms, throttled guest, drift)"
if ! node web/e2e/party.mjs; then
  echo "the watch-party browser test (web/e2e/party.mjs) failed: see its messages above, web/e2e/artifacts/party-failure-*.png and the testnet logs it names" >&2
  exit 1
fi

step "browser test: audio and subtitle tracks (English + German 5.1 audio, English + French subtitles): preferences applied at start, audio switch mid-play, c toggles captions"
if ! node web/e2e/media.mjs; then
  echo "the media browser test (web/e2e/media.mjs) failed: see its messages above, web/e2e/artifacts/media-failure.png and the testnet logs it names" >&2
  exit 1
fi

step "browser test: a movie held only by home nodes behind NAT plays for a viewer on a shaped link through a public node (WAN testnet, root)"
if ! DEMO_SECONDS=30 node web/e2e/wan.mjs; then
  echo "the WAN playback browser test (web/e2e/wan.mjs) failed: see its messages above and the testnet logs it names" >&2
  exit 1
fi

step "chaos soak, 1 minute (ci profile): 5 nodes in namespaces, 5 headless viewers and a watch party; a replica killed, a node cut off, the tracker killed, a disk filled, a link slowed (root)"
if ! scripts/soak.sh --minutes 1 --profile ci --seed "${SOAK_SEED:-20}"; then
  echo "the 1-minute chaos soak (scripts/soak.sh --profile ci) failed: see the FAILED lines of its report above and the run directory it names (players/*.log, net/*.log)" >&2
  exit 1
fi

step "fuzz smoke (${FUZZ_SECONDS:-5}s per target)"
FUZZ_SECONDS="${FUZZ_SECONDS:-5}" proto/fuzz/smoke.sh

step "all tests passed"
