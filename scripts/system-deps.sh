#!/usr/bin/env bash
# Installs the system packages audio-extract needs (ffmpeg and ffprobe) when they are missing.
set -euo pipefail
if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then exit 0; fi
if ! command -v apt-get >/dev/null; then
  echo "ffmpeg/ffprobe are missing: install ffmpeg with your package manager" >&2
  exit 1
fi
sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "[system-deps] installing ffmpeg with apt-get" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq ffmpeg >/dev/null
