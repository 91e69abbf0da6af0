#!/usr/bin/env bash
# The dashboard's browser tests: Debian's chromium (through install-packages.sh) and
# playwright-core from npm, installed once into $VEDETTE_CACHE/browser (idempotent; nothing is
# fetched when both are there). Prints the directory whose node_modules holds playwright-core.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/install-packages.sh" chromium fonts-dejavu-core >&2
PLAYWRIGHT_VERSION=1.64.1
dir="${VEDETTE_CACHE:-$HOME/.cache/vedette}/browser"
mkdir -p "$dir"
if [ "$(node -p "try{require('$dir/node_modules/playwright-core/package.json').version}catch(e){''}" 2>/dev/null)" != "$PLAYWRIGHT_VERSION" ]; then
  # No browser download: playwright-core drives the system's /usr/bin/chromium.
  [ -f "$dir/package.json" ] || echo '{"private": true}' > "$dir/package.json"
  (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund \
    "playwright-core@$PLAYWRIGHT_VERSION" >&2)
fi
echo "$dir"
