#!/usr/bin/env bash
# Installs what the browser playback tests need (tests/integration/test_hls_playback.py):
# Debian's Chromium, hls.js from web/package-lock.json, and Playwright's Python package in the venv.
# Playwright drives the system Chromium (/usr/bin/chromium); `playwright install` is never run, as it
# would download a browser build of its own. Idempotent; quiet when all is present.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${VENV:-.venv}

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# hls.js exactly as locked; reinstalled only when the lock file changed since the last install.
if [ ! -f web/node_modules/hls.js/dist/hls.min.js ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  npm ci --prefix web --no-audit --no-fund --loglevel=error
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "no virtual environment at $venv: run \`make install\` first" >&2
  exit 1
fi
if ! "$venv/bin/python" -c "import playwright.sync_api" >/dev/null 2>&1; then
  "$venv/bin/pip" install --quiet "playwright>=1.45"
fi
