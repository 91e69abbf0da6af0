#!/usr/bin/env bash
# Installs the peers the benchmarks compare against (all from Debian), idempotently: nothing is
# fetched when every package is already installed. Only the binaries are used: the benchmarks
# start their own instances on 127.0.0.1 with their own configuration in a temporary directory;
# the system services these packages ship are stopped and disabled right after installation so
# that they neither listen nor use CPU during a measurement.
set -euo pipefail
PACKAGES=(prometheus-blackbox-exporter icinga2-bin icinga2-common openssl prometheus-node-exporter
  monitoring-plugins-basic monitoring-plugins-common wrk hyperfine
  monitoring-plugins-standard postgresql mariadb-server)
# snmp_vs_check_snmp: snmpd answers, check_snmp (standard plugins) runs snmpget (snmp).
PACKAGES+=(snmpd snmp)
missing=()
for p in "${PACKAGES[@]}" "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# No daemon may start during installation (containers have no init; on a machine with one,
# policy-rc.d keeps the services down).
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  created_policy=1
fi
trap '[ -n "$created_policy" ] && $SUDO rm -f "$policy"' EXIT
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
