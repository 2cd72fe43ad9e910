#!/usr/bin/env bash
# Installs what the browser test needs, only when it is missing: Debian's chromium (the
# test drives it; playwright's own browser download does not work here), node, and
# playwright-core from npm, pinned by package-lock.json. Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")"

# apt-get needs root; a developer's machine may have sudo instead.
apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "e2e: need root or sudo to install $*" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if [ ! -x /usr/bin/chromium ]; then
  echo "e2e: installing Debian's chromium"
  apt_install chromium
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "e2e: installing node and npm"
  apt_install nodejs npm
fi
# npm ci again only when the lock file changed since the last install (a copy of it is
# kept in node_modules), so a bumped version is picked up and an unchanged one is free.
if [ ! -d node_modules/playwright-core ] || ! cmp -s package-lock.json node_modules/.installed-lock.json; then
  echo "e2e: installing playwright-core"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.installed-lock.json
fi
