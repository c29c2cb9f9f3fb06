# Sourced by the other scripts: where builds and tools live. The build cache sits outside
# the clone so a fresh clone reuses it; override with CARGO_TARGET_DIR / REELNET_CACHE.
export REELNET_CACHE="${REELNET_CACHE:-$HOME/.cache/reelnet}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REELNET_CACHE/target}"
export REELNET_VENV="${REELNET_VENV:-$REELNET_CACHE/venv}"
# Tests start a real SMTP server (aiosmtpd) with this interpreter.
export REELNET_PYTHON="${REELNET_PYTHON:-$REELNET_VENV/bin/python}"
export PATH="$HOME/.cargo/bin:$PATH"
