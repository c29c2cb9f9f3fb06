# Sourced by the other scripts: where builds and tools live. The build cache sits outside
# the clone so a fresh clone reuses it; override with CARGO_TARGET_DIR / REELNET_CACHE.
export REELNET_CACHE="${REELNET_CACHE:-$HOME/.cache/reelnet}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REELNET_CACHE/target}"
export REELNET_VENV="${REELNET_VENV:-$REELNET_CACHE/venv}"
# Tests start a real SMTP server (aiosmtpd) with this interpreter.
export REELNET_PYTHON="${REELNET_PYTHON:-$REELNET_VENV/bin/python}"
export PATH="$HOME/.cargo/bin:$PATH"

# Link with mold when it is installed (scripts/setup.sh installs it): linking the dozens of
# test binaries was a large part of a CI run. Without mold the default linker is used.
if command -v mold >/dev/null 2>&1 && [ -z "${REELNET_NO_MOLD:-}" ]; then
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="${CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS:--C link-arg=-fuse-ld=mold}"
fi
# CI builds a fresh clone once: incremental compilation data is written and never reused.
if [ "${CI:-}" = "true" ]; then
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi
