#!/usr/bin/env bash
# Installs with apt-get the system packages audio-extract needs when any is missing: ffmpeg and
# ffprobe (the worker); what the local node runs on (iptables, iproute2, conntrack, ethtool, socat,
# ipset); what builds its images (mmdebstrap for the Debian base, busybox-static, gcc and
# libc6-dev for the pause binary); libseccomp-dev and pkg-config (runc's seccomp support).
# Idempotent: one dpkg-query when everything is present.
set -euo pipefail
PACKAGES=(ffmpeg mmdebstrap busybox-static libseccomp-dev pkg-config iptables iproute2 conntrack
  ethtool socat ipset gcc libc6-dev)

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  # not Debian: only the worker's tools can be checked by name
  if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then exit 0; fi
  echo "ffmpeg/ffprobe are missing: install ffmpeg with your package manager" >&2
  exit 1
fi

installed=" $({ dpkg-query -W -f='${Package}=${Status}\n' "${PACKAGES[@]}" 2>/dev/null || true; } \
  | sed -n 's/=install ok installed$//p' | tr '\n' ' ') "
missing=()
for p in "${PACKAGES[@]}"; do [[ $installed == *" $p "* ]] || missing+=("$p"); done
(( ${#missing[@]} == 0 )) && exit 0

sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "[system-deps] installing with apt-get: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
