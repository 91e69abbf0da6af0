#!/usr/bin/env bash
# Installs the Debian packages Vedette's tests use (real Nagios plugins and peers), idempotently:
# nothing is fetched when every package is already installed.
set -euo pipefail
# postgresql: the history store's PostgreSQL tests start a server of their own (initdb, pg_ctl).
# python3-aiosmtpd, prometheus-alertmanager: the notification tests deliver mail to a real SMTP
# server and alerts to a real Alertmanager.
PACKAGES=(monitoring-plugins-basic monitoring-plugins-common postgresql python3-aiosmtpd prometheus-alertmanager)
missing=()
for p in "${PACKAGES[@]}" "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
