#!/usr/bin/env bash
# Runs every cargo-fuzz target of reelnet-proto for FUZZ_SECONDS seconds each (default 10).
# Installs cargo-fuzz when missing. Exits non-zero if any target crashes or fails to build;
# crashing inputs are left in proto/fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"

secs="${FUZZ_SECONDS:-10}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
# Fuzz builds use sanitizer flags; keep them in their own target dir, away from the shared
# CARGO_TARGET_DIR where they would force rebuilds of the normal workspace, but outside the
# clone (under REELNET_CACHE when scripts/env.sh set it) so a fresh clone reuses them.
if [ -n "${REELNET_CACHE:-}" ]; then
    export CARGO_TARGET_DIR="$REELNET_CACHE/fuzz-target"
else
    unset CARGO_TARGET_DIR
fi
unset CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
for target in $(cargo +"$toolchain" fuzz list); do
    echo "== $target (${secs}s)"
    if cargo +"$toolchain" fuzz run "$target" -- -max_total_time="$secs" >"$log" 2>&1; then
        grep -E '^Done [0-9]+ runs' "$log" || tail -n 3 "$log"
    else
        echo "!! $target FAILED" >&2
        tail -n 40 "$log" >&2
        status=1
    fi
done
exit "$status"
