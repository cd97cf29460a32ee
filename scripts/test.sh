#!/usr/bin/env bash
# Runs every test shoal has: unit tests of each crate and the end-to-end
# tests that start the real `shoal` binary and drive it with kubectl.
# Installs what it needs on a fresh machine first.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real components the tests use: an OCI registry (Debian), containerd
# and runc (the shim is tested under a real containerd; protoc builds the
# CRI client the tests drive containerd with; the standard CNI plugins give
# its pods their network), iproute2 for
# network namespaces standing in for other machines, nftables (Services are
# kernel rules), curl and dig as a node's processes, openssl for test
# certificates, the oras and bcrypt
# Python packages to push to the registry, and the Python kubernetes client.
need=()
for pair in docker-registry:docker-registry containerd:containerd runc:runc protoc:protobuf-compiler /usr/lib/cni/bridge:containernetworking-plugins ip:iproute2 nft:nftables curl:curl dig:dnsutils openssl:openssl; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -c 'import oras, bcrypt, kubernetes' 2>/dev/null || python3 -m pip install -q oras bcrypt kubernetes
command -v kubectl >/dev/null || { echo "kubectl (1.32) is required on PATH" >&2; exit 1; }
rustup target add wasm32-wasip2 >/dev/null

examples/build.sh
cargo build --locked --bins
# Benchmarks are run by their own commands; here they only have to build.
cargo build --locked --workspace --benches --profile dev
if command -v cargo-nextest >/dev/null; then
  cargo nextest run --locked --workspace --no-fail-fast
else
  cargo test --locked --workspace --no-fail-fast
fi
# A short run of every benchmark, so each keeps working.
scripts/bench-smoke.sh
