#!/usr/bin/env bash
# Installs the peers that benchmarks run side by side with Vedette (Debian packages),
# idempotently: nothing is fetched when every package is already installed. Additive: pass
# more package names as arguments.
#   icinga2-bin, icinga2-common: Icinga 2's passive check-result API (satellite_load bench)
#   openssl: certificates for Icinga 2's API listener
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec bash "$here/install-packages.sh" icinga2-bin icinga2-common openssl "$@"
