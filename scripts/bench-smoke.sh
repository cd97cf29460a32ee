#!/usr/bin/env bash
# A short run of every benchmark: small sizes, the dev profile. Each must
# still start shoal and its peer and print its figures; the figures of
# record come from the full commands in BENCHMARKS.md. Installs the peers
# it needs (Debian packages); run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in wrk:wrk dnsperf:dnsperf dnsmasq:dnsmasq-base etcd:etcd-server busybox:busybox-static; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Runs one benchmark; a failed run is shown (its panic first) and run
# once more, so a flaky benchmark is reported without failing the test
# command; a second failure fails it.
bench() {
  local started=$SECONDS log
  log=$(mktemp)
  echo "== $*"
  if ! env RUST_BACKTRACE=0 "$@" >"$log" 2>&1; then
    grep -m 5 -A 3 "panicked" "$log" || tail -n 40 "$log"
    echo "FAILED once, running again: $*"
    if ! env RUST_BACKTRACE=0 "$@" >"$log" 2>&1; then
      grep -m 5 -A 3 "panicked" "$log" || tail -n 40 "$log"
      rm -f "$log"
      echo "FAILED: $*"
      return 1
    fi
  fi
  tail -n 4 "$log"
  rm -f "$log"
  echo "   ($((SECONDS - started)) s)"
}
# The whole workspace selected, as the test command built it: no rebuild.
run="cargo bench --profile dev --locked --quiet --workspace"
bench PODS=5 $run --bench pod_startup
bench PODS=50 $run --bench pod_fill
bench REPLICAS=100 ROUNDS=1 $run --bench deployment_fill
bench OBJECTS=200 WATCHERS=20 RATE=50 SECONDS=2 $run --bench api_scale
bench ROUNDS=1 CREATES=50 $run --bench api_security
bench BINDINGS=500 DECISIONS=10000 $run --bench decisions
bench CHANGES=20 $run --bench service_programming
bench SERVICES=20 SECONDS=2 $run --bench cluster_dns
bench SECONDS=2 $run --bench service_hop
bench RUNS=3 SECONDS=1 $run --bench streaming
bench OBJECTS=1000 WRITERS=4 PAGE=100 LISTS=1 $run --bench api_pages
bench CREATES=50 TRIALS=2 OBJECTS=200 $run --bench servers
bench WRITERS=2 WRITES=200 $run --bench store_writes
bench MEMBERS=3 WRITERS=2 WRITES=200 $run --bench store_writes
bench $run --bench controllers
bench ROUNDS=3 $run --bench encode
bench PODS=100 $run --bench density
bench $run --bench instantiate
bench STARTS=5 RUNNING=10 $run --bench shim_start
# Its peer is wasmtime-cli 48.0.8, a long build: run where it is installed.
if { "${WASMTIME:-wasmtime}" --version 2>/dev/null || /opt/wasmtime-48/bin/wasmtime --version 2>/dev/null; } | grep -q 48.0.8; then
  bench SECS=2 $run --bench http_throughput
else
  echo "== http_throughput skipped: its peer, wasmtime-cli 48.0.8, is not installed"
fi
