#!/usr/bin/env bash
# Installs what building, running and testing reelnet need, when it is missing:
# Debian packages (FFmpeg's -dev libraries, OpenSSL's for webauthn-rs (the tracker's passkeys), clang for bindgen, pkg-config, the mold linker, the ffmpeg CLI,
# jq for the testnet scripts, nftables and ping for the WAN testnet (testnet/wan.sh), iproute2 (ip, tc) for the namespace testnets and the chaos soak, Chromium for the browser test, systemd for systemd-analyze in packaging/check.sh, Pebble (the ACME test CA) for the HTTPS tests, faketime (libfaketime) for the clock-skew test, PostgreSQL (initdb, pg_ctl, pg_basebackup; the testkit's real database and testnet/pg.sh)) and a Python venv with aiosmtpd (the real SMTP server the tests start on loopback).
# Safe to run again; does nothing when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

packages=(pkg-config libssl-dev clang libclang-dev mold ffmpeg jq chromium fonts-dejavu-core systemd
  nftables iputils-ping iproute2 pebble faketime postgresql
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! "$REELNET_PYTHON" -c 'import aiosmtpd' >/dev/null 2>&1; then
  echo "==> creating Python venv with aiosmtpd in $REELNET_VENV"
  python3 -m venv "$REELNET_VENV"
  "$REELNET_VENV/bin/pip" install -q --disable-pip-version-check 'aiosmtpd>=1.4,<2'
fi
