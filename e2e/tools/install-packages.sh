#!/usr/bin/env bash
# Installs the Debian packages Vedette's tests use (real Nagios plugins and peers), idempotently:
# nothing is fetched when every package is already installed.
set -euo pipefail
# postgresql: the history store's PostgreSQL tests start a server of their own (initdb, pg_ctl).
# python3-aiosmtpd, prometheus-alertmanager: the notification tests deliver mail to a real SMTP
# server and alerts to a real Alertmanager.
# snmpd, mariadb-server: the snmp and database probes' tests start servers of their own;
# monitoring-plugins-standard (check_snmp, check_dns, check_ssh, check_smtp, check_ntp_time):
# the template library's plugins; fping: the icmp probe's peer; dovecot-imapd, dovecot-pop3d: the
# mail probe's IMAP and POP3 servers (STARTTLS included); nftables: the icmp probe's tests drop
# echo replies in network namespaces of their own.
# prometheus (prometheus, promtool): the metrics test lints every /metrics endpoint with
# `promtool check metrics` and has a real Prometheus scrape an agent and a satellite.
# Services these packages ship are never started here (policy-rc.d below): tests start their
# own instances on 127.0.0.1 with their own configuration.
PACKAGES=(monitoring-plugins-basic monitoring-plugins-common monitoring-plugins-standard postgresql
  python3-aiosmtpd prometheus-alertmanager snmpd snmp mariadb-server fping dovecot-imapd dovecot-pop3d
  nftables prometheus)
missing=()
for p in "${PACKAGES[@]}" "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
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
