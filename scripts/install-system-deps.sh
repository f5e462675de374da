#!/usr/bin/env bash
# Installs the Debian packages the test suite and the benches use (real publishers, players,
# load generators) and makes sure the local PostgreSQL is up. Idempotent; quiet when all is present.
set -euo pipefail

packages=(
  cmake gcc
  ffmpeg                                   # ffmpeg/ffprobe: real publisher and player
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav   # rtmp2sink, x264enc, flvmux
  wrk                                      # HTTP load generator for bench/
  nginx libnginx-mod-rtmp                  # the reference server the HLS benches compare against
)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The PostgreSQL store tests use the machine's cluster on 127.0.0.1:5432 (trust auth).
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    version=$(ls /etc/postgresql | head -n 1)
    "${sudo_cmd[@]}" pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
fi
