#!/usr/bin/env bash
# Runs every benchmark that compares the agent with a peer (see docs/benchmarks.md): installs
# the peers from Debian, builds the release binaries (cargo's bench profile), then runs each
# benchmark in turn. Every benchmark prints numbers and never fails on them. Output is also
# kept in $BENCH_OUT (default target/bench-results.txt).
#
#   bash bench/run.sh                 # all
#   bash bench/run.sh probe_vs_blackbox exec_overhead   # some
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
ALL=(probe_vs_blackbox snmp_vs_check_snmp database_probe exec_overhead exec_vs_icinga icmp_vs_check_ping idle_footprint spool_append compile history_store masters_ingest process_engine notify_delivery dashboard)
BENCHES=("$@")
[ ${#BENCHES[@]} -eq 0 ] && BENCHES=("${ALL[@]}")
target_dir=${CARGO_TARGET_DIR:-target}
out=${BENCH_OUT:-$target_dir/bench-results.txt}
mkdir -p "$(dirname "$out")"

bash e2e/tools/install-bench-peers.sh
# Built one package at a time, as they run below: built together, the two packages unify
# their dependencies' features differently and the operator's benchmark would be built again.
$CARGO bench -p vedette-agent --no-run >/dev/null
[[ " ${BENCHES[*]} " == *" compile "* || " ${BENCHES[*]} " == *" masters_ingest "* || " ${BENCHES[*]} " == *" process_engine "* || " ${BENCHES[*]} " == *" notify_delivery "* ]] && $CARGO bench -p vedette-operator --no-run >/dev/null
[[ " ${BENCHES[*]} " == *" history_store "* ]] && $CARGO bench -p vedette-history --no-run >/dev/null
[[ " ${BENCHES[*]} " == *" satellite_load "* ]] && $CARGO bench -p vedette-satellite --no-run >/dev/null
[[ " ${BENCHES[*]} " == *" dashboard "* ]] && $CARGO build -q --release -p vedette-e2e --bin dashboard-bench

{
  echo "# vedette benchmarks, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo -)"
  echo "# $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); the machine may be shared"
} | tee "$out"
for bench in "${BENCHES[@]}"; do
  case "$bench" in
    compile|masters_ingest|process_engine|notify_delivery) package=vedette-operator ;;
    history_store) package=vedette-history ;;
    satellite_load) package=vedette-satellite ;;
    *) package=vedette-agent ;;
  esac
  echo "## $bench" | tee -a "$out"
  if [ "$bench" = dashboard ]; then
    # In a real browser (e2e/browser/bench.cjs); chromium and playwright-core are installed once.
    "$target_dir/release/dashboard-bench" 2>/dev/null | tee -a "$out"
    continue
  fi
  $CARGO bench -q -p "$package" --bench "$bench" 2>&1 | tee -a "$out"
done
echo "results kept in $out"
